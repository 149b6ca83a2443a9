-- Gives permits back, fenced by their token (a permit taken over after it expired stays taken).
-- ARGV: channel, wake-up payload ('' = none), then slot, token pairs. Wakes the scope's
-- producers if one was freed. Returns how many were freed.
local h = Q .. ':permits'
local freed = 0
for i = 3, #ARGV, 2 do
  local v = redis.call('HGET', h, ARGV[i])
  if v and string.match(v, '^([^:]*):') == ARGV[i + 1] then
    redis.call('HDEL', h, ARGV[i])
    freed = freed + 1
  end
end
if freed > 0 and ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return freed
