"""The hostile-input fuzz of test_hostile_fuzz.py on the other ways in: HTTP/2 without TLS
(h2c, prior knowledge) to a server on the Redis backend, and HTTP/2 over TLS (ALPN).

The same generated bodies, mutated messages, spoiled headers and out-of-order sequences in
every era (legacy HTTP+SSE included, its GET stream over HTTP/2 too), the same checks on
every answer and at the end (bystander untouched, same worker, bounded memory, no error
in the log), with an eighth of the examples each (``SCALEMCP_FUZZ_EXAMPLES`` scales them).
The HTTP/1.1 framing test of that module stays there.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.redis import RedisServer

from .hostile import Server
from .test_hostile_fuzz import (
    EXAMPLES,
    Target,
    serving,
    test_mutated_messages,
    test_out_of_order_messages,
    test_random_bodies,
    test_spoiled_headers,
)

__all__ = ["test_mutated_messages", "test_out_of_order_messages", "test_random_bodies",
           "test_spoiled_headers"]

VARIANT_EXAMPLES = max(5, EXAMPLES // 8)


@pytest.fixture(scope="module", params=["h2c-redis", "tls-h2"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           dev_cert: tuple[str, str]) -> Iterator[Target]:
    workdir = Path(tmp_path_factory.mktemp("hostile-" + request.param))
    if request.param == "h2c-redis":
        redis = RedisServer(log=workdir / "redis.log")
        try:
            server = Server(workdir, "--redis-url", redis.url,
                            "--state-keys", secrets.token_hex(32),
                            http={"http1": False, "http2": True})
            with serving(server, request.param, VARIANT_EXAMPLES) as fleet:
                yield fleet
        finally:
            redis.stop()
    else:
        server = Server(workdir, "--certfile", dev_cert[0], "--keyfile", dev_cert[1],
                        http={"http2": True, "verify": False})
        with serving(server, request.param, VARIANT_EXAMPLES) as fleet:
            yield fleet
