"""The Redis backend's key layout, stream ids, Lua scripts and session record codec.

Every key of one session carries the hash tag ``{<session-id>}``, so a session's keys
live in one Redis Cluster slot and one Lua script may touch them together::

    <prefix>{<sid>}:s            hash: the session record, one msgpack value per field;
                                 idle TTL, renewed by every load
    <prefix>{<sid>}:x:<stream>   stream: one SSE stream; entries {d: data, n: append
                                 token[, f: 1]}, the final entry marked with ``f``;
                                 MAXLEN ~ cap, TTL
    <prefix>{<sid>}:xz           zset: the names of the session's streams (for deletion),
                                 scored by when each expires (ms); names expired for
                                 over a stream TTL are dropped as streams are added, so
                                 a session that lives for days does not keep them all
    <prefix>{<sid>}:xs           set: the same, unscored and never trimmed, as written
                                 by earlier versions; read on deletion, no longer written
    <prefix>{<sid>}:m:<key>      string: the worker that holds mailbox ``key``, with TTL
    <prefix>{<sid>}:xe:<stream>  hash: {w: the worker writing the stream, d: its epitaph},
                                 from its first append to its final one; TTL as the stream
    <prefix>{<sid>}:if           hash: worker -> the session's requests in flight there
                                 (max_inflight_fleet_wide only); idle TTL

Keys shared by the fleet (no command or script touches two of them at once)::

    <prefix>sessions             zset: every session id, scored by a known expiry time
    <prefix>principal:<p>        zset: the sessions of one principal (``-`` for none)
    <prefix>{bus}:inbox:<worker> stream: messages routed to one worker, capped, TTL
    <prefix>{bus}:broadcast      stream: changes, deletions and cancellations, capped
    <prefix>claim:<key>          string: a one-time claim (``claim_once``), with TTL
    <prefix>worker:<worker>      string: the worker's heartbeat, with a short TTL
    <prefix>{rl:<owner>}:<name>  hash: a rate-limit token bucket, TTL until refilled
                                 (see redis_buckets; one owner's buckets share a slot)

The inboxes and the broadcast stream share the hash tag ``{bus}`` so that on Redis
Cluster a worker still reads its inbox and the broadcast stream with ONE blocking XREAD
(one slot; their traffic is small). Pipelines may mix slots (the cluster client splits
them by node); MULTI and multi-key commands never do.
"""

from __future__ import annotations

import binascii
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from .base import SessionRecord, StreamEvent

__all__ = [
    "APPEND",
    "BURY",
    "DELETE_INFO",
    "INFLIGHT_RETURN",
    "INFLIGHT_TAKE",
    "LOAD_SESSION",
    "PUSH",
    "READ",
    "RELEASE_MAILBOX",
    "UPDATE_SESSION",
    "Id",
    "Keys",
    "decode_entries",
    "decode_record",
    "encode_fields",
    "format_id",
    "hash_slot",
    "parse_id",
]

log = logging.getLogger("scalemcp.state.redis")

#: A stream entry id, ``<ms>-<seq>``, as a comparable pair.
Id = tuple[int, int]

_ID_RE = re.compile(r"(\d{1,20})-(\d{1,20})")


