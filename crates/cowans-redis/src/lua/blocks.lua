-- Global: takes ARGV[2] blocks of job ids for queue ARGV[1] (every id of a block belongs to
-- one queue, so an id names its queue through its block) and records the queue as known.
-- Returns the first block's number.
local n = tonumber(ARGV[2])
local last = redis.call('INCRBY', Q .. ':blocks_seq', n)
for b = last - n + 1, last do
  redis.call('HSET', Q .. ':blocks', fmt(b), ARGV[1])
end
redis.call('SADD', Q .. ':queues', ARGV[1])
return last - n + 1
