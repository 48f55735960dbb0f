-- The transitions a poller makes after claiming jobs. Each takes its keys (K) and arguments (A) as tables, so one
-- call of batch.lua can apply many of them atomically in one round trip. Each is fenced on its own job.
-- Every reply is a flat list of name/value pairs ({'status', 'ok', 'token', 17, ...}), which the store decodes by name.

-- Store what a poll learned about a claimed live job and schedule its next action.
-- K: job, due, stats, queued   A: jid, token, delay_ms, new_state ('' keeps it), polled ('1'), field, value, ...
-- Returns {'status', 'ok', 'token', new_token} | {'status', 'lost'}.
local function op_reschedule(K, A)
  local job, due, stats, queued = K[1], K[2], K[3], K[4]
  local jid, token, delay_ms, new_state, polled = A[1], A[2], tonumber(A[3]), A[4], A[5] == '1'
  if not fenced(due, jid, token) then return {'status', 'lost'} end
  local now = now_ms()
  local state = redis.call('HGET', job, 'state')
  hset_from(job, A, 6)
  redis.call('HSET', job, 'updated_at', now)
  if polled then redis.call('HINCRBY', job, 'poll_count', 1) end
  if new_state ~= '' and new_state ~= state then
    redis.call('HSET', job, 'state', new_state)
    if new_state == 'RUNNING' and (redis.call('HGET', job, 'started_at') or '') == '' then
      redis.call('HSET', job, 'started_at', now)
    end
    if new_state ~= 'QUEUED' then redis.call('ZREM', queued, jid) end
    count_move(stats, state, new_state)
  end
  local next_token = now + delay_ms
  redis.call('ZADD', due, next_token, jid)
  return {'status', 'ok', 'token', next_token}
end

-- Settle the GPU time a job reserved at admission (create.lua), once per job: given back to the member's day and the
-- server's month (the real figure, if RunPod reported one, is added by count_usage in the same step), or, `keep`,
-- left reserved until that day and month end (a job whose end RunPod never reported may have run and been billed).
local function settle_reservation(job, member_day, guild_month, keep)
  local reserved = tonumber(redis.call('HGET', job, 'reserved_ms') or '') or 0
  if reserved <= 0 then return end
  if redis.call('HSETNX', job, 'reservation_settled', keep and 'kept' or 'returned') == 0 then return end
  if keep then return end
  for _, key in ipairs({member_day, guild_month}) do
    if key ~= '' and redis.call('EXISTS', key) == 1 then redis.call('HINCRBY', key, 'reserved_ms', -reserved) end
  end
end

-- Record a job's outcome and take a delivery lease. The job leaves the active indexes (it no longer uses a GPU)
-- but stays scheduled until delivery commits, so a crash during delivery leads to another attempt. A completed
-- job's execution time joins the endpoint's recent samples (what the poll policy learns from). A job that used a GPU
-- has its GPU time added to the usage sums in this same step (`count_usage`, once per job).
-- Its budget reservation is settled in the same step (settle_reservation).
-- K: job, due, user_active, guild_active, stats, queued, samples, reserved member day, reserved guild month (each
--    the job key when it reserved none there), then with a charge the usage keys (_gpu_usage.lua)
-- A: jid, token, outcome, lease_ms, sample_ms ('' none), samples_max, samples_ttl_s, charge (JSON, '' none),
--    keep_reservation ('1' keeps it), field, value, ...
-- Returns {'status', 'ok', 'token', token, 'counted', 0|1, 'record', {field, value, ...}} | {'status', 'delivered'}
--   | {'status', 'lost'}
local function op_finalize_begin(K, A)
  local job, due, user_active, guild_active, stats, queued, samples = K[1], K[2], K[3], K[4], K[5], K[6], K[7]
  local jid, token, outcome, lease_ms = A[1], A[2], A[3], tonumber(A[4])
  local sample, samples_max, samples_ttl, charge = A[5], tonumber(A[6]), tonumber(A[7]), A[8]
  local state = redis.call('HGET', job, 'state')
  if state == 'DELIVERED' then return {'status', 'delivered'} end
  if not fenced(due, jid, token) then return {'status', 'lost'} end
  local now = now_ms()
  hset_from(job, A, 10)
  redis.call('HSET', job, 'state', outcome, 'outcome', outcome, 'updated_at', now)
  if (redis.call('HGET', job, 'finished_at') or '') == '' then redis.call('HSET', job, 'finished_at', now) end
  redis.call('ZREM', user_active, jid)
  redis.call('ZREM', guild_active, jid)
  redis.call('ZREM', queued, jid)
  count_move(stats, state, outcome)
  if sample ~= '' then
    redis.call('LPUSH', samples, sample)
    redis.call('LTRIM', samples, 0, samples_max - 1)
    redis.call('EXPIRE', samples, samples_ttl)
  end
  settle_reservation(job, K[8] ~= job and K[8] or '', K[9] ~= job and K[9] or '', A[9] == '1')
  local counted = charge ~= '' and count_usage(job, K, 10, cjson.decode(charge))
  local next_token = now + lease_ms
  redis.call('ZADD', due, next_token, jid)
  return {'status', 'ok', 'token', next_token, 'counted', counted and 1 or 0, 'record', redis.call('HGETALL', job)}
