-- Extends the leases still held by ARGV[1] ms (the expiry is the job's score in `running`). ARGV: ttl, then id, lease pairs. Returns held ids.
local exp = now_ms() + tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 2 do
  local id, lease = ARGV[i], ARGV[i + 1]
  local key = jk(id)
  if held(key, lease) then
    redis.call('ZADD', Q .. ':running', fmt(exp), pad(id))
    out[#out + 1] = id
  end
end
return out
