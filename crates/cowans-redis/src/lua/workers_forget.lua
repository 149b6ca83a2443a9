-- Global: forgets workers not seen for ARGV[1] ms; returns how many.
local stale = redis.call('ZRANGEBYSCORE', Q .. ':workers:seen', '-inf', '(' .. fmt(now_ms() - tonumber(ARGV[1])))
for _, w in ipairs(stale) do
  redis.call('ZREM', Q .. ':workers:seen', w)
  redis.call('HDEL', Q .. ':workers', w)
end
return #stale
