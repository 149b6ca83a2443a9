-- Deletes finished jobs (completed, cancelled) finalized more than ARGV[1] ms ago and dead
-- letters more than ARGV[2] ms ago, at most ARGV[3] finished and ARGV[4] dead. Returns the
-- finished count, the dead count, then the deleted ids.
local now = now_ms()
local limit = tonumber(ARGV[3])
local ids = {}
local function prune(state, cutoff, max)
  if max <= 0 then return 0 end
  local z = Q .. ':done:' .. state
  local ms = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. fmt(cutoff), 'LIMIT', 0, max)
  for _, m in ipairs(ms) do
    local id = unpad(m)
    drop_job(jk(id), id)
    redis.call('ZREM', z, m)
    ids[#ids + 1] = id
  end
  return #ms
end
local finished = prune('completed', now - tonumber(ARGV[1]), limit)
finished = finished + prune('cancelled', now - tonumber(ARGV[1]), limit - finished)
local dead = prune('dead', now - tonumber(ARGV[2]), tonumber(ARGV[4]))
local out = { finished, dead }
for _, id in ipairs(ids) do out[#out + 1] = id end
return out
