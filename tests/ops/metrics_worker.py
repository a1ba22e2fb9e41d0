"""A stand-in worker of ``scalemcp serve`` for test_metrics_dir.py: joins a metrics directory,
counts what it is told, then exits (or is killed with SIGKILL, as the OOM killer would).

    python -m tests.ops.metrics_worker DIR WORKER CALLS SESSIONS STREAMS WAIT... [--kill]
"""

from __future__ import annotations

import os
import signal
import sys


def main(argv: list[str]) -> None:
    kill = "--kill" in argv
    no_join = "--no-join" in argv
    directory, worker, calls, sessions, streams, *waits = [
        a for a in argv if not a.startswith("--")]
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory  # as the supervisor's prepare_dir
    from scalemcp.observability import metrics, metrics_dir

    if no_join:
        return  # dies before it joins: only its start-up files are left
    metrics_dir.join(metrics_dir.WorkerSpec(directory, worker, worker.partition("-")[0]))
    for _ in range(int(calls)):
        metrics.observe_request("session", "tools/call", "ok", 0.003)
    for seconds in waits:
        metrics.REDIS_ROUND_TRIP.labels("load").observe(float(seconds))
    metrics.SESSIONS.set(float(sessions))
    metrics.OPEN_STREAMS.labels("session", "sse").set(float(streams))
    if kill:
        os.kill(os.getpid(), signal.SIGKILL)  # nothing flushed, nothing closed


if __name__ == "__main__":
    main(sys.argv[1:])
