-- Set fields on an existing job record (never creates one).
-- KEYS: job
-- ARGV: field, value, ...
-- Returns 1 when the record exists, 0 otherwise.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
hset_pairs(KEYS[1], 1)
return 1
