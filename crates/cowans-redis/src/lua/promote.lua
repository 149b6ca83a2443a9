-- Makes up to ARGV[1] due scheduled jobs available. ARGV: limit, channel, runnable payload.
-- Returns promoted count and the next run_at still in the future (or nil).
local now = now_ms()
local limit = tonumber(ARGV[1])
local n = 0
if limit > 0 then
  local due = redis.call('ZRANGEBYSCORE', Q .. ':sched', '-inf', fmt(now), 'LIMIT', 0, limit)
  for _, m in ipairs(due) do
    redis.call('ZREM', Q .. ':sched', m)
    local id = unpad(m)
    local key = jk(id)
    local f = redis.call('HMGET', key, 'state', 'priority', 'run_at')
    if f[1] == 'scheduled' then
      redis.call('HSET', key, 'state', 'available')
      to_ready(id, f[2], tonumber(f[3]) or now)
      n = n + 1
    end
  end
end
if n > 0 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
local nxt = redis.call('ZRANGEBYSCORE', Q .. ':sched', '(' .. fmt(now), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
return { n, nxt[2] }
