-- Records failed attempts of the jobs still held. ARGV: worker, then 6 per failure: id, lease,
-- next state, delay ms, attempt, error. Publishes nothing (as Postgres): the worker that failed
-- them wakes its own producers with the exact run_at; others find them on their next poll.
-- Like Postgres, a retry runs at now + delay (now for an immediate retry); a dead letter keeps
-- its run_at. Returns id, state, run_at per settled job.
local now = now_ms()
local out = {}
for i = 2, #ARGV, 6 do
  local id, lease, state, delay, attempt, err = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local key = jk(id)
  if held(key, lease) then
    redis.call('ZREM', Q .. ':running', pad(id))
    append_error(key, tonumber(attempt), now, ARGV[1], err)
    local f = redis.call('HMGET', key, 'priority', 'run_at')
    local ra = tonumber(f[2]) or now
    if state == 'dead' then
      finish(key, id, 'dead', now)
    else
      ra = now + (tonumber(delay) or 0)
      redis.call('HSET', key, 'state', state, 'run_at', fmt(ra))
      if state == 'scheduled' then
        redis.call('ZADD', Q .. ':sched', fmt(ra), pad(id))
      else
        to_ready(id, f[1], ra)
      end
    end
    out[#out + 1] = { id, state, fmt(ra) }
  end
end
return out
