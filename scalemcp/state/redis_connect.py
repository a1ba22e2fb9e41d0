"""Redis deployments named by URL (standalone, Sentinel, Cluster), and their clients.

URL forms (the Helm chart emits them; user and password are %-decoded)::

    redis[s]://[user[:pw]@]host[:port][/db]                        standalone
    unix://[user[:pw]@]/path/to/redis.sock[?db=N]                  standalone, local socket
    redis[s]+sentinel://[user[:pw]@]h1:26379,h2:26379/<master>[/<db>]
    redis[s]+cluster://[user[:pw]@]n1:6379,n2:6379                 seeds of a Redis Cluster

``rediss`` means TLS to every server (sentinels, master and cluster nodes alike), verified
against the system CAs or ``ca_file`` (a standalone URL's own ``ssl_*`` query arguments,
coredis' names, replace these settings). The credentials authenticate to the data nodes and,
with Sentinel, to the sentinels too (as with sentinels that share the master's password;
a sentinel without a password accepts them for the ``default`` user).

Sentinel: every new connection asks the sentinels for the master and checks its ROLE, so
after a failover new connections go to the new master. Connections to the old one end
when it goes away or is demoted (sentinel kills its clients); a stale one that still
answers READONLY makes :func:`forget_connections` drop the pool. Until the new master is
known, operations fail (BackendUnavailable: 503) and then recover without a restart.

Cluster: coredis follows the slot map (MOVED/ASK); ``max_connections`` is per node.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import coredis
import coredis.exceptions
import coredis.retry
import trio
from coredis.connection import TCPLocation

from .redis_pool import keep_places
from .redis_url import RedisTarget, parse_url

__all__ = [
    "ERRORS",
    "ClientOptions",
    "RedisClient",
    "RedisTarget",
    "forget_connections",
    "open_client",
    "parse_url",
]

log = logging.getLogger("scalemcp.state.redis")

RedisClient = coredis.Redis[bytes] | coredis.RedisCluster[bytes]

#: What a failing Redis (or the way to it) raises through coredis.
ERRORS: tuple[type[BaseException], ...] = (
    coredis.exceptions.RedisError,
    TimeoutError,
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)

@dataclass(frozen=True)
class ClientOptions:
    """Pool sizes, timeouts and TLS settings (see the ``redis_*`` fields of Config)."""

    #: Connections per Redis server (each cluster node counts as one server).
    max_connections: int = 64
    connect_timeout_s: float = 2.0
    #: How long a reply may take (blocking reads ask for less).
    socket_timeout_s: float = 10.0
    #: How long a command waits for a free pooled connection.
    pool_timeout_s: float = 5.0
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_check_hostname: bool = True
    client_name: str | None = None
    #: Sentinel: how often to ask the sentinels which server is the master.
    sentinel_check_s: float = 1.0

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        context.check_hostname = self.tls_check_hostname
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


@asynccontextmanager
async def open_client(target: RedisTarget, options: ClientOptions) -> AsyncIterator[RedisClient]:
    """A client for ``target`` while the block runs.

    Entering may talk to Redis (a cluster's slot map is fetched here), so it may raise
    what a failing Redis raises; standalone and Sentinel clients connect lazily.
    """
    common: dict[str, Any] = {
        "connect_timeout": options.connect_timeout_s,
        "stream_timeout": options.socket_timeout_s,
    }
    # A standalone URL may carry coredis' own ssl_* query arguments: then they decide.
    if target.tls and not (target.mode == "standalone" and "ssl_" in urlsplit(target.url).query):
        common["ssl_context"] = options.ssl_context()
    if target.mode == "standalone":
        client: RedisClient = coredis.Redis.from_url(
            target.url, decode_components=True, decode_responses=False,
            max_connections=options.max_connections, pool_timeout=options.pool_timeout_s,
            client_name=options.client_name, **common,
            # coredis sends a command again after a timeout or a lost connection by
            # default: that multiplies how long a request waits on a silent Redis, and
            # repeats writes whose answer was lost. scalemcp retries what is safe itself
            # (redis_router.Link, RedisBackend.append). (Sentinel's client retries nothing.)
            retry_policy=coredis.retry.NoRetryPolicy(),
        )
        keep_places(client.connection_pool)  # (coredis loses them in faults: redis_pool)
        async with client:
            yield client
    elif target.mode == "cluster":
        # While the cluster reconfigures, commands are retried on its new map (CLUSTERDOWN,
        # a connection lost), not after a timeout; a repeated stream append is harmless
        # (APPEND's token).
        retry = coredis.retry.CompositeRetryPolicy(
            coredis.retry.ConstantRetryPolicy((coredis.exceptions.ClusterDownError,),
                                              retries=2, delay=0.1),
            coredis.retry.ConstantRetryPolicy((coredis.exceptions.ConnectionError,),
                                              retries=2, delay=0.1))
        cluster: coredis.RedisCluster[bytes] = coredis.RedisCluster(
            startup_nodes=[TCPLocation(host, port) for host, port in target.hosts],
            username=target.username, password=target.password, decode_responses=False,
            max_connections=options.max_connections, max_connections_per_node=True,
            pool_timeout=options.pool_timeout_s, retry_policy=retry, **common,
        )
        keep_places(cluster.connection_pool)
        async with cluster:
            yield cluster
    else:
        assert target.master is not None
        credentials: dict[str, Any] = {"username": target.username,
                                       "password": target.password}
        sentinel: coredis.Sentinel[bytes] = coredis.Sentinel(
            [TCPLocation(host, port) for host, port in target.hosts],
            sentinel_kwargs={**common, **credentials},
            decode_responses=False,
        )
        async with sentinel:
            primary = sentinel.primary_for(
                target.master, db=target.db, client_name=options.client_name,
                max_connections=options.max_connections, timeout=options.pool_timeout_s,
                **credentials, **common,
            )
            keep_places(primary.connection_pool)
            async with primary, trio.open_nursery() as nursery:
                nursery.start_soon(_watch_master, primary, sentinel, target.master,
                                   options.sentinel_check_s)
                try:
                    yield primary
                finally:
                    nursery.cancel_scope.cancel()


async def _watch_master(
    client: coredis.Redis[bytes], sentinel: coredis.Sentinel[bytes], master: str,
    interval_s: float,
) -> None:
    """Follow the master: when it moved, pooled connections to the old one are dropped at
    once (the pool does that when it sees a new address) and blocking reads on them end.

    A demoted master that is still reachable keeps answering, and even accepting writes,
    until sentinel reconfigures it (seconds later); a worker writing there meanwhile is
    split from the others. So the move is learnt from the sentinels' ``+switch-master``
    announcement as it happens, and by asking every ``interval_s`` in case an
    announcement was missed (a sentinel unreachable at that moment).
    """
    pool = client.connection_pool
    locate = getattr(pool, "get_primary_location", None)
    if locate is None:
        return
    send, receive = trio.open_memory_channel[None](1)
    async with trio.open_nursery() as nursery:
        for each in sentinel.sentinels:
            nursery.start_soon(_hear_switches, each, master, send)
        while True:
            with trio.move_on_after(interval_s):
                await receive.receive()
            try:
                with trio.move_on_after(interval_s):
                    before = getattr(pool, "location", None)
                    after = await locate()
                    if before is not None and after != before:
                        log.warning("Redis Sentinel: the master moved from %s to %s",
                                    before, after)
            except ERRORS as exc:
                log.debug("Redis Sentinel: master not found (will ask again): %s", exc)


async def _hear_switches(
    sentinel: coredis.Redis[bytes], master: str, wake: trio.MemorySendChannel[None]
) -> None:
    """Wake the watcher whenever this sentinel announces that ``master`` moved."""
    name = master.encode()
    while True:
        try:
            async with sentinel.pubsub(channels=["+switch-master"]) as messages:
                async for message in messages:
                    data = message.get("data")
                    if isinstance(data, (bytes, str)):
                        raw = data.encode() if isinstance(data, str) else data
                        if raw.split(b" ", 1)[0] == name:
                            with contextlib.suppress(trio.WouldBlock):
                                wake.send_nowait(None)
        except* ERRORS as group:  # coredis' pub/sub task group raises them grouped
            log.debug("Redis Sentinel: not subscribed to +switch-master (retrying): %s",
                      group.exceptions[0])
        await trio.sleep(1.0)


def forget_connections(client: RedisClient | None, exc: BaseException) -> None:
    """After an error that shows a pooled connection is stale (it reached a demoted master,
    e.g. READONLY), drop the pool's connections: new ones find the current master."""
    if client is None or isinstance(client, coredis.RedisCluster):
        return  # the cluster client follows MOVED and refreshes its slot map itself
    if isinstance(exc, coredis.exceptions.StalePrimaryError) or (
            isinstance(exc, coredis.exceptions.ResponseError) and "READONLY" in str(exc)):
        client.connection_pool.disconnect()
