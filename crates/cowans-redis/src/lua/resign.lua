-- Global: gives role ARGV[1] up if ARGV[2] holds it.
local hk = Q .. ':leader:' .. ARGV[1]
if redis.call('GET', hk) == ARGV[2] then redis.call('DEL', hk) end
return 1
