"""The test harness: real servers and raw clients, shared by the tests and the benchmarks.

* ``serve``: ``scalemcp serve`` as a process on port 0, ready (and its address known) once
  it logs its start-up line; in Trio (``open_serve``) or blocking (``ServeProcess``).
* ``asgi``: the ASGI app driven in memory (``open_asgi``), lifespan included, for tests
  that need no socket; ``scalemcp.testing.open_server`` serves one on a real port.
* ``client``: raw MCP over HTTP for each era (``Session``, ``Stateless``, ``open_legacy``),
  over either; ``sse`` the one SSE parser.
* ``redis``: private redis-server deployments (standalone, Cluster, Sentinel).
* ``fleet``: nodes of several workers over Redis behind haproxy (tests/cluster, bench/soak).
* ``ports``: sockets for servers that cannot bind port 0 themselves; ``conditions``:
  waiting for what nothing announces; ``output``: a child's output, line by line.
"""
