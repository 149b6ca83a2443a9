-- Turns up to ARGV[1] expired leases into retries (available at their run_at, the attempt
-- counted) or dead letters (it was the last). ARGV: limit, error, channel, runnable payload.
-- Returns kind, dead (0/1), id per job.
local now = now_ms()
local out = {}
local retried = false
local expired = redis.call('ZRANGEBYSCORE', Q .. ':running', '-inf', '(' .. fmt(now), 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(expired) do
  redis.call('ZREM', Q .. ':running', m)
  local id = unpad(m)
  local key = jk(id)
  local f = redis.call('HMGET', key, 'state', 'attempt', 'max_attempts', 'worker', 'kind', 'priority', 'run_at')
  if f[1] == 'running' then
    local attempt = tonumber(f[2]) or 0
    local worker = nil
    if f[4] then worker = f[4] end
    append_error(key, attempt, now, worker, ARGV[2])
    if attempt >= (tonumber(f[3]) or 1) then
      finish(key, id, 'dead', now)
      out[#out + 1] = { f[5], 1, id }
    else
      redis.call('HSET', key, 'state', 'available')
      to_ready(id, f[6], tonumber(f[7]) or now)
      out[#out + 1] = { f[5], 0, id }
      retried = true
    end
  end
end
if retried then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return out
