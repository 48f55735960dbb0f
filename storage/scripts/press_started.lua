-- Record the job a held press started, keeping its expiry; only the press holding it may (a press whose hold ran out
-- must not write over the next one's).
-- KEYS: press
-- ARGV: token, jid
-- Returns 1 when recorded, 0 when the press no longer holds it.
local press, token = KEYS[1], ARGV[1]
local held = redis.call('GET', press)
if not held or string.match(held, '^%S+') ~= token then return 0 end
redis.call('SET', press, token .. ' ' .. ARGV[2], 'KEEPTTL')
return 1
