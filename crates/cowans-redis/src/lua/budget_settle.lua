-- Settles a reservation of ARGV[1] points with the answer's throttle status: ARGV[2] maximum,
-- ARGV[3] currently available, ARGV[4] restore rate ('' each when the answer had none).
local k = Q .. ':bucket'
-- A bucket forgotten meanwhile (another token) is not taught by an answer to the old one.
if redis.call('EXISTS', k) == 0 then return 0 end
local req = tonumber(ARGV[1])
local now = now_ms()
local in_flight = tonumber(redis.call('HGET', k, 'in_flight') or '0') or 0
local left = math.max(0, in_flight - req)
redis.call('HSET', k, 'in_flight', tostring(left), 'settled_at', fmt(now))
if ARGV[2] ~= '' then redis.call('HSET', k, 'max', ARGV[2]) end
if ARGV[4] ~= '' then redis.call('HSET', k, 'restore', ARGV[4]) end
if ARGV[3] ~= '' then
  redis.call('HSET', k, 'available', tostring(tonumber(ARGV[3]) - left), 'at', fmt(now))
end
return 1
