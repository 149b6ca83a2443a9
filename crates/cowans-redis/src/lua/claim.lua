-- Claims up to ARGV[1] jobs in claim order (priority DESC, run_at, id) for worker ARGV[3]
-- with a lease of ARGV[2] ms; nothing when the queue is paused. Returns one array per job:
-- id, kind, args, priority, attempt, max_attempts, lease, run_at, created_at, attempted_at,
-- rate_key. Everything is read before anything is written (a script that fails halfway is not
-- rolled back); a job whose data cannot be read is dead-lettered, not left in no index.
if redis.call('HGET', Q .. ':control', 'paused') == '1' then
  return {}
end
local now = now_ms()
local limit = tonumber(ARGV[1])
local exp = now + tonumber(ARGV[2])
local picked = {}
local prios = redis.call('ZREVRANGE', Q .. ':prios', 0, -1)
for _, p in ipairs(prios) do
  if limit <= 0 then break end
  local k = Q .. ':ready:' .. p
  for _, m in ipairs(redis.call('ZRANGE', k, 0, limit - 1)) do
    local id = unpad(m)
    local f = redis.call('HMGET', jk(id), 'state', 'kind', 'args', 'priority', 'attempt',
      'max_attempts', 'run_at', 'created_at', 'rate_key')
    picked[#picked + 1] = { k = k, m = m, id = id, f = f }
    -- Only available jobs use up the limit; stale members are dropped below.
    if f[1] == 'available' then limit = limit - 1 end
  end
end
local out = {}
local lease = nil
for _, c in ipairs(picked) do
  local key = jk(c.id)
  redis.call('ZREM', c.k, c.m)
  local f = c.f
  if f[1] == 'available' then
    local attempt = tonumber(f[5])
    if attempt == nil then
      append_error(key, 0, now, ARGV[3], 'unreadable job data: attempt is ' .. tostring(f[5]))
      redis.call('HSET', key, 'attempt', '0')
      finish(key, c.id, 'dead', now)
    else
      lease = lease or redis.call('INCR', Q .. ':lease')
      attempt = attempt + 1
      redis.call('HSET', key, 'state', 'running', 'lease', fmt(lease), 'attempt', fmt(attempt),
        'attempted_at', fmt(now), 'worker', ARGV[3])
      redis.call('ZADD', Q .. ':running', fmt(exp), c.m)
      out[#out + 1] = { c.id, f[2], f[3], f[4], fmt(attempt), f[6], fmt(lease), f[7], f[8],
        fmt(now), f[9] }
    end
  end
end
for _, p in ipairs(prios) do
  if redis.call('ZCARD', Q .. ':ready:' .. p) == 0 then
    redis.call('ZREM', Q .. ':prios', p)
  end
end
return out
