"""The Lua scripts of the Redis task store (``state/redis_tasks.py``).

Every script runs on Redis' clock (``TIME``) and touches one task's hash, the queue stream
and the event stream: keys of one hash tag (``{<prefix>tasks}``), one Cluster slot.

Hash fields: ``st`` status, ``sm`` status message, ``pr`` principal, ``rq`` request,
``cr``/``up`` created/updated ms, ``ttl``, ``pi`` poll interval, ``ls`` lease ms, ``ma``
max attempts, ``at`` attempts, ``tk`` fencing token, ``ow`` owner, ``lu`` lease until (ms),
``cx`` cancel asked, ``en`` queue entry, ``rs`` result, ``er`` error, ``tw`` terminal
writes, ``qn`` outstanding requests; ``q:<key>`` a request, ``a:<key>`` an answer.
"""

from __future__ import annotations

__all__ = ["ANSWER", "CANCEL", "CLAIM", "CREATE", "FINISH", "GROUP", "HEARTBEAT", "PARK",
           "PROGRESS", "RELEASE", "START"]

#: Shared helpers, after the keys: H (the task's hash), Q (the queue), EV (the events).
_HELPERS = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function terminal(st)
  return st == 'completed' or st == 'failed' or st == 'cancelled'
end
local function event(id, st, cx)
  redis.call('XADD', EV, 'MAXLEN', '~', 10000, '*', 't', id, 's', st, 'c', cx)
end
local function drop(group, entry)
  if entry and entry ~= '' then
    redis.call('XACK', Q, group, entry)
    redis.call('XDEL', Q, entry)
  end
end
local function clear_requests()
  local all = redis.call('HKEYS', H)
  for i = 1, #all do
    if string.sub(all[i], 1, 2) == 'q:' then redis.call('HDEL', H, all[i]) end
  end
  redis.call('HSET', H, 'qn', 0)
end
local function finish(id, st, rs, er, sm)
  redis.call('HSET', H, 'st', st, 'ow', '', 'up', now)
  if rs and rs ~= '' then redis.call('HSET', H, 'rs', rs) end
  if er and er ~= '' then redis.call('HSET', H, 'er', er) end
  if sm and sm ~= '' then redis.call('HSET', H, 'sm', sm) end
  redis.call('HINCRBY', H, 'tw', 1)
  clear_requests()
  event(id, st, 0)
end
local function holds(token)
  local f = redis.call('HMGET', H, 'tk', 'st')
  return f[1] and f[1] == token and f[2] == 'working'
end
"""
_PRELUDE = "local H, Q, EV = KEYS[1], KEYS[2], KEYS[3]\n" + _HELPERS
_CLAIM_PRELUDE = "local H, Q, EV = '', KEYS[1], KEYS[2]\n" + _HELPERS

#: ARGV: id, ttl ms, most tasks waiting or running (0: no limit), then field/value pairs.
#: KEYS[4]: the principal's index (a zset by creation time; members past their TTL are
#: dropped as it is read). Returns {entry, creation time (ms)}, or {'full'}.
CREATE = _PRELUDE + """
local id, ttl, most = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
-- The queue holds an entry per task waiting or running (a parked one has none).
if most > 0 and redis.call('XLEN', Q) >= most then return {'full'} end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', H, 'st', 'working', 'cr', now, 'up', now, 'tk', 0, 'at', 0,
           'ow', '', 'cx', 0, 'tw', 0, 'qn', 0, unpack(fields))
local entry = redis.call('XADD', Q, '*', 't', id)
redis.call('HSET', H, 'en', entry)
redis.call('PEXPIRE', H, ttl)
redis.call('ZADD', KEYS[4], now, id)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 86400000 * 30)
if redis.call('PTTL', KEYS[4]) < ttl then redis.call('PEXPIRE', KEYS[4], ttl) end
return {entry, now}
"""

#: Decides on a delivered entry: run the task (a new token, an attempt counted), end it
#: (cancelled; failed as a dead letter, recorded in ``dead``), or leave it (leased).
_START_FN = """
local function start(id, entry, worker, group, dead_error, dead)
  local f = redis.call('HMGET', H, 'st', 'cx', 'ow', 'lu', 'at', 'ma', 'en', 'ls')
  if not f[1] then drop(group, entry) return {0} end
  if terminal(f[1]) or f[1] == 'input_required' or f[7] ~= entry then
    drop(group, entry) return {0}
  end
  if f[2] == '1' then
    finish(id, 'cancelled', nil, nil, 'cancelled')
    drop(group, entry) return {0}
  end
  if f[3] ~= '' and tonumber(f[4] or 0) > now then return {-1} end
  if tonumber(f[5]) >= tonumber(f[6]) then
    local attempts = f[5]
    finish(id, 'failed', nil, dead_error, 'the worker running this task stopped')
    redis.call('XADD', dead, 'MAXLEN', '~', 10000, '*', 't', id, 'a', attempts)
    drop(group, entry) return {0}
  end
  local attempt = redis.call('HINCRBY', H, 'at', 1)
  local token = redis.call('HINCRBY', H, 'tk', 1)
  redis.call('HSET', H, 'ow', worker, 'lu', now + tonumber(f[8]), 'up', now)
  return {1, token, attempt, redis.call('HGETALL', H), id, entry}
