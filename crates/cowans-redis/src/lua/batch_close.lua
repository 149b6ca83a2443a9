-- Forgets batches ARGV[1..] (finished): their member sets and the counts of deleted members.
-- Their jobs stay, and are pruned like any other from now on.
for _, batch in ipairs(ARGV) do
  local members = Q .. ':batch:' .. batch
  redis.call('DEL', members, members .. ':gone')
end
return #ARGV
