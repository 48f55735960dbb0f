-- Mark a job delivered: unschedule it, clean its indexes and let the record expire. Idempotent.
-- KEYS: job, due, user_active, guild_active, stats
-- ARGV: jid, token, record_ttl_s, field, value, ...
-- Returns {'ok'} | {'already'} | {'lost'}
local job, due, user_active, guild_active, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local jid, token, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local state = redis.call('HGET', job, 'state')
if state == 'DELIVERED' then return {'already'} end
if not fenced(due, jid, token) then return {'lost'} end
local now = now_ms()
hset_pairs(job, 4)
local outcome = redis.call('HGET', job, 'outcome')
if not outcome or outcome == '' then
  outcome = state
  redis.call('HSET', job, 'outcome', outcome)
end
redis.call('HSET', job, 'state', 'DELIVERED', 'delivered_at', now, 'updated_at', now)
redis.call('ZREM', due, jid)
redis.call('ZREM', user_active, jid)
redis.call('ZREM', guild_active, jid)
count_move(stats, state, nil)
redis.call('HINCRBY', stats, 'delivered:' .. outcome, 1)
redis.call('EXPIRE', job, ttl)
return {'ok'}
