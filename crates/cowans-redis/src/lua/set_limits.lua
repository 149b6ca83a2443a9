-- Sets (or, with '', removes) the queue's limits. ARGV: concurrency, rate jobs, rate period ms,
-- rate by key ('1'/'0'), channel, control payload. Returns 1 if they changed, 0 if already so.
local k = Q .. ':control'
local cur = redis.call('HMGET', k, 'concurrency', 'rate_jobs', 'rate_period_ms', 'rate_by_key')
local want = { ARGV[1], ARGV[2], ARGV[3], ARGV[4] }
local same = true
for i = 1, 4 do
  if (cur[i] or '') ~= want[i] then same = false end
end
if same then return 0 end
local names = { 'concurrency', 'rate_jobs', 'rate_period_ms', 'rate_by_key' }
for i = 1, 4 do
  if want[i] == '' then
    redis.call('HDEL', k, names[i])
  else
    redis.call('HSET', k, names[i], want[i])
  end
end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
