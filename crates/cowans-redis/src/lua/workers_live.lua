-- Global: the info JSON of every worker seen within ARGV[1] ms.
local live = redis.call('ZRANGEBYSCORE', Q .. ':workers:seen', '(' .. fmt(now_ms() - tonumber(ARGV[1])), '+inf')
local out = {}
for _, w in ipairs(live) do
  local info = redis.call('HGET', Q .. ':workers', w)
  if info then out[#out + 1] = info end
end
return out
