-- Global: forgets one worker (ARGV[1] = its id).
redis.call('HDEL', Q .. ':workers', ARGV[1])
redis.call('ZREM', Q .. ':workers:seen', ARGV[1])
return 0
