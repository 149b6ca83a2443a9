-- Returns ARGV[4] unused tokens of key ARGV[3] to its bucket of ARGV[1] per ARGV[2] ms.
local h = Q .. ':rate'
local tat = tonumber(redis.call('HGET', h, ARGV[3]) or '')
if tat then
  local t = tonumber(ARGV[2]) / tonumber(ARGV[1])
  redis.call('HSET', h, ARGV[3], string.format('%.3f', tat - tonumber(ARGV[4]) * t))
end
return 1
