-- Completes the jobs still held. ARGV: delete ('1'/'0'), then id, lease pairs. With delete, a
-- job is dropped at once unless its unique key holds while completed. Returns id, dropped (0/1)
-- per job done.
local now = now_ms()
local del = ARGV[1] == '1'
local out = {}
for i = 2, #ARGV, 2 do
  local id, lease = ARGV[i], ARGV[i + 1]
  local key = jk(id)
  if held(key, lease) then
    redis.call('ZREM', Q .. ':running', pad(id))
    local u = redis.call('HMGET', key, 'unique_key', 'unique_mask')
    local keep = u[1] and holds_key(u[2], 'completed')
    if del and not keep then
      drop_job(key, id, 'completed')
      out[#out + 1] = { id, 1 }
    else
      finish(key, id, 'completed', now)
      out[#out + 1] = { id, 0 }
    end
  end
end
return out
