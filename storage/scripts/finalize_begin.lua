-- Record a job's outcome and take a delivery lease. The job leaves the active indexes (it no longer uses a GPU)
-- but stays scheduled until delivery commits, so a crash during delivery leads to another attempt.
-- KEYS: job, due, user_active, guild_active, stats
-- ARGV: jid, token, outcome, lease_ms, field, value, ...
-- Returns {'ok', token} | {'delivered'} | {'lost'}
local job, due, user_active, guild_active, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local jid, token, outcome, lease_ms = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local state = redis.call('HGET', job, 'state')
if state == 'DELIVERED' then return {'delivered'} end
if not fenced(due, jid, token) then return {'lost'} end
local now = now_ms()
hset_pairs(job, 5)
redis.call('HSET', job, 'state', outcome, 'outcome', outcome, 'updated_at', now)
if (redis.call('HGET', job, 'finished_at') or '') == '' then redis.call('HSET', job, 'finished_at', now) end
redis.call('ZREM', user_active, jid)
redis.call('ZREM', guild_active, jid)
count_move(stats, state, outcome)
local next_token = now + lease_ms
redis.call('ZADD', due, next_token, jid)
return {'ok', next_token}
