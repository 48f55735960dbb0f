-- Create a job record, once per request id, within the user's cooldown and the user's and guild's quotas, the
-- guild's own per-member quota and cooldown (counted over the member's jobs in that guild only), and the GPU-time
-- budgets: the job's estimate (the median of the endpoint's recent run times, or the default, times its images) must
-- fit in what is left of the member's day and the guild's month (used and reserved taken off), and is reserved there
-- in the same step, so two submits cannot both take the last of a budget.
-- KEYS: job, due, user_active, guild_active, user_jobs, idempotency, cooldown, stats, endpoints, member_cooldown,
--       member_day_usage, guild_month_usage, execution_samples
-- ARGV: jid, endpoint_id, user_quota, guild_quota, cooldown_ms, submit_lease_ms, idempotency_ttl_s,
--       history_max, history_ttl_s, has_idempotency, has_guild, member_quota, member_cooldown_ms,
--       budgeted, member_budget_ms, guild_budget_ms, images, estimate_per_image_ms, day_ttl_s, month_ttl_s,
--       field, value, ...
-- Returns {'status', 'created', 'jid', jid, 'token', token} (also when sent again) | {'status', 'duplicate', 'jid', jid}
--   | {'status', 'cooldown', 'wait_ms', ms} | {'status', 'user_quota', 'active', n} | {'status', 'guild_quota', 'active', n}
--   | {'status', 'member_quota', 'active', n}
--   | {'status', 'member_budget'|'guild_budget', 'budget_ms', ms, 'left_ms', ms, 'estimate_ms', ms}
local job, due, user_active, guild_active, user_jobs, idem, cooldown, stats, endpoints, member_cooldown =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local member_day, guild_month, samples = KEYS[11], KEYS[12], KEYS[13]
local jid, endpoint_id = ARGV[1], ARGV[2]
local user_quota, guild_quota = tonumber(ARGV[3]), tonumber(ARGV[4])
local cooldown_ms, lease_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
local idem_ttl, history_max, history_ttl = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local has_idem, has_guild = ARGV[10] == '1', ARGV[11] == '1'
local member_quota, member_cooldown_ms = tonumber(ARGV[12]), tonumber(ARGV[13])
local budgeted, member_budget, guild_budget = ARGV[14] == '1', tonumber(ARGV[15]), tonumber(ARGV[16])
local images, per_image, day_ttl, month_ttl = tonumber(ARGV[17]), tonumber(ARGV[18]), tonumber(ARGV[19]),
  tonumber(ARGV[20])
local FIRST_FIELD = 21
-- How many of the endpoint's newest run times the estimate's median is taken over.
local ESTIMATE_SAMPLES = 20

-- What a sum hash (storage/usage.py) has used and reserved.
local function spent(key)
  local used, reserved = unpack(redis.call('HMGET', key, 'gpu_ms', 'reserved_ms'))
  return (tonumber(used) or 0) + (tonumber(reserved) or 0)
end

-- The median of the endpoint's newest run times (one per completed job), or the default, times the images.
local function estimate()
  local recent = redis.call('LRANGE', samples, 0, ESTIMATE_SAMPLES - 1)
  local times = {}
  for _, value in ipairs(recent) do
    local ms = tonumber(value)
    if ms and ms > 0 then times[#times + 1] = ms end
  end
  local each = per_image
  if #times > 0 then
    table.sort(times)
    each = times[math.floor((#times + 1) / 2)]
  end
  return math.floor(each * images)
end

local function reserve(key, ms, ttl)
  redis.call('HINCRBY', key, 'reserved_ms', ms)
  if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
end

-- This very create sent again (Redis ran it, then the connection broke before the reply; the client resends on a
-- new connection): answer as the first run did. A jid is new for each submit, so its record can only be this one's.
if redis.call('EXISTS', job) == 1 then
  return {'status', 'created', 'jid', jid, 'token', tonumber(redis.call('ZSCORE', due, jid) or '0')}
end
if has_idem then
  local existing = redis.call('GET', idem)
  if existing then return {'status', 'duplicate', 'jid', existing} end
end
local now = now_ms()
local wait = redis.call('PTTL', cooldown)
if has_guild and member_cooldown_ms > 0 then
  -- The guild's cooldown as it is set now (a shorter one applies at once): from the member's last submit there.
  local last = tonumber(redis.call('GET', member_cooldown) or '')
  if last and last + member_cooldown_ms - now > wait then wait = last + member_cooldown_ms - now end
end
if wait > 0 then return {'status', 'cooldown', 'wait_ms', wait} end
local active = redis.call('ZCARD', user_active)
if user_quota > 0 and active >= user_quota then return {'status', 'user_quota', 'active', active} end
if has_guild then
  if member_quota > 0 and active >= member_quota then
    -- The member's unfinished jobs in this guild: both indexes hold them (ZINTER is Redis 6.2's).
    local here = #redis.call('ZINTER', 2, user_active, guild_active)
    if here >= member_quota then return {'status', 'member_quota', 'active', here} end
  end
  local guild_count = redis.call('ZCARD', guild_active)
  if guild_quota > 0 and guild_count >= guild_quota then return {'status', 'guild_quota', 'active', guild_count} end
end

local reserved = 0
if budgeted then
  reserved = estimate()
  if member_budget > 0 then
    local left = member_budget - spent(member_day)
    if reserved > left then
      return {'status', 'member_budget', 'budget_ms', member_budget, 'left_ms', math.max(0, left),
        'estimate_ms', reserved}
    end
  end
  if has_guild and guild_budget > 0 then
    local left = guild_budget - spent(guild_month)
    if reserved > left then
      return {'status', 'guild_budget', 'budget_ms', guild_budget, 'left_ms', math.max(0, left),
        'estimate_ms', reserved}
    end
  end
end

local token = now + lease_ms
redis.call('HSET', job, 'jid', jid, 'state', 'SUBMITTING', 'endpoint_id', endpoint_id,
  'created_at', now, 'updated_at', now, 'poll_count', 0)
hset_pairs(job, FIRST_FIELD)
if reserved > 0 then
  -- Given back (or settled to the real figure) by the job's end: op_finalize_begin's settle_reservation.
  redis.call('HSET', job, 'reserved_ms', reserved)
  reserve(member_day, reserved, day_ttl)
  if has_guild then reserve(guild_month, reserved, month_ttl) end
end
redis.call('ZADD', due, token, jid)
redis.call('SADD', endpoints, endpoint_id)
redis.call('ZADD', user_active, now, jid)
if has_guild then redis.call('ZADD', guild_active, now, jid) end
redis.call('ZADD', user_jobs, now, jid)
redis.call('ZREMRANGEBYRANK', user_jobs, 0, -(history_max + 1))
redis.call('EXPIRE', user_jobs, history_ttl)
if has_idem then redis.call('SET', idem, jid, 'EX', idem_ttl) end
if cooldown_ms > 0 then redis.call('SET', cooldown, '1', 'PX', cooldown_ms) end
if has_guild and member_cooldown_ms > 0 then redis.call('SET', member_cooldown, now, 'PX', member_cooldown_ms) end
count_move(stats, nil, 'SUBMITTING')
return {'status', 'created', 'jid', jid, 'token', token}
