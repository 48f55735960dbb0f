-- Claim up to `limit` due jobs of one endpoint, oldest first, within the endpoint's shared budget of /status calls.
-- Each claimed job's score moves forward by the lease; the new score is the claimer's fencing token.
--
-- The budget is a token bucket shared by every process: it refills at `per_second` and holds at most `burst_ms`
-- worth of tokens, so any sliding window of T seconds sees at most per_second * (T + burst_ms / 1000) claims that
-- call /status. (A counter per calendar second would let two adjacent seconds spend twice the budget within one
-- sliding second.) Only jobs that will call /status are charged: queued, running, and completed ones whose images
-- must be fetched again.
-- With `only` set, only the listed jobs are claimed, and `next_due_ms` is about them alone (a terminal tracking its own
-- job must neither take the jobs of another nor be woken by them).
-- KEYS: due, budget, queued
-- ARGV: limit, lease_ms, per_second (0: unlimited), job_key_prefix, burst_ms, only ('1' or '0'), jid...
-- Returns {'now_ms', now, 'budget_left', n, 'budget_wait_ms', ms, 'next_due_ms', ms,
--   'jobs', {{'jid', jid, 'token', token, 'record', {field, value, ...}, 'queue_rank', rank}, ...}}
-- `budget_wait_ms` is how long until the bucket holds a worthwhile batch again (0 when it does); `next_due_ms` is
-- how long until the next scheduled job is due (-1: nothing scheduled); `queue_rank` is the job's place among this
-- endpoint's queued jobs, oldest first (-1 when not queued).
local due, budget, queued = KEYS[1], KEYS[2], KEYS[3]
local limit, lease_ms, per_second, job_prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local burst_ms = tonumber(ARGV[5])
local only = nil
if ARGV[6] == '1' then
  only = {}
  for i = 7, #ARGV do only[#only + 1] = ARGV[i] end
end
local now = now_ms()
local wanted = limit

-- The listed jobs that are scheduled, as {jid, score}, soonest first.
local function scheduled_only()
  local found = {}
  for _, jid in ipairs(only) do
    local score = redis.call('ZSCORE', due, jid)
    if score then found[#found + 1] = {jid, tonumber(score)} end
  end
  table.sort(found, function(a, b) return a[2] < b[2] end)
  return found
end

local tokens, capacity = 0, 0
if per_second > 0 then
  capacity = math.max(1, per_second * burst_ms / 1000)
  tokens = capacity
  local stored = redis.call('HMGET', budget, 't', 'ms')
  if stored[1] and stored[2] then
    tokens = math.min(capacity, tonumber(stored[1]) + math.max(0, now - tonumber(stored[2])) * per_second / 1000)
  end
  limit = math.min(limit, math.floor(tokens))
end

local function next_due()
  if only then
    local found = scheduled_only()
    if #found == 0 then return -1 end
    return math.max(0, found[1][2] - now)
  end
  local head = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
  if #head == 0 then return -1 end
  return math.max(0, tonumber(head[2]) - now)
end

local function budget_wait()
  if per_second <= 0 then return 0 end
  -- Wait for half a bucket (or what was asked for) rather than claim one job per refilled token.
  local worthwhile = math.max(1, math.min(wanted, math.floor(capacity / 2)))
  if tokens >= worthwhile then return 0 end
  return math.ceil((worthwhile - tokens) * 1000 / per_second)
end

local jobs = {}
if limit <= 0 then
  return {'now_ms', now, 'budget_left', math.floor(tokens), 'budget_wait_ms', budget_wait(),
    'next_due_ms', next_due(), 'jobs', jobs}
end

local ids
if only then
  ids = {}
  for _, entry in ipairs(scheduled_only()) do
    if entry[2] <= now and #ids < limit then ids[#ids + 1] = entry[1] end
  end
else
  ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, limit)
end
local token = now + lease_ms
local charged = 0
for _, jid in ipairs(ids) do
  local record = redis.call('HGETALL', job_prefix .. jid)
  if #record == 0 then
    -- The record expired or was deleted: nothing to track.
    redis.call('ZREM', due, jid)
    redis.call('ZREM', queued, jid)
  else
    redis.call('ZADD', due, token, jid)
    local state = ''
    for i = 1, #record, 2 do
      if record[i] == 'state' then state = record[i + 1] end
    end
    if at_runpod(state) or state == 'COMPLETED' then charged = charged + 1 end
    local rank = -1
    if state == 'QUEUED' then rank = redis.call('ZRANK', queued, jid) or -1 end
    jobs[#jobs + 1] = {'jid', jid, 'token', token, 'record', record, 'queue_rank', rank}
  end
end
local wait = 0
if per_second > 0 then
  tokens = tokens - charged
  redis.call('HSET', budget, 't', tostring(tokens), 'ms', now)
  -- Once idle this long the bucket is full again: the key can go.
  redis.call('PEXPIRE', budget, math.ceil(capacity * 1000 / per_second) + 1000)
  wait = budget_wait()
end
return {'now_ms', now, 'budget_left', math.floor(tokens), 'budget_wait_ms', wait, 'next_due_ms', next_due(), 'jobs', jobs}
