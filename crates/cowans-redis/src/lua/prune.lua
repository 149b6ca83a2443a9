-- Deletes finished jobs (completed, cancelled) finalized more than ARGV[1] ms ago and dead
-- letters more than ARGV[2] ms ago, at most ARGV[3] finished and ARGV[4] dead. Returns the
-- finished count and the dead count.
local now = now_ms()
local limit = tonumber(ARGV[3])
local function prune(state, cutoff, max)
  if max <= 0 then return 0 end
  local z = Q .. ':done:' .. state
  local ms = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. fmt(cutoff), 'LIMIT', 0, max)
  for _, m in ipairs(ms) do
    local id = unpad(m)
    drop_job(jk(id), id)
    redis.call('ZREM', z, m)
  end
  return #ms
end
local finished = prune('completed', now - tonumber(ARGV[1]), limit)
finished = finished + prune('cancelled', now - tonumber(ARGV[1]), limit - finished)
local dead = prune('dead', now - tonumber(ARGV[2]), tonumber(ARGV[4]))
return { finished, dead }
