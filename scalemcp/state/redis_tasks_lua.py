"""The Lua scripts of the Redis task store (``state/redis_tasks.py``).

Every script runs on Redis' clock (``TIME``) and touches one task's hash, the queue stream
and the event stream: keys of one hash tag (``{<prefix>tasks}``), one Cluster slot.

Hash fields: ``st`` status, ``sm`` status message, ``pr`` principal, ``rq`` request,
``cr``/``up`` created/updated ms, ``ttl``, ``pi`` poll interval, ``ls`` lease ms, ``ma``
max attempts, ``at`` attempts, ``tk`` fencing token, ``ow`` owner, ``lu`` lease until (ms),
``cx`` cancel asked, ``en`` queue entry, ``rs`` result, ``er`` error, ``tw`` terminal
writes, ``qn`` outstanding requests, ``tl`` the tool; ``q:<key>`` a request, ``a:<key>`` an
answer.

Running tasks are also members of two zsets, ``<tag>:run:p:<principal>`` and
``<tag>:run:t:<tool>``, scored by their lease's end: the per-principal and per-tool limits
count the members whose lease still runs (a dead worker's leave by themselves).
"""

from __future__ import annotations

__all__ = ["ANSWER", "CANCEL", "CLAIM", "CREATE", "CREATE_CLAIM", "FINISH", "GROUP",
           "HEARTBEAT", "PARK", "PROGRESS", "RELEASE", "START"]

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
local function run_keys(id)
  local f = redis.call('HMGET', H, 'pr', 'tl')
  local tag = string.sub(H, 1, #H - #id - 3)
  return tag .. ':run:p:' .. (f[1] or '-'), tag .. ':run:t:' .. (f[2] or '-')
end
local function stop_running(id)
  local kp, kt = run_keys(id)
  redis.call('ZREM', kp, id)
  redis.call('ZREM', kt, id)
end
local function mark_running(id, till, ls)
  local kp, kt = run_keys(id)
  for _, k in ipairs({kp, kt}) do
    redis.call('ZADD', k, till, id)
    if redis.call('PTTL', k) < ls * 3 then redis.call('PEXPIRE', k, ls * 3) end
  end
end
local function over(k, limit, id)
  if limit <= 0 then return false end
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  redis.call('ZREM', k, id)
  return redis.call('ZCARD', k) >= limit
end
local function finish(id, st, rs, er, sm)
  redis.call('HSET', H, 'st', st, 'ow', '', 'up', now)
  if rs and rs ~= '' then redis.call('HSET', H, 'rs', rs) end
  if er and er ~= '' then redis.call('HSET', H, 'er', er) end
  if sm and sm ~= '' then redis.call('HSET', H, 'sm', sm) end
  redis.call('HINCRBY', H, 'tw', 1)
  clear_requests()
  stop_running(id)
  event(id, st, 0)
end
-- A run holds the task with its token while it works, or while it waits (held, not
-- parked: 2025-11-25's requests to the client) in input_required with an owner.
local function holds(token)
  local f = redis.call('HMGET', H, 'tk', 'st', 'ow')
  return f[1] and f[1] == token
    and (f[2] == 'working' or (f[2] == 'input_required' and f[3] ~= ''))
end
"""
_PRELUDE = "local H, Q, EV = KEYS[1], KEYS[2], KEYS[3]\n" + _HELPERS
_CLAIM_PRELUDE = "local H, Q, EV = '', KEYS[1], KEYS[2]\n" + _HELPERS

_CREATE_FN = """
local function create(id, ttl, most, first_field, index)
  -- The queue holds an entry per task waiting or running (a parked one has none).
  if most > 0 and redis.call('XLEN', Q) >= most then return {'full'} end
  local fields = {}
  for i = first_field, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', H, 'st', 'working', 'cr', now, 'up', now, 'tk', 0, 'at', 0,
             'ow', '', 'cx', 0, 'tw', 0, 'qn', 0, unpack(fields))
  local entry = redis.call('XADD', Q, '*', 't', id)
  redis.call('HSET', H, 'en', entry)
  redis.call('PEXPIRE', H, ttl)
  redis.call('ZADD', index, now, id)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now - 86400000 * 30)
  if redis.call('PTTL', index) < ttl then redis.call('PEXPIRE', index, ttl) end
  return {entry, now}
