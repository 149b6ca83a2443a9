-- Inserts the jobs of one queue, all or none (every input was checked before the call).
-- ARGV: channel, available payload, scheduled payload, queue, n, batched ('1'/'0'), then 9 per
-- job: id, kind, args, priority, run_at ms ('' = now), max_attempts, unique key, unique mask,
-- rate key, and with batched a 10th: the job's batch id ('' = none; it joins the batch's member
-- set `Q:batch:<id>`). All jobs share one `now`, so due ones are claimed in the call's order.
-- Returns id, duplicate (0/1) per job; fails with IDS_TAKEN, writing nothing, if a job with one
-- of the ids exists (the counter of id blocks went back: a server that lost writes).
local now = now_ms()
local queue = ARGV[4]
local n = tonumber(ARGV[5])
local stride = 9
if ARGV[6] == '1' then stride = 10 end
for i = 0, n - 1 do
  if redis.call('EXISTS', jk(ARGV[7 + i * stride])) == 1 then
    return redis.error_reply('IDS_TAKEN job ' .. ARGV[7 + i * stride] .. ' exists')
  end
end
local out = {}
local avail, sched = false, false
for i = 0, n - 1 do
  local b = 7 + i * stride
  local id, kind, args, prio = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local run_at, maxa, ukey, umask, rkey = ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], ARGV[b + 7], ARGV[b + 8]
  local batch = ''
  if stride == 10 then batch = ARGV[b + 9] end
  local dup = nil
  if ukey ~= '' then
    local holder = redis.call('HGET', Q .. ':unique', ukey)
    if holder then
      local h = redis.call('HMGET', jk(holder), 'state', 'unique_mask')
      if h[1] and holds_key(h[2], h[1]) then
        dup = holder
      end
    end
  end
  if dup then
    out[#out + 1] = dup
    out[#out + 1] = 1
  else
    local ra = now
    if run_at ~= '' then ra = tonumber(run_at) end
    local state = 'available'
    if ra > now then state = 'scheduled' end
    local f = { 'queue', queue, 'kind', kind, 'args', args, 'state', state, 'priority', prio,
      'attempt', '0', 'max_attempts', maxa, 'run_at', fmt(ra), 'created_at', fmt(now), 'errors', '[]' }
    if ukey ~= '' then
      f[#f + 1] = 'unique_key'; f[#f + 1] = ukey
      f[#f + 1] = 'unique_mask'; f[#f + 1] = umask
      redis.call('HSET', Q .. ':unique', ukey, id)
    end
    if rkey ~= '' then
      f[#f + 1] = 'rate_key'; f[#f + 1] = rkey
    end
    if batch ~= '' then
      f[#f + 1] = 'batch_id'; f[#f + 1] = batch
      redis.call('SADD', Q .. ':batch:' .. batch, id)
    end
    redis.call('HSET', jk(id), unpack(f))
    redis.call('ZADD', Q .. ':jobs', id, pad(id))
    if state == 'available' then
      to_ready(id, prio, ra)
      avail = true
    else
      redis.call('ZADD', Q .. ':sched', fmt(ra), pad(id))
      sched = true
    end
    out[#out + 1] = id
    out[#out + 1] = 0
  end
end
if avail then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
if sched then redis.call('PUBLISH', ARGV[1], ARGV[3]) end
return out
