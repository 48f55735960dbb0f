-- Deliver again a job whose delivery was given up (Discord refused its result for good): it goes back to its outcome,
-- due now for any poller, and its record no longer expires until it is delivered. Only a job that ended with images,
-- and only while its `extra` is still what the caller read (so two presses, or a press racing a redelivery that
-- already went through, reopen it once).
-- KEYS: job, due, stats
-- ARGV: jid, extra as read, extra to store (without the delivery failure)
-- Returns {'status', 'reopened'} | {'status', 'gone'} | {'status', 'changed', 'state', state}
local job, due, stats = KEYS[1], KEYS[2], KEYS[3]
local jid, read_extra, new_extra = ARGV[1], ARGV[2], ARGV[3]
local state = redis.call('HGET', job, 'state')
if not state then return {'status', 'gone'} end
local outcome = redis.call('HGET', job, 'outcome')
if state ~= 'DELIVERED' or outcome ~= 'COMPLETED' or (redis.call('HGET', job, 'extra') or '') ~= read_extra then
  return {'status', 'changed', 'state', state}
end
local now = now_ms()
redis.call('HSET', job, 'state', outcome, 'extra', new_extra, 'delivered_at', '', 'updated_at', now)
redis.call('PERSIST', job)
redis.call('ZADD', due, now, jid)
count_move(stats, nil, outcome)
-- Its commit counts it delivered again.
redis.call('HINCRBY', stats, 'delivered:' .. outcome, -1)
return {'status', 'reopened'}
