-- One queue's live summary: now, available, scheduled, running, completed, cancelled, dead,
-- oldest available run_at (or nil), completed in the last minute, paused (0/1).
local now = now_ms()
local avail = 0
local oldest = nil
for _, p in ipairs(redis.call('ZRANGE', Q .. ':prios', 0, -1)) do
  local k = Q .. ':ready:' .. p
  avail = avail + redis.call('ZCARD', k)
  local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  if first[2] then
    local s = tonumber(first[2])
    if oldest == nil or s < oldest then oldest = s end
  end
end
local paused = 0
if redis.call('HGET', Q .. ':control', 'paused') == '1' then paused = 1 end
local o = false
if oldest then o = fmt(oldest) end
return { fmt(now), avail, redis.call('ZCARD', Q .. ':sched'), redis.call('ZCARD', Q .. ':running'),
  redis.call('ZCARD', Q .. ':done:completed'), redis.call('ZCARD', Q .. ':done:cancelled'),
  redis.call('ZCARD', Q .. ':done:dead'), o,
  redis.call('ZCOUNT', Q .. ':done:completed', '(' .. fmt(now - 60000), '+inf'), paused }
