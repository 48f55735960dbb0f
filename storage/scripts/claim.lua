-- Claim up to `limit` due jobs of one endpoint, oldest first, within the endpoint's shared per-second budget of
-- /status calls. Each claimed job's score moves forward by the lease; the new score is the claimer's fencing token.
-- KEYS: due, budget
-- ARGV: limit, lease_ms, budget_per_second (0: unlimited), job_key_prefix
-- Returns {now, budget_left, {jid, token, {field, value, ...}}, ...}
local due, budget = KEYS[1], KEYS[2]
local limit, lease_ms, per_second, job_prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local now = now_ms()
local second = math.floor(now / 1000)

local used = 0
if per_second > 0 then
  local stored = redis.call('HMGET', budget, 's', 'n')
  if tonumber(stored[1]) == second then used = tonumber(stored[2]) or 0 end
  limit = math.min(limit, per_second - used)
end
local result = {now, 0}
if limit <= 0 then return result end

local ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, limit)
local token = now + lease_ms
local claimed = 0
for _, jid in ipairs(ids) do
  local record = redis.call('HGETALL', job_prefix .. jid)
  if #record == 0 then
    -- The record expired or was deleted: nothing to track.
    redis.call('ZREM', due, jid)
  else
    redis.call('ZADD', due, token, jid)
    claimed = claimed + 1
    result[#result + 1] = {jid, token, record}
  end
end
if per_second > 0 then
  used = used + claimed
  redis.call('HSET', budget, 's', second, 'n', used)
  redis.call('PEXPIRE', budget, 2000)
  result[2] = per_second - used
end
return result
