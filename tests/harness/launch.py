"""``scalemcp`` (its CLI ``main``) with the start-up line kept at any ``--log-level``.

The harness learns a server's bound address from the line the supervisor logs once its
first worker serves (``serving MODULE:ATTR at http://HOST:PORT/mcp ...``). A test that
asks for ``--log-level warning`` would hide it, so the supervisor's ``scalemcp.server``
logger stays at INFO here; nothing else changes (workers are other processes).
"""

from __future__ import annotations

import logging

from scalemcp.cli import main

if __name__ == "__main__":
    logging.getLogger("scalemcp.server").setLevel(logging.INFO)
    raise SystemExit(main())
