-- Global: allocates ids for a batch (ARGV = the queue of each job, in order), records
-- id -> queue and the known queues. Returns the first id (ids start at FIRST_ID, so they
-- never meet Postgres' ids).
local n = #ARGV
local last = redis.call('INCRBY', Q .. ':ids', n)
local first = FIRST_ID + last - n + 1
local seen = {}
for i = 1, n do
  redis.call('HSET', Q .. ':jobq', fmt(first + i - 1), ARGV[i])
  if not seen[ARGV[i]] then
    seen[ARGV[i]] = true
    redis.call('SADD', Q .. ':queues', ARGV[i])
  end
end
return first
