-- Extends every permit of the scope that holder ARGV[1] has to ARGV[2] ms from now, or with
-- ARGV[2] = '' gives them all back. Returns how many it touched.
local h = Q .. ':permits'
local now = now_ms()
local all = redis.call('HGETALL', h)
local n = 0
for i = 1, #all, 2 do
  local token, holder = string.match(all[i + 1], '^([^:]*):([^:]*):')
  if holder == ARGV[1] then
    if ARGV[2] == '' then
      redis.call('HDEL', h, all[i])
    else
      redis.call('HSET', h, all[i], token .. ':' .. holder .. ':' .. fmt(now + tonumber(ARGV[2])))
    end
    n = n + 1
  end
end
return n
