-- Puts held jobs back to wait until a time, the attempt not counted.
-- ARGV: id, lease, run_at ms triples. Returns the ids deferred.
local out = {}
for i = 1, #ARGV, 3 do
  local id, lease, at = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = jk(id)
  if held(key, lease) then
    redis.call('ZREM', Q .. ':running', pad(id))
    local attempt = math.max((tonumber(redis.call('HGET', key, 'attempt')) or 1) - 1, 0)
    redis.call('HSET', key, 'state', 'scheduled', 'attempt', fmt(attempt), 'run_at', at)
    redis.call('ZADD', Q .. ':sched', at, pad(id))
    out[#out + 1] = id
  end
end
return out
