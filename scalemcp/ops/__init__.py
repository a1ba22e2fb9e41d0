"""Process concerns, on top of the server: graceful drain, readiness, the worker supervisor.

``drain`` (SIGTERM -> ``/readyz`` 503, streams closed after ``drain_timeout_s``),
``readiness`` (what ``/readyz`` answers), ``workers`` (the process supervisor behind
``scalemcp serve``) and ``observe`` (the hooks the ASGI app calls around each exchange: log
fields, trace context, drain, access log). Metrics, logs
and traces themselves are in :mod:`scalemcp.observability`, a leaf below every layer.
"""
