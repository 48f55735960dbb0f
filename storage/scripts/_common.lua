-- Prepended to every script. One clock for every process: the server's.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- HSET the field/value pairs of table `A` from index `first` on.
local function hset_from(key, A, first)
  if #A >= first + 1 then
    redis.call('HSET', key, unpack(A, first, #A))
  end
end

-- HSET field/value pairs from ARGV starting at index `first`.
local function hset_pairs(key, first)
  hset_from(key, ARGV, first)
end

-- Live counts per state in the stats hash follow every state change.
local function count_move(stats, from, to)
  if from and from ~= '' and from ~= 'DELIVERED' then redis.call('HINCRBY', stats, 'state:' .. from, -1) end
  if to and to ~= '' and to ~= 'DELIVERED' then redis.call('HINCRBY', stats, 'state:' .. to, 1) end
end

local function fenced(due, jid, token)
  local score = redis.call('ZSCORE', due, jid)
  return score and tonumber(score) == tonumber(token)
end

-- A live job at RunPod (it has an id, and its result is still to come).
local function at_runpod(state)
  return state == 'QUEUED' or state == 'RUNNING'
end
