"""``python -m bench.suite``."""

from .cli import main

main()
