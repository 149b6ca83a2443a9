-- Hands held jobs back as available at their run_at, the attempt not counted.
-- ARGV: channel, runnable payload, then id, lease pairs. Returns the ids released.
local out = {}
for i = 3, #ARGV, 2 do
  local id, lease = ARGV[i], ARGV[i + 1]
  local key = jk(id)
  if held(key, lease) then
    redis.call('ZREM', Q .. ':running', pad(id))
    local f = redis.call('HMGET', key, 'priority', 'run_at', 'attempt')
    local attempt = math.max((tonumber(f[3]) or 1) - 1, 0)
    redis.call('HSET', key, 'state', 'available', 'attempt', fmt(attempt))
    to_ready(id, f[1], tonumber(f[2]) or 0)
    out[#out + 1] = id
  end
end
if #out > 0 then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return out
