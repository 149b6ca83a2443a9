-- Deletes the queue's dead letters (of kind ARGV[1], '' = any), but only if there are exactly
-- ARGV[2] of them. Returns 1 and the count, or 0 and the actual count.
local kind, expected = ARGV[1], tonumber(ARGV[2])
local z = Q .. ':done:dead'
local ids = {}
for _, m in ipairs(redis.call('ZRANGE', z, 0, -1)) do
  local id = unpad(m)
  if kind == '' or redis.call('HGET', jk(id), 'kind') == kind then
    ids[#ids + 1] = id
  end
end
if #ids ~= expected then return { 0, #ids } end
for _, id in ipairs(ids) do
  drop_job(jk(id), id)
  redis.call('ZREM', z, pad(id))
end
return { 1, #ids }
