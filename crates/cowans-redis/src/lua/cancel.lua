-- Cancels job ARGV[1] unless finished. ARGV: id, channel, cancel payload (sent if it ran).
-- Returns {'missing'}, {'final', state} or {'ok', previous state}.
local id = ARGV[1]
local key = jk(id)
local f = redis.call('HMGET', key, 'state', 'priority')
local s = f[1]
if not s then return { 'missing' } end
if s == 'completed' or s == 'cancelled' or s == 'dead' then return { 'final', s } end
if s == 'available' then
  off_ready(id, f[2])
elseif s == 'scheduled' then
  redis.call('ZREM', Q .. ':sched', pad(id))
elseif s == 'running' then
  redis.call('ZREM', Q .. ':running', pad(id))
end
finish(key, id, 'cancelled', now_ms())
if s == 'running' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return { 'ok', s }
