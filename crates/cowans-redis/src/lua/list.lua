-- Lists a queue's jobs in id order after ARGV[1] ('' = from the first) whose state is ARGV[3]
-- and kind ARGV[4] ('' = any), at most ARGV[2] of them, looking at no more than ARGV[5] jobs (a
-- bounded call: the caller goes on from the returned cursor). Returns the last id looked at
-- ('' when the queue has no more jobs), then the matching ids.
local limit, budget = tonumber(ARGV[2]), tonumber(ARGV[5])
local lo = '-inf'
if ARGV[1] ~= '' then lo = '(' .. ARGV[1] end
local found = {}
local seen, last, ended = 0, '', false
while #found < limit and seen < budget do
  local ms = redis.call('ZRANGEBYSCORE', Q .. ':jobs', lo, '+inf', 'LIMIT', 0, math.min(500, budget - seen))
  if #ms == 0 then
    ended = true
    break
  end
  for _, m in ipairs(ms) do
    local id = unpad(m)
    seen = seen + 1
    last = id
    local f = redis.call('HMGET', jk(id), 'state', 'kind')
    if f[1] and (ARGV[3] == '' or f[1] == ARGV[3]) and (ARGV[4] == '' or f[2] == ARGV[4]) then
      found[#found + 1] = id
      if #found == limit then break end
    end
  end
  lo = '(' .. last
end
local out = { last }
if ended then out[1] = '' end
for _, id in ipairs(found) do out[#out + 1] = id end
return out
