-- ARGV: '1'/'0', channel, control payload.
redis.call('HSET', Q .. ':control', 'paused', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
