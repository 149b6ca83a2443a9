-- Takes up to ARGV[2] of the ARGV[1] permits of the scope for holder ARGV[3], each valid for
-- ARGV[4] ms. A permit is `Q:permits` slot -> "token:holder:expires ms"; an expired one (its
-- holder stopped extending it) is free. Returns slot, token pairs.
local limit, want, holder, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local now = now_ms()
local h = Q .. ':permits'
local out = {}
local got = 0
for slot = 0, limit - 1 do
  if got >= want then break end
  local v = redis.call('HGET', h, slot)
  local exp = v and tonumber(string.match(v, ':([^:]*)$'))
  if not exp or exp < now then
    local token = redis.call('INCR', Q .. ':permit_seq')
    redis.call('HSET', h, slot, token .. ':' .. holder .. ':' .. fmt(now + ttl))
    out[#out + 1] = slot
    out[#out + 1] = token
    got = got + 1
  end
end
return out
