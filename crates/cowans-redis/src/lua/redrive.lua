-- Makes dead letters (and with ARGV[3] = '1' cancelled jobs too) available again with attempt
-- 0, runnable now; one whose unique key a live job holds is left alone. ARGV: channel,
-- runnable payload, also cancelled ('1'/'0'), ids. Returns ids moved.
local now = now_ms()
local out = {}
local cancelled_too = ARGV[3] == '1'
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = jk(id)
  local f = redis.call('HMGET', key, 'state', 'unique_key', 'priority')
  if f[1] == 'dead' or (cancelled_too and f[1] == 'cancelled') then
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
      redis.call('ZREM', Q .. ':done:' .. f[1], pad(id))
      redis.call('HSET', key, 'state', 'available', 'attempt', '0', 'run_at', fmt(now))
      redis.call('HDEL', key, 'finalized_at')
      to_ready(id, f[3], now)
      out[#out + 1] = id
    end
  end
end
if #out > 0 then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return out
