-- Record what RunPod answered to a cancel, then make the job due now (if it is still live at RunPod), so a poller
-- checks its state at once and shows that answer with it.
-- KEYS: job, due
-- ARGV: jid, outcome
-- Returns 1 when the record exists, 0 otherwise.
local job, due = KEYS[1], KEYS[2]
local jid, outcome = ARGV[1], ARGV[2]
local state = redis.call('HGET', job, 'state')
if not state then return 0 end
local now = now_ms()
redis.call('HSET', job, 'cancel_outcome', outcome, 'updated_at', now)
if at_runpod(state) then redis.call('ZADD', due, 'XX', now, jid) end
return 1
