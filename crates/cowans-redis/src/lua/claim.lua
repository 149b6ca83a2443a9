-- Claims up to ARGV[1] jobs in claim order (priority DESC, run_at, id) for worker ARGV[3]
-- with a lease of ARGV[2] ms; nothing when the queue is paused. Returns one array per job:
-- id, kind, args, priority, attempt, max_attempts, lease, run_at, created_at, attempted_at,
-- rate_key.
if redis.call('HGET', Q .. ':control', 'paused') == '1' then
  return {}
end
local now = now_ms()
local limit = tonumber(ARGV[1])
local exp = now + tonumber(ARGV[2])
local out = {}
local prios = redis.call('ZREVRANGE', Q .. ':prios', 0, -1)
for _, p in ipairs(prios) do
  if limit <= 0 then break end
  local k = Q .. ':ready:' .. p
  local popped = redis.call('ZPOPMIN', k, limit)
  for j = 1, #popped, 2 do
    local id = unpad(popped[j])
    local key = jk(id)
    if redis.call('HGET', key, 'state') == 'available' then
      local lease = redis.call('INCR', Q .. ':lease')
      redis.call('HINCRBY', key, 'attempt', 1)
      redis.call('HSET', key, 'state', 'running', 'lease', fmt(lease), 'lease_expires_at', fmt(exp),
        'attempted_at', fmt(now), 'worker', ARGV[3])
      redis.call('ZADD', Q .. ':running', fmt(exp), popped[j])
      local f = redis.call('HMGET', key, 'kind', 'args', 'priority', 'attempt', 'max_attempts', 'run_at',
        'created_at', 'rate_key')
      out[#out + 1] = { id, f[1], f[2], f[3], f[4], f[5], fmt(lease), f[6], f[7], fmt(now), f[8] }
      limit = limit - 1
    end
  end
  if redis.call('ZCARD', k) == 0 then
    redis.call('ZREM', Q .. ':prios', p)
  end
end
return out
