-- Reserves ARGV[1] points of a shared cost bucket (hash Q:bucket: max, restore, available, at ms,
-- in_flight, settled_at ms; learnt from the answers, empty until the first). Points restore at
-- `restore` per second up to `max`; in-flight points of callers silent for 60 s are forgotten.
-- Returns how many seconds the caller should wait before sending (as text).
local k = Q .. ':bucket'
local req = tonumber(ARGV[1])
local now = now_ms()
local f = redis.call('HMGET', k, 'max', 'restore', 'available', 'at', 'in_flight', 'settled_at')
local max, restore, avail = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
local at, in_flight, settled = tonumber(f[4]) or now, tonumber(f[5]) or 0, tonumber(f[6]) or now
if settled < now - 60000 then in_flight = 0 end
redis.call('HSET', k, 'in_flight', tostring(in_flight + req), 'at', fmt(now))
if not f[6] then redis.call('HSET', k, 'settled_at', fmt(now)) end
if avail == nil then return '0' end
local restored = avail + (now - at) / 1000 * (restore or 0)
if max then restored = math.min(max, restored) end
avail = restored - req
redis.call('HSET', k, 'available', tostring(avail))
if restore and restore > 0 and avail < 0 then
  return tostring(-avail / restore)
end
return '0'
