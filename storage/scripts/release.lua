-- Give back leases on shutdown: each job still held under its token becomes due now, for another process.
-- KEYS: due
-- ARGV: jid, token, jid, token, ...
-- Returns the number released.
local due = KEYS[1]
local now = now_ms()
local released = 0
for i = 1, #ARGV, 2 do
  if fenced(due, ARGV[i], ARGV[i + 1]) then
    redis.call('ZADD', due, now, ARGV[i])
    released = released + 1
  end
end
return released