def parse_id(value: str | bytes) -> Id | None:
    """The entry id in ``value``, or None if it is not one."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    match = _ID_RE.fullmatch(value)
    if match is None:
        return None
    return int(match[1]), int(match[2])


def format_id(value: Id) -> str:
    return f"{value[0]}-{value[1]}"


def hash_slot(key: str | bytes) -> int:
    """The Redis Cluster slot of ``key``: CRC16 (XMODEM) of its hash tag, or of all of it."""
    data = key.encode() if isinstance(key, str) else key
    start = data.find(b"{")
    if start != -1:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1:end]
    return binascii.crc_hqx(data, 0) % 16384


class Keys:
    """Key names under one prefix (see the module docstring)."""

    __slots__ = ("broadcast", "prefix", "sessions")

    def __init__(self, prefix: str) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("the key prefix must not contain braces (they are hash tags)")
        self.prefix = prefix
        self.sessions = prefix + "sessions"
        self.broadcast = prefix + "{bus}:broadcast"

    def session(self, sid: str) -> str:
        return f"{self.prefix}{{{sid}}}:s"

    def stream(self, sid: str, name: str) -> str:
        return f"{self.prefix}{{{sid}}}:x:{name}"

    def stream_set(self, sid: str) -> str:
        return f"{self.prefix}{{{sid}}}:xz"

    def legacy_stream_set(self, sid: str) -> str:
        """The unscored stream set earlier versions wrote (read on deletion only)."""
        return f"{self.prefix}{{{sid}}}:xs"

    def mailbox(self, sid: str, key: str) -> str:
        return f"{self.prefix}{{{sid}}}:m:{key}"

    def principal(self, principal: str | None) -> str:
        return self.prefix + "principal:" + ("-" if principal is None else "=" + principal)

    def inbox(self, worker: str) -> str:
        return f"{self.prefix}{{bus}}:inbox:{worker}"

    def claim(self, key: str) -> str:
        return f"{self.prefix}claim:{key}"

    def epitaph(self, sid: str, name: str) -> str:
        return f"{self.prefix}{{{sid}}}:xe:{name}"

    def inflight(self, sid: str) -> str:
        return f"{self.prefix}{{{sid}}}:if"

    def worker(self, worker: str) -> str:
        return f"{self.prefix}worker:{worker}"


# -- session record codec -----------------------------------------------------------------

_FIELDS = frozenset(f.name for f in msgspec.structs.fields(SessionRecord))
_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(SessionRecord)


def encode_fields(values: Mapping[str, Any]) -> dict[str, bytes]:
    """Hash fields for ``values``: one msgpack value per record field."""
    unknown = set(values) - _FIELDS
    if unknown:
        raise TypeError(f"SessionRecord has no field(s) {sorted(unknown)}")
    return {name: _encoder.encode(value) for name, value in values.items()}


def decode_record(packed: bytes) -> SessionRecord | None:
    """A record as LOAD_SESSION returns it: one msgpack map, spliced in Lua from the stored
    values (msgpack each), so a load is one bulk string to read and one decode. A field
    written by a newer version is ignored, as msgspec ignores unknown fields."""
    try:
        return _record_decoder.decode(packed)
    except msgspec.MsgspecError as exc:
        log.warning("unreadable session record in Redis (treated as missing): %s", exc)
        return None


def decode_entries(raw: Sequence[Any]) -> tuple[list[StreamEvent], bool]:
    """Stream entries as returned by XRANGE inside Lua: ``[[id, [field, value, ...]], ...]``.

    Returns the events and whether the last one is the stream's final event.
    """
    events: list[StreamEvent] = []
    final = False
    for entry_id, fields in raw:
        data = b""
        final = False
        for j in range(0, len(fields) - 1, 2):
            name = fields[j]
            if name == b"d":
                data = fields[j + 1]
            elif name == b"f":
                final = True
        events.append(StreamEvent(entry_id.decode(), data))
    return events, final


# -- Lua scripts (one round trip each; every key they touch is declared) ------------------

#: KEYS: session. ARGV: idle TTL ms, slack ms. ``{record, TTL ms}``: the record as one
#: msgpack map (the stored values are msgpack already: names packed, values spliced,
#: nothing decoded) and the key's TTL after the load; false (nil) if there is none. The TTL
#: is renewed to idle + slack only once it is below idle: a renewal is a write, which
#: invalidates the key for every worker caching it (see redis_cache). PTTL first, HGETALL
#: last, so the key is tracked after the renewal, not invalidated by it.
LOAD_SESSION = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return false end
local idle = tonumber(ARGV[1])
if ttl <= idle then
  ttl = idle + tonumber(ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
local r = redis.call('HGETALL', KEYS[1])
local n = #r / 2
if n == 0 then return false end
local parts = {}
if n < 16 then parts[1] = string.char(0x80 + n)
else parts[1] = '\\222' .. string.char(math.floor(n / 256), n % 256) end
for i = 1, #r, 2 do
  parts[#parts + 1] = cmsgpack.pack(r[i])
  parts[#parts + 1] = r[i + 1]
end
return {table.concat(parts), ttl}
"""

#: KEYS: session. ARGV: field, value, ... Updates a live session only (never revives one).
UPDATE_SESSION = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

#: KEYS: session. ARGV: uri, '1' to subscribe ('' to unsubscribe). Adds or removes one
#: subscription in place (the list is msgpack, as every record field), so two workers
#: changing subscriptions of one session at once both count. 0 if the session is gone.
SUBSCRIBE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local packed = redis.call('HGET', KEYS[1], 'subscriptions')
local subs = {}
if packed then subs = cmsgpack.unpack(packed) end
local out = {}
for _, uri in ipairs(subs) do
  if uri ~= ARGV[1] then table.insert(out, uri) end
