-- Global: takes or renews role ARGV[1] for holder ARGV[2] for ARGV[3] ms. The holder key is
-- SET NX PX; the term (in a hash with the last holder) grows when the holder changes.
-- Returns the term, or nil when another holder leads.
local hk = Q .. ':leader:' .. ARGV[1]
local tk = hk .. ':term'
local cur = redis.call('GET', hk)
if cur and cur ~= ARGV[2] then return nil end
if cur then
  redis.call('PEXPIRE', hk, ARGV[3])
else
  redis.call('SET', hk, ARGV[2], 'NX', 'PX', ARGV[3])
end
if redis.call('HGET', tk, 'holder') ~= ARGV[2] then
  redis.call('HINCRBY', tk, 'term', 1)
  redis.call('HSET', tk, 'holder', ARGV[2])
end
return tonumber(redis.call('HGET', tk, 'term'))
