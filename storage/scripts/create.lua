-- Create a job record, once per request id, within the user's cooldown and the user's and guild's quotas, and the
-- guild's own per-member quota and cooldown (counted over the member's jobs in that guild only).
-- KEYS: job, due, user_active, guild_active, user_jobs, idempotency, cooldown, stats, endpoints, member_cooldown
-- ARGV: jid, endpoint_id, user_quota, guild_quota, cooldown_ms, submit_lease_ms, idempotency_ttl_s,
--       history_max, history_ttl_s, has_idempotency, has_guild, member_quota, member_cooldown_ms, field, value, ...
-- Returns {'status', 'created', 'jid', jid, 'token', token} (also when sent again) | {'status', 'duplicate', 'jid', jid}
--   | {'status', 'cooldown', 'wait_ms', ms} | {'status', 'user_quota', 'active', n} | {'status', 'guild_quota', 'active', n}
--   | {'status', 'member_quota', 'active', n}
local job, due, user_active, guild_active, user_jobs, idem, cooldown, stats, endpoints, member_cooldown =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local jid, endpoint_id = ARGV[1], ARGV[2]
local user_quota, guild_quota = tonumber(ARGV[3]), tonumber(ARGV[4])
local cooldown_ms, lease_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
local idem_ttl, history_max, history_ttl = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local has_idem, has_guild = ARGV[10] == '1', ARGV[11] == '1'
local member_quota, member_cooldown_ms = tonumber(ARGV[12]), tonumber(ARGV[13])

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

local token = now + lease_ms
redis.call('HSET', job, 'jid', jid, 'state', 'SUBMITTING', 'endpoint_id', endpoint_id,
  'created_at', now, 'updated_at', now, 'poll_count', 0)
hset_pairs(job, 14)
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
