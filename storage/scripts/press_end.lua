-- End a press's hold: keep it keep_ms more (it started a job: a second press in that window is refused), or release
-- it at once (keep_ms 0: it started nothing). Only the press holding it may.
-- KEYS: press
-- ARGV: token, keep_ms
-- Returns 1 when ended, 0 when the press no longer held it.
local press, token, keep_ms = KEYS[1], ARGV[1], tonumber(ARGV[2])
local held = redis.call('GET', press)
if not held or string.match(held, '^%S+') ~= token then return 0 end
if keep_ms > 0 then
  redis.call('PEXPIRE', press, keep_ms)
else
  redis.call('DEL', press)
end
return 1
