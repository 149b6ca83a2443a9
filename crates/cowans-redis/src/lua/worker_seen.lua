-- Global: upserts worker ARGV[1] (info JSON ARGV[2]) and marks it seen now.
redis.call('HSET', Q .. ':workers', ARGV[1], ARGV[2])
redis.call('ZADD', Q .. ':workers:seen', fmt(now_ms()), ARGV[1])
return 1
