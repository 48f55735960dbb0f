-- GPU time added up per member, server and model, per UTC day and month (storage/usage.py names and reads the keys).
-- Shared files load in name order: this one comes before _ops.lua, whose op_finalize_begin calls count_usage in the
-- step that records a job's outcome, under the job's lease.

local USAGE_KEYS_PER_PERIOD = 6

-- Add a charge to a sum hash, in total and for its model, and keep the hash for `ttl` seconds more.
local function add_sums(key, charge, ttl)
  for _, scope in ipairs({'', 'model:' .. charge.model .. ':'}) do
    redis.call('HINCRBY', key, scope .. 'jobs', 1)
    redis.call('HINCRBY', key, scope .. 'gpu_ms', charge.gpu_ms)
    redis.call('HINCRBY', key, scope .. 'queue_ms', charge.queue_ms)
    if charge.cost then redis.call('HINCRBY', key, scope .. 'cost:' .. charge.currency, charge.cost) end
  end
  redis.call('EXPIRE', key, ttl)
end

local function add_rank(key, charge, member, ttl)
  redis.call('ZINCRBY', key, charge.gpu_ms, member)
  redis.call('EXPIRE', key, ttl)
end

-- Add a finished job's charge (storage.usage.UsageCharge.argument: every number as text) to the sums of its UTC day
-- and month, once per job: the job's `usage_counted` flag is set here, so a second call adds nothing.
-- K from `first`, for the day then the month: member, member in guild, guild, guild members, totals, guilds.
-- Returns whether it added.
local function count_usage(job, K, first, charge)
  if redis.call('HSETNX', job, 'usage_counted', '1') == 0 then return false end
  for period = 0, 1 do
    local at = first + period * USAGE_KEYS_PER_PERIOD
    local ttl = tonumber(period == 0 and charge.day_ttl or charge.month_ttl)
    add_sums(K[at], charge, ttl)
    add_sums(K[at + 1], charge, ttl)
    add_sums(K[at + 2], charge, ttl)
    add_rank(K[at + 3], charge, charge.user, ttl)
    add_sums(K[at + 4], charge, ttl)
    add_rank(K[at + 5], charge, charge.guild, ttl)
  end
  return true
end
