-- GCRA buckets of ARGV[1] tokens per ARGV[2] ms: one token every T = period / limit, a burst of
-- up to `limit`. `Q:rate` key -> theoretical arrival time (ms, fractional). ARGV: limit,
-- period, then key, want pairs. Returns key, granted, next token's time (ms) per key.
local t = tonumber(ARGV[2]) / tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local now = now_ms()
local h = Q .. ':rate'
local out = {}
for i = 3, #ARGV, 2 do
  local key, want = ARGV[i], tonumber(ARGV[i + 1])
  local base = math.max(tonumber(redis.call('HGET', h, key) or '0') or 0, now)
  local n = math.max(0, math.min(want, math.floor((now - base) / t + tau / t + 1e-9)))
  redis.call('HSET', h, key, string.format('%.3f', base + n * t))
  -- Rounded up: a token is never announced before it exists.
  out[#out + 1] = { key, n, fmt(math.ceil(math.max(now, base + (n + 1) * t - tau))) }
end
return out