end
"""

#: ARGV: id, ttl ms, most tasks waiting or running (0: no limit), then field/value pairs.
#: KEYS[4]: the principal's index (a zset by creation time; members past their TTL are
#: dropped as it is read). Returns {entry, creation time (ms)}, or {'full'}.
CREATE = _PRELUDE + _CREATE_FN + """
return create(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), 4, KEYS[4])
"""

#: Decides on a delivered entry: run the task (a new token, an attempt counted), end it
#: (cancelled; failed as a dead letter, recorded in ``dead``), leave it (leased: {-1}), or
#: hold it back ({-2}: its principal or its tool runs ``plimit`` / ``tlimit`` tasks
#: already; it goes back to the end of the queue).
_START_FN = """
local function start(id, entry, worker, group, dead_error, dead, plimit, tlimit)
  local f = redis.call('HMGET', H, 'st', 'cx', 'ow', 'lu', 'at', 'ma', 'en', 'ls')
  if not f[1] then drop(group, entry) return {0} end
  if terminal(f[1]) or (f[1] == 'input_required' and f[3] == '') or f[7] ~= entry then
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
  local kp, kt = run_keys(id)
  if over(kp, tonumber(plimit), id) or over(kt, tonumber(tlimit), id) then
    drop(group, entry)
    local again = redis.call('XADD', Q, '*', 't', id)
    redis.call('HSET', H, 'en', again, 'ow', '')
    return {-2}
  end
  local attempt = redis.call('HINCRBY', H, 'at', 1)
  local token = redis.call('HINCRBY', H, 'tk', 1)
  local till = now + tonumber(f[8])
  redis.call('HSET', H, 'st', 'working', 'ow', worker, 'lu', till, 'up', now)
  mark_running(id, till, tonumber(f[8]))
  return {1, token, attempt, redis.call('HGETALL', H), id, entry}
end
"""

#: ARGV: id, entry, worker, group, dead-letter error, principal limit, tool limit (0: none).
#: KEYS[4]: the dead-letter stream. Returns {1, token, attempt, HGETALL..., id, entry}
#: (claimed), {0} (ended or stale), {-1} (leased), {-2} (held back).
START = _PRELUDE + _START_FN + """
return start(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], KEYS[4], ARGV[6], ARGV[7])
"""

#: Takes the next new entry (XREADGROUP, not blocking) and starts it. The task's key is
#: made from ``prefix``: it shares the queue's hash tag, so it lives in the same Cluster
#: slot. Returns as START, or {0} when nothing is queued ({-2} when the entry read was
#: held back). ``protected``: a failed read (NOGROUP: Redis lost the group) is {0}, not
#: an error (the script has written already).
_NEXT_FN = """
local function next_entry(worker, group, prefix, dead_error, dead, plimit, tlimit, protected)
  local got
  if protected then
    got = redis.pcall('XREADGROUP', 'GROUP', group, worker, 'COUNT', 1, 'STREAMS', Q, '>')
    if type(got) == 'table' and got.err then return {0} end
  else
    got = redis.call('XREADGROUP', 'GROUP', group, worker, 'COUNT', 1, 'STREAMS', Q, '>')
  end
  if not got then return {0} end
  local last = 0
  for _, e in ipairs(got[1][2]) do
    local fields, id = e[2], nil
    for i = 1, #fields, 2 do if fields[i] == 't' then id = fields[i + 1] end end
    if id then
      H = prefix .. id
      local r = start(id, e[1], worker, group, dead_error, dead, plimit, tlimit)
      if r[1] == 1 then return r end
      last = r[1]
    else
      drop(group, e[1])
    end
  end
  return {last}
end
"""

#: KEYS: the queue, the events, the dead letters. ARGV: worker, group, the prefix of task
#: keys, dead-letter error, principal limit, tool limit. A claim in one round trip:
#: returns as START, or {0} when nothing is queued ({-2}: held back).
CLAIM = _CLAIM_PRELUDE + _START_FN + _NEXT_FN + """
return next_entry(ARGV[1], ARGV[2], ARGV[3], ARGV[4], KEYS[3], ARGV[5], ARGV[6], false)
"""

#: CREATE, then CLAIM for the creating worker (it has a free slot): the next new entry,
#: this task's unless older ones wait. KEYS: the task, the queue, the events, the
#: principal's index, the dead letters. ARGV: id, ttl ms, most, worker, group, the prefix
#: of task keys, dead-letter error, principal limit, tool limit, then field/value pairs.
#: Returns {'full'}, or {entry, creation time, CLAIM's reply}.
CREATE_CLAIM = _PRELUDE + _START_FN + _CREATE_FN + _NEXT_FN + """
local made = create(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), 10, KEYS[4])
if made[1] == 'full' then return made end
return {made[1], made[2],
        next_entry(ARGV[4], ARGV[5], ARGV[6], ARGV[7], KEYS[5], ARGV[8], ARGV[9], true)}
"""

#: ARGV: token, worker, group, entry, id. Returns 'ok', 'cancel' or 'lost'.
HEARTBEAT = _PRELUDE + """
if not holds(ARGV[1]) then return 'lost' end
local f = redis.call('HMGET', H, 'ls', 'cx')
redis.call('HSET', H, 'lu', now + tonumber(f[1]))
mark_running(ARGV[5], now + tonumber(f[1]), tonumber(f[1]))
redis.call('XCLAIM', Q, ARGV[3], ARGV[2], 0, ARGV[4], 'JUSTID')
if f[2] == '1' then return 'cancel' end
return 'ok'
"""

#: ARGV: token, id, message, status (working, or input_required while the run waits for
#: the client). Returns 1, or 0 if fenced.
PROGRESS = _PRELUDE + """
if not holds(ARGV[1]) then return 0 end
redis.call('HSET', H, 'sm', ARGV[3], 'st', ARGV[4], 'up', now)
event(ARGV[2], ARGV[4], 0)
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
stop_running(ARGV[2])
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
stop_running(ARGV[2])
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
