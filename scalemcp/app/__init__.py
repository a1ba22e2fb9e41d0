"""The app API: what users write (``App``, decorators, ``Context``, content helpers)."""
