"""The comparative suite: every target in bench/targets/, driven by ``scalemcp bench``.

Usage: python -m bench.suite [--quick] [--clients 1,16,64,256,1024] [--duration 5]
       [--warmup 1] [--targets floor,scalemcp,...] [--no-pin] [--scalemcp-src HEAD|worktree]
       [--output PREFIX]
       python -m bench.suite --report-only bench/results/<date>.json

Each series (a target server, an era, a scenario) runs once per client count:
the server is started on a free loopback port, the load generator runs in this
process, and the server's CPU time is read from /proc/<pid>/stat of each of its
processes (and of its private redis-server) every 50 ms and interpolated to the
measured window. Server processes are pinned to core 0 and this process to
core 1 (sched_setaffinity), as in the reference setup. Writes <PREFIX>.json
(every number and every report in full), <PREFIX>.md and <PREFIX>.png; the
default PREFIX is bench/results/<date> (``--quick``: .cache/bench-results/<date>-quick).

The package: ``series`` (what is measured), ``environment`` (what the targets need),
``procs`` (starting and stopping servers, reading their CPU), ``measure`` (one point),
``meta`` (versions and machine), ``report`` (Markdown and chart), ``cli`` (the command).
"""
