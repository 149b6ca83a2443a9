-- Makes dead letters available again with attempt 0, runnable now; a dead letter whose unique
-- key a live job holds is left alone. ARGV: channel, runnable payload, ids. Returns ids moved.
local now = now_ms()
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local key = jk(id)
  local f = redis.call('HMGET', key, 'state', 'unique_key', 'priority')
  if f[1] == 'dead' then
    local free = true
    if f[2] then
      local holder = redis.call('HGET', Q .. ':unique', f[2])
      if holder and holder ~= id then
        local h = redis.call('HMGET', jk(holder), 'state', 'unique_mask')
        if h[1] and holds_key(h[2], h[1]) then free = false end
      end
    end
    if free then
      if f[2] then redis.call('HSET', Q .. ':unique', f[2], id) end
      redis.call('ZREM', Q .. ':done:dead', pad(id))
      redis.call('HSET', key, 'state', 'available', 'attempt', '0', 'run_at', fmt(now))
      redis.call('HDEL', key, 'finalized_at')
      to_ready(id, f[3], now)
      out[#out + 1] = id
    end
  end
end
if #out > 0 then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return out
