-- Update a claimed live job and schedule its next action; refused when the claimer's lease was lost.
-- KEYS: job, due, stats
-- ARGV: jid, token, delay_ms, new_state ('' keeps it), polled ('1' counts a poll), field, value, ...
-- Returns {1, new_token} | {0}
local job, due, stats = KEYS[1], KEYS[2], KEYS[3]
local jid, token, delay_ms, new_state, polled = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5] == '1'
if not fenced(due, jid, token) then return {0} end
local now = now_ms()
local state = redis.call('HGET', job, 'state')
hset_pairs(job, 6)
redis.call('HSET', job, 'updated_at', now)
if polled then redis.call('HINCRBY', job, 'poll_count', 1) end
if new_state ~= '' and new_state ~= state then
  redis.call('HSET', job, 'state', new_state)
  if new_state == 'RUNNING' and (redis.call('HGET', job, 'started_at') or '') == '' then
    redis.call('HSET', job, 'started_at', now)
  end
  count_move(stats, state, new_state)
end
local next_token = now + delay_ms
redis.call('ZADD', due, next_token, jid)
return {1, next_token}
