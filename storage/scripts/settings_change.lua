-- Change a guild's settings and log the change, in one step, only if nobody changed them since they were read (the
-- `version` field, counted up by every change): two moderators changing the list of models at once both count.
-- KEYS: settings, log
-- ARGV: version read ('0' when none), log entry, log_max, clear ('1': remove every setting first), n_set,
--       field, value (n_set pairs), field to remove, ...
-- Returns {'status', 'ok', 'version', n} | {'status', 'stale', 'version', n}
local settings, log = KEYS[1], KEYS[2]
local read, entry, log_max, clear = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local n_set = tonumber(ARGV[5])
local version = tonumber(redis.call('HGET', settings, 'version') or '0')
if tostring(version) ~= read then return {'status', 'stale', 'version', version} end
if clear then redis.call('DEL', settings) end
local first_removed = 6 + 2 * n_set
if n_set > 0 then redis.call('HSET', settings, unpack(ARGV, 6, first_removed - 1)) end
if #ARGV >= first_removed then redis.call('HDEL', settings, unpack(ARGV, first_removed, #ARGV)) end
version = version + 1
redis.call('HSET', settings, 'version', version)
redis.call('LPUSH', log, entry)
redis.call('LTRIM', log, 0, log_max - 1)
return {'status', 'ok', 'version', version}
