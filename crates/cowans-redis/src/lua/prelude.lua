-- Shared helpers, prepended to every script. KEYS[1] is the hash-tagged base of the keys the
-- script touches (a queue's `{<prefix>:q:<queue>}` or the global `{<prefix>}`); every other
-- key is derived from it, so a script stays inside one cluster slot. The state bits (BIT) are
-- generated from `cowans_core::queue::state_bit` by the Rust side and prepended before this.
local Q = KEYS[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers travel as decimal text (tostring would switch to exponent form past 14 digits).
local function fmt(n)
  return string.format('%.0f', n)
end

-- Sorted-set members are zero-padded ids, so equal scores order by id.
local function pad(id)
  return string.rep('0', 20 - #id) .. id
end

local function unpad(m)
  local s = string.gsub(m, '^0+', '')
  return s
end

local function jk(id)
  return Q .. ':job:' .. id
end

local function holds_key(mask, state)
  local b = BIT[state]
  return b ~= nil and bit.band(tonumber(mask) or 0, b) ~= 0
end

local function to_ready(id, prio, run_at)
  redis.call('ZADD', Q .. ':ready:' .. prio, fmt(run_at), pad(id))
  redis.call('ZADD', Q .. ':prios', prio, prio)
end

local function off_ready(id, prio)
  local k = Q .. ':ready:' .. prio
  redis.call('ZREM', k, pad(id))
  if redis.call('ZCARD', k) == 0 then
    redis.call('ZREM', Q .. ':prios', prio)
  end
end

-- The job is running under this lease (the fencing of every ack).
local function held(key, lease)
  local v = redis.call('HMGET', key, 'state', 'lease')
  return v[1] == 'running' and v[2] == lease
end

-- Ends a job in a final state, indexed for retention by its finalized time.
local function finish(key, id, state, now)
  redis.call('HSET', key, 'state', state, 'finalized_at', fmt(now))
  redis.call('ZADD', Q .. ':done:' .. state, fmt(now), pad(id))
end

local function append_error(key, attempt, at, worker, err)
  local e = cjson.encode({ attempt = attempt, at = at, worker = worker, error = err })
  local cur = redis.call('HGET', key, 'errors')
  if not cur or cur == '' or cur == '[]' then
    cur = '[' .. e .. ']'
  else
    cur = string.sub(cur, 1, -2) .. ',' .. e .. ']'
  end
  redis.call('HSET', key, 'errors', cur)
end


-- Deletes a job: its hash, its place in the id index, and its unique key if it holds it. A job
-- of a batch still counted (its member set exists) leaves the set and is counted in
-- `Q:batch:<id>:gone` under `state` (the final state it ended in; default: its stored one).
local function drop_job(key, id, state)
  local f = redis.call('HMGET', key, 'unique_key', 'batch_id', 'state')
  local uk = f[1]
  if uk and redis.call('HGET', Q .. ':unique', uk) == id then
    redis.call('HDEL', Q .. ':unique', uk)
  end
  if f[2] then
    local members = Q .. ':batch:' .. f[2]
    if redis.call('SREM', members, id) == 1 then
      redis.call('HINCRBY', members .. ':gone', state or f[3], 1)
    end
  end
  redis.call('DEL', key)
  redis.call('ZREM', Q .. ':jobs', pad(id))
end
