-- Counts the jobs of batches ARGV[1..] in this queue by state: the members' stored states, plus
-- `failed` (members waiting for a retry), plus the final states of members deleted since
-- (`Q:batch:<id>:gone`). Returns {batch id, {state, count, ...}} per batch.
local out = {}
for _, batch in ipairs(ARGV) do
  local members = Q .. ':batch:' .. batch
  local counts = {}
  for _, id in ipairs(redis.call('SMEMBERS', members)) do
    local f = redis.call('HMGET', jk(id), 'state', 'attempt')
    local s = f[1]
    if s then
      counts[s] = (counts[s] or 0) + 1
      if (s == 'available' or s == 'scheduled') and (tonumber(f[2]) or 0) > 0 then
        counts['failed'] = (counts['failed'] or 0) + 1
      end
    end
  end
  local gone = redis.call('HGETALL', members .. ':gone')
  for i = 1, #gone, 2 do
    counts[gone[i]] = (counts[gone[i]] or 0) + tonumber(gone[i + 1])
  end
  local flat = {}
  for s, n in pairs(counts) do
    flat[#flat + 1] = s
    flat[#flat + 1] = n
  end
  out[#out + 1] = { batch, flat }
end
return out
