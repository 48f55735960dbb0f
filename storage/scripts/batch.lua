-- Apply many transitions of `_ops.lua` atomically, in one round trip (a poll cycle's writes, whatever its size).
-- KEYS: every op's keys, one op after the other.
-- ARGV: op count, then for each op: name, key count, argument count, arguments...
-- Returns each op's reply, in order.
local replies = {}
local next_key, next_arg = 1, 2
for i = 1, tonumber(ARGV[1]) do
  local name, key_count, arg_count = ARGV[next_arg], tonumber(ARGV[next_arg + 1]), tonumber(ARGV[next_arg + 2])
  next_arg = next_arg + 3
  local K, A = {}, {}
  for j = 1, key_count do K[j] = KEYS[next_key + j - 1] end
  for j = 1, arg_count do A[j] = ARGV[next_arg + j - 1] end
  next_key, next_arg = next_key + key_count, next_arg + arg_count
  local op = OPS[name]
  if not op then return redis.error_reply('unknown op ' .. tostring(name)) end
  replies[i] = op(K, A)
end
return replies