end
if ARGV[2] == '1' then table.insert(out, ARGV[1]) end
table.sort(out)
redis.call('HSET', KEYS[1], 'subscriptions', cmsgpack.pack(out))
return 1
"""

#: KEYS: session, stream, stream set, epitaph. ARGV: data, final ('1' or ''), maxlen,
#: stream TTL ms, stream name, epitaph ('' for none), worker, token (unique per append),
#: '1' on a retry. Returns {previous last id, new id}; {last id} if the stream has ended
#: (nothing is appended after its final event); {id} of the entry a retry finds already
#: appended (a first attempt whose reply was lost: its token is the last entry's, or on
#: a retry among the last entries); nil if the session is gone.
#: The stream set scores each name with its stream's expiry (the new entry id's time, which
#: is Redis' clock, plus the TTL) and drops the names expired for over a TTL more (a read
#: renews a stream's TTL without rescoring it); so it holds about the streams of the last
#: two TTLs, however long the session lives, rather than every stream it ever had.
APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local prev = '0-0'
if #last > 0 then
  prev = last[1][1]
  local f = last[1][2]
  for i = 1, #f, 2 do
    if f[i] == 'f' or (f[i] == 'n' and f[i + 1] == ARGV[8]) then return {prev} end
  end
end
if ARGV[9] == '1' then
  local recent = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 32)
  for _, e in ipairs(recent) do
    local f = e[2]
    for i = 1, #f, 2 do
      if f[i] == 'n' and f[i + 1] == ARGV[8] then return {e[1]} end
    end
  end
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[4], 'w', ARGV[7], 'd', ARGV[6])
end
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[4])
else
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
end
local id
if ARGV[2] == '1' then
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'd', ARGV[1], 'n', ARGV[8],
                  'f', '1')
else
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'd', ARGV[1], 'n', ARGV[8])
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
local now = tonumber(string.match(id, '^(%d+)'))
local ttl = tonumber(ARGV[4])
redis.call('ZADD', KEYS[3], now + ttl, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (now - ttl))
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return {prev, id}
"""

#: KEYS: session, stream, epitaph. ARGV: start ('-' or '(<id>'), count, stream TTL ms.
#: {0}: missing; {1, last entry, writer or nil}: nothing new (the writer: the worker
#: that must end the stream, while it has not); {2, entries}: entries after the start.
READ = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local entries = redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', ARGV[2])
if #entries > 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return {2, entries}
end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last == 0 then return {0} end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {1, last[1], redis.call('HGET', KEYS[3], 'w')}
"""

#: KEYS: session, stream, epitaph. ARGV: start ('-' or '(<id>'), count, maxlen, stream
#: TTL ms. The stream's writer is gone: append its epitaph as the final event unless the
#: stream has ended, then read as READ does: {0} or {2, entries}.
BURY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last == 0 then return {0} end
local ended = false
local f = last[1][2]
for i = 1, #f, 2 do if f[i] == 'f' then ended = true end end
local epitaph = redis.call('HGET', KEYS[3], 'd')
if epitaph and not ended then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'd', epitaph, 'f', '1')
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
redis.call('DEL', KEYS[3])
return {2, redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', ARGV[2])}
"""

#: KEYS: session, stream set, legacy stream set. {principal (msgpack), {stream names}}
#: (a name may come twice); nil if no session.
DELETE_INFO = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local p = redis.call('HGET', KEYS[1], 'principal')
if not p then p = '' end
local names = redis.call('ZRANGE', KEYS[2], 0, -1)
if redis.call('TYPE', KEYS[3])['ok'] == 'set' then
  for _, name in ipairs(redis.call('SMEMBERS', KEYS[3])) do table.insert(names, name) end
end
return {p, names}
"""

#: KEYS: mailbox. ARGV: worker. Deletes the ownership record if it is still ours.
RELEASE_MAILBOX = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

#: KEYS: the session's in-flight hash. ARGV: worker, n, limit, TTL ms. 1 if the n were
#: counted (for this worker); else nothing is counted and the hash is returned flat
#: (worker, count, ...), so that the caller can forget the counts of dead workers.
INFLIGHT_TAKE = """
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
if total + tonumber(ARGV[2]) > tonumber(ARGV[3]) then
  return redis.call('HGETALL', KEYS[1])
end
redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

#: KEYS: the session's in-flight hash. ARGV: worker, n. The worker's count after.
INFLIGHT_RETURN = """
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[2]))
if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return left
"""

#: KEYS: stream. ARGV: maxlen, TTL ms (0: none), field, value, ... Returns the id.
PUSH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
if ARGV[2] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return id
"""
