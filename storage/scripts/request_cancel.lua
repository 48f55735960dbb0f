-- Note that someone asked to cancel a live job and, with due_now, make it due now, so a poller checks its state at
-- once. A canceller that tells RunPod itself passes due_now = '0' and calls note_cancel with RunPod's answer, so the
-- poller reads that answer when it picks the job up.
-- A submitting job keeps its submit lease: the submitter sees the request after /run and cancels at RunPod.
-- KEYS: job, due
-- ARGV: jid, actor_id, due_now ('1' or '0')
-- Returns {'state', state, 'first', '1' or '0', 'requested_by', actor_id or ''}
local job, due = KEYS[1], KEYS[2]
local jid, actor, due_now = ARGV[1], ARGV[2], ARGV[3]
local state = redis.call('HGET', job, 'state')
if not state then return {'state', '', 'first', '0', 'requested_by', ''} end
if state ~= 'SUBMITTING' and state ~= 'QUEUED' and state ~= 'RUNNING' then
  return {'state', state, 'first', '0', 'requested_by', redis.call('HGET', job, 'cancel_requested_by') or ''}
end
local previous = redis.call('HGET', job, 'cancel_requested_by') or ''
if previous ~= '' then return {'state', state, 'first', '0', 'requested_by', previous} end
local now = now_ms()
redis.call('HSET', job, 'cancel_requested_by', actor, 'updated_at', now)
if state ~= 'SUBMITTING' and due_now ~= '0' then redis.call('ZADD', due, 'XX', now, jid) end
return {'state', state, 'first', '1', 'requested_by', actor}
