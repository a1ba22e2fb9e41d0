"""scalemcp's Trio serving loop: scalemcp's connections and HTTP/1.1, Hypercorn's others.

Hypercorn keeps what it does well (h2/wsproto protocol classes, upgrades, ``Config``, TLS
and ALPN, the lifespan, worker processes); this package replaces its trio ``TCPServer``,
``worker_serve`` and (:mod:`.http11`) its h11-based HTTP/1.1 protocol, where a profile
showed the cost per request (docs/performance.md). The
Hypercorn internals it relies on are named in :mod:`.seam`, the one module importing them.

:func:`serve` is ``hypercorn.trio.serve``'s counterpart (one Trio run, e.g. in a test);
:func:`worker_serve` runs a worker of ``scalemcp serve`` on sockets the supervisor bound.
"""

from __future__ import annotations

from .admission import Admission
from .worker import serve, worker_serve

__all__ = ["Admission", "serve", "worker_serve"]
