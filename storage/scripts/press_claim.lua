-- Claim a member's press of a button: SET NX with an expiry, and in the same call what the press already holding it
-- recorded, so a refused press can say where the first one's job is.
-- KEYS: press
-- ARGV: token, hold_ms
-- Returns {'claimed', '1' or '0', 'held_by', the holder's value ('<token>' or '<token> <jid>'; '' when claimed)}
local press = KEYS[1]
if redis.call('SET', press, ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'claimed', '1', 'held_by', ''}
end
return {'claimed', '0', 'held_by', redis.call('GET', press) or ''}
