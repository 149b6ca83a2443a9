-- Records failed attempts of the jobs still held. ARGV: worker, channel, runnable payload,
-- scheduled payload, then 6 per failure: id, lease, next state, delay ms, attempt, error.
-- Like Postgres, a retry runs at now + delay (now for an immediate retry); a dead letter keeps
-- its run_at. Returns id, state, run_at per settled job.
local now = now_ms()
local out = {}
local avail, sched = false, false
for i = 5, #ARGV, 6 do
  local id, lease, state, delay, attempt, err = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local key = jk(id)
  if held(key, lease) then
    redis.call('ZREM', Q .. ':running', pad(id))
    redis.call('HDEL', key, 'lease_expires_at')
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
        sched = true
      else
        to_ready(id, f[1], ra)
        avail = true
      end
    end
    out[#out + 1] = { id, state, fmt(ra) }
  end
end
if avail then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
if sched then redis.call('PUBLISH', ARGV[2], ARGV[4]) end
return out