end

-- Mark a job delivered: unschedule it, clean its indexes and let the record expire. Idempotent.
-- K: job, due, user_active, guild_active, stats, queued   A: jid, token, record_ttl_s, field, value, ...
-- Returns {'status', 'ok'} | {'status', 'already'} | {'status', 'lost'}
local function op_finalize_commit(K, A)
  local job, due, user_active, guild_active, stats, queued = K[1], K[2], K[3], K[4], K[5], K[6]
  local jid, token, ttl = A[1], A[2], tonumber(A[3])
  local state = redis.call('HGET', job, 'state')
  if state == 'DELIVERED' then return {'status', 'already'} end
  if not fenced(due, jid, token) then return {'status', 'lost'} end
  local now = now_ms()
  hset_from(job, A, 4)
  local outcome = redis.call('HGET', job, 'outcome')
  if not outcome or outcome == '' then
    outcome = state
    redis.call('HSET', job, 'outcome', outcome)
  end
  redis.call('HSET', job, 'state', 'DELIVERED', 'delivered_at', now, 'updated_at', now)
  redis.call('ZREM', due, jid)
  redis.call('ZREM', user_active, jid)
  redis.call('ZREM', guild_active, jid)
  redis.call('ZREM', queued, jid)
  count_move(stats, state, nil)
  redis.call('HINCRBY', stats, 'delivered:' .. outcome, 1)
  redis.call('EXPIRE', job, ttl)
  return {'status', 'ok'}
end

-- Give back a lease (graceful shutdown): a job still held under the token becomes due now, for another process.
-- K: due   A: jid, token   Returns {'status', 'released'} | {'status', 'lost'} (no longer held under the token).
local function op_release(K, A)
  if fenced(K[1], A[1], A[2]) then
    redis.call('ZADD', K[1], now_ms(), A[1])
    return {'status', 'released'}
  end
  return {'status', 'lost'}
end

-- Remember RunPod's latest error for an endpoint, with the time, for a while.
-- K: error_key   A: message, ttl_s   Returns {'status', 'ok'}.
local function op_record_error(K, A)
  redis.call('HSET', K[1], 'message', A[1], 'at', now_ms())
  redis.call('EXPIRE', K[1], tonumber(A[2]))
  return {'status', 'ok'}
end

-- What a webhook may do to a job: only a job live at RunPod is touched. A job still submitting keeps its submit
-- lease (its submitter schedules it at once when it attaches the id); a finished one is left to its delivery.
local function webhook_target(job, jid)
  local state = redis.call('HGET', job, 'state')
  if not state then return {'status', 'gone'} end
  if state == 'SUBMITTING' then
    redis.call('HSET', job, 'webhook_at', now_ms())
    return {'status', 'submitting'}
  end
  if not at_runpod(state) then return {'status', 'finished', 'state', state} end
  return nil
end

-- A webhook brought the job's result: take the job's lease (any previous holder's commits are refused from now on)
-- so this process finishes it from the payload.
-- K: job, due   A: jid, lease_ms
-- Returns {'status', 'taken', 'token', token, 'record', {field, value, ...}} | {'status', 'submitting'}
--   | {'status', 'finished', 'state', state} | {'status', 'gone'}
local function op_take(K, A)
  local job, due, jid = K[1], K[2], A[1]
  local refused = webhook_target(job, jid)
  if refused then return refused end
  local held = redis.call('ZSCORE', due, jid)
  if not held then return {'status', 'gone'} end
  local token = now_ms() + tonumber(A[2])
  -- A token equal to the current holder's would let that holder commit too.
  if token == tonumber(held) then token = token + 1 end
  redis.call('ZADD', due, token, jid)
  return {'status', 'taken', 'token', token, 'record', redis.call('HGETALL', job)}
end

-- A webhook says the job changed: make it due now, for whichever poller comes first.
-- K: job, due   A: jid   Returns {'status', 'due'} | as op_take's refusals
local function op_make_due(K, A)
  local job, due, jid = K[1], K[2], A[1]
  local refused = webhook_target(job, jid)
  if refused then return refused end
  if not redis.call('ZSCORE', due, jid) then return {'status', 'gone'} end
  redis.call('ZADD', due, 'XX', now_ms(), jid)
  return {'status', 'due'}
end

local OPS = {
  reschedule = op_reschedule,
  finalize_begin = op_finalize_begin,
  finalize_commit = op_finalize_commit,
  release = op_release,
  record_error = op_record_error,
  take = op_take,
  make_due = op_make_due,
}
