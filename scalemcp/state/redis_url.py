"""Redis URLs: what deployment a URL names (no I/O, no Redis client needed).

URL forms (the Helm chart emits them; user and password are %-decoded)::

    redis[s]://[user[:pw]@]host[:port][/db]                        standalone
    unix://[user[:pw]@]/path/to/redis.sock[?db=N]                  standalone, local socket
    redis[s]+sentinel://[user[:pw]@]h1:26379,h2:26379/<master>[/<db>]
    redis[s]+cluster://[user[:pw]@]n1:6379,n2:6379                 seeds of a Redis Cluster

:func:`parse_url` refuses anything else with a line saying what is wrong, so that
``scalemcp serve`` can check ``--redis-url`` before any worker starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["RedisTarget", "parse_url", "redact"]

_SCHEMES = {
    "redis": ("standalone", False), "rediss": ("standalone", True),
    "unix": ("standalone", False),
    "redis+sentinel": ("sentinel", False), "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False), "rediss+cluster": ("cluster", True),
}


@dataclass(frozen=True)
class RedisTarget:
    """What a Redis URL names."""

    mode: Literal["standalone", "sentinel", "cluster"]
    url: str
    tls: bool = False
    #: Sentinels (sentinel) or seed nodes (cluster); empty for standalone.
    hosts: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None
    db: int = 0
    #: The Sentinel service (master) name.
    master: str | None = None

    def __str__(self) -> str:
        """The URL without its password (for logs and errors)."""
        return redact(self.url)


def redact(url: str) -> str:
    """``url`` with its password masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return url.replace(parts.netloc, f"{user}:***@{hostinfo}", 1)


def _host_port(item: str, default_port: int, url: str) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [ipv6]:port
        host, _, rest = item[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
    if not host:
        raise ValueError(f"Redis URL {redact(url)!r}: empty host in {item!r}")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ValueError(f"Redis URL {redact(url)!r}: bad port in {item!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"Redis URL {redact(url)!r}: bad port in {item!r}")
    return unquote(host), port


def parse_url(url: str) -> RedisTarget:
    """The deployment ``url`` names; ValueError (saying why) if it names none."""
    scheme, sep, rest = url.partition("://")
    kind = _SCHEMES.get(scheme.lower()) if sep else None
    if kind is None:
        hint = f" (did you mean redis://{url}/0?)" if not sep and url else ""
        raise ValueError(
            f"unsupported Redis URL {redact(url)!r}{hint}: use redis://, rediss://, unix://, "
            "redis[s]+sentinel://host:port,.../<master>/<db> or "
            "redis[s]+cluster://host:port,...")
    mode, tls = kind
    if mode == "standalone":
        _check_standalone(url, scheme.lower())
        return RedisTarget("standalone", url, tls=tls)
    netloc, _, path = rest.partition("/")
    path, _, _query = path.partition("?")
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
    default_port = 26379 if mode == "sentinel" else 6379
    hosts = tuple(_host_port(h, default_port, url) for h in hostlist.split(",") if h.strip())
    if not hosts:
        raise ValueError(f"Redis URL {redact(url)!r} names no {mode} hosts")
    segments = [unquote(s) for s in path.split("/") if s]
    if mode == "sentinel":
        if not segments or len(segments) > 2:
            raise ValueError(f"Redis Sentinel URL {redact(url)!r} must end in /<master>[/<db>]")
        master = segments[0]
        try:
            db = int(segments[1]) if len(segments) == 2 else 0
        except ValueError:
            raise ValueError(f"Redis Sentinel URL {redact(url)!r}: bad database number") from None
        return RedisTarget("sentinel", url, tls=tls, hosts=hosts, username=username,
                           password=password, db=db, master=master)
    if segments not in ([], ["0"]):
        raise ValueError(f"Redis Cluster URL {redact(url)!r}: a cluster has only database 0")
    return RedisTarget("cluster", url, tls=tls, hosts=hosts, username=username,
                       password=password)




def _check_standalone(url: str, scheme: str) -> None:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if scheme == "unix":
        if not parts.path:
            raise ValueError(f"Redis URL {redact(url)!r} names no socket path")
        db = query.get("db", "0")
    else:
        _host_port(parts.netloc.rpartition("@")[2], 6379, url)
        db = parts.path.strip("/") or query.get("db", "0")
    if not db.isdigit():
        raise ValueError(f"Redis URL {redact(url)!r}: the database must be a number "
                         f"(e.g. /0), not {db!r}")