end
"""

#: ARGV: id, entry, worker, group, dead-letter error. KEYS[4]: the dead-letter stream.
#: Returns {1, token, attempt, HGETALL..., id, entry} (claimed), {0} (ended or stale),
#: {-1} (leased).
START = _PRELUDE + _START_FN + """
return start(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], KEYS[4])
"""

#: KEYS: the queue, the events, the dead letters. ARGV: worker, group, the prefix of task
#: keys, dead-letter error. Takes the next new entry (XREADGROUP, not blocking) and starts
#: it: a claim in one round trip. The task's key is made from the prefix: it shares the
#: queue's hash tag, so it lives in the same Cluster slot. Returns as START, or {0} when
#: nothing is queued.
CLAIM = _CLAIM_PRELUDE + _START_FN + """
local got = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[1], 'COUNT', 1, 'STREAMS', Q, '>')
if not got then return {0} end
for _, e in ipairs(got[1][2]) do
  local fields, id = e[2], nil
  for i = 1, #fields, 2 do if fields[i] == 't' then id = fields[i + 1] end end
  if id then
    H = ARGV[3] .. id
    local r = start(id, e[1], ARGV[1], ARGV[2], ARGV[4], KEYS[3])
    if r[1] == 1 then return r end
  else
    drop(ARGV[2], e[1])
  end
end
return {0}
"""

#: ARGV: token, worker, group, entry. Returns 'ok', 'cancel' or 'lost'.
HEARTBEAT = _PRELUDE + """
if not holds(ARGV[1]) then return 'lost' end
local f = redis.call('HMGET', H, 'ls', 'cx')
redis.call('HSET', H, 'lu', now + tonumber(f[1]))
redis.call('XCLAIM', Q, ARGV[3], ARGV[2], 0, ARGV[4], 'JUSTID')
if f[2] == '1' then return 'cancel' end
return 'ok'
"""

#: ARGV: token, id, message. Returns 1, or 0 if fenced.
PROGRESS = _PRELUDE + """
if not holds(ARGV[1]) then return 0 end
redis.call('HSET', H, 'sm', ARGV[3], 'up', now)
event(ARGV[2], 'working', 0)
return 1
"""

#: ARGV: token, id, group, entry, then key/request pairs. Returns 1, or 0 if fenced.
PARK = _PRELUDE + """
if not holds(ARGV[1]) then return 0 end
clear_requests()
local n = 0
for i = 5, #ARGV, 2 do
  redis.call('HSET', H, 'q:' .. ARGV[i], ARGV[i + 1])
  n = n + 1
end
redis.call('HSET', H, 'st', 'input_required', 'ow', '', 'en', '', 'qn', n, 'up', now)
-- The run ended well (it asked): not an attempt lost to a dead worker.
redis.call('HINCRBY', H, 'at', -1)
drop(ARGV[3], ARGV[4])
event(ARGV[2], 'input_required', 0)
return 1
"""

#: ARGV: id, then key/answer pairs. Returns 0 if unknown, else 1.
ANSWER = _PRELUDE + """
local st = redis.call('HGET', H, 'st')
if not st then return 0 end
if st ~= 'input_required' then return 1 end
local taken = 0
for i = 2, #ARGV, 2 do
  if redis.call('HDEL', H, 'q:' .. ARGV[i]) == 1 then
    redis.call('HSET', H, 'a:' .. ARGV[i], ARGV[i + 1])
    taken = taken + 1
  end
end
if taken == 0 then return 1 end
local left = redis.call('HINCRBY', H, 'qn', -taken)
redis.call('HSET', H, 'up', now)
if left <= 0 then
  local entry = redis.call('XADD', Q, '*', 't', ARGV[1])
  redis.call('HSET', H, 'st', 'working', 'en', entry, 'qn', 0)
  event(ARGV[1], 'working', 0)
else
  event(ARGV[1], 'input_required', 0)
end
return 1
"""

#: ARGV: token, id, group, entry, status, result, error, message. Returns 1 or 0 (fenced).
FINISH = _PRELUDE + """
if not holds(ARGV[1]) then return 0 end
finish(ARGV[2], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
drop(ARGV[3], ARGV[4])
return 1
"""

#: ARGV: token, id, group, entry. Hands a running task back to the queue.
RELEASE = _PRELUDE + """
if not holds(ARGV[1]) then return 0 end
drop(ARGV[3], ARGV[4])
local entry = redis.call('XADD', Q, '*', 't', ARGV[2])
redis.call('HSET', H, 'ow', '', 'en', entry, 'up', now)
redis.call('HINCRBY', H, 'at', -1)
return 1
"""

#: ARGV: id, group. Returns 0 if unknown, else 1.
CANCEL = _PRELUDE + """
local f = redis.call('HMGET', H, 'st', 'ow', 'en')
if not f[1] then return 0 end
if terminal(f[1]) then return 1 end
if f[2] ~= '' then
  redis.call('HSET', H, 'cx', 1)
  event(ARGV[1], f[1], 1)
  return 1
end
finish(ARGV[1], 'cancelled', nil, nil, 'cancelled')
drop(ARGV[2], f[3])
return 1
"""

#: KEYS: the queue. ARGV: the group. Creates the consumer group (and the stream) if missing.
GROUP = """
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
return 1
"""
