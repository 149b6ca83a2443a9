-- The ids of batch ARGV[1]'s jobs stored in this queue.
return redis.call('SMEMBERS', Q .. ':batch:' .. ARGV[1])
