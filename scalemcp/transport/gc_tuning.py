"""Python's cyclic garbage collector, set for a server with many requests in flight.

Why: CPython runs a collection of the youngest generation every 700 net allocations of
container objects, and promotes what survives it. A worker serving N requests at once
allocates in bursts (Trio runs every ready task in one batch), so with a few hundred
requests in flight nearly every request object is alive at some collection, gets promoted
and is walked again by the older generations' collections. Measured with
``bench/asgi_cost.py`` (in process, 1,024 clients), the collector took about 40 % of the
CPU of a ``tools/call``, and it is why the cost per request rose with the number of
clients; it found almost nothing to free, since a request makes few reference cycles.

What: at startup, the objects that live as long as the worker (modules, the app, its
tools) are moved out of the collector's sight (``gc.freeze``), and the first threshold
is raised to ``gc_threshold`` allocations: a collection then finds requests' objects
mostly freed already, and runs hundreds of times less often. Garbage in cycles waits a
little longer to be freed, bounded by that threshold.
"""

from __future__ import annotations

import gc
import logging

__all__ = ["tune_gc"]

log = logging.getLogger("scalemcp.transport")
_frozen = False


def tune_gc(threshold: int) -> None:
    """Raise the first GC threshold to ``threshold`` (0: leave the collector alone) and
    freeze what exists now, once per process."""
    global _frozen
    if threshold <= 0:
        return
    _, older, oldest = gc.get_threshold()
    if gc.get_threshold()[0] < threshold:
        gc.set_threshold(threshold, older, oldest)
    if not _frozen:
        _frozen = True
        gc.collect()  # what is garbage now is not frozen with the rest
        gc.freeze()
        log.debug("gc: threshold %d, %d objects frozen", threshold, gc.get_freeze_count())
