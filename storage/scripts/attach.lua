-- Record the RunPod id of a job whose /run succeeded. Only the submitter calls this, so it is not fenced; it also
-- revives a job the poller had given up on as SUBMIT_UNKNOWN (not delivered yet): a paid job is never dropped.
-- A job whose webhook arrived before its id was stored is due at once.
-- KEYS: job, due, runpod_index, user_active, guild_active, stats, queued
-- ARGV: jid, runpod_id, first_poll_delay_ms, runpod_index_ttl_s, has_guild
-- Returns {'status', 'attached', 'token', token} | {'status', 'gone', 'state', state}
local job, due, runpod_index, user_active, guild_active, stats, queued =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local jid, runpod_id = ARGV[1], ARGV[2]
local delay_ms, index_ttl, has_guild = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'

local state = redis.call('HGET', job, 'state')
if state ~= 'SUBMITTING' and state ~= 'SUBMIT_UNKNOWN' then return {'status', 'gone', 'state', state or ''} end
local now = now_ms()
if (redis.call('HGET', job, 'webhook_at') or '') ~= '' then delay_ms = 0 end
local token = now + delay_ms
redis.call('HSET', job, 'state', 'QUEUED', 'runpod_id', runpod_id, 'runpod_status', 'IN_QUEUE',
  'submitted_at', now, 'updated_at', now, 'outcome', '', 'finished_at', '', 'error', '')
redis.call('ZADD', due, token, jid)
redis.call('ZADD', queued, now, jid)
redis.call('SET', runpod_index, jid, 'EX', index_ttl)
if state == 'SUBMIT_UNKNOWN' then
  local created = redis.call('HGET', job, 'created_at')
  redis.call('ZADD', user_active, created, jid)
  if has_guild then redis.call('ZADD', guild_active, created, jid) end
end
count_move(stats, state, 'QUEUED')
return {'status', 'attached', 'token', token}
