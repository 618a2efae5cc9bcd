package redis

import goredis "github.com/redis/go-redis/v9"

// Each script changes one principal's keys, which share a hash tag and so
// one Cluster slot; Redis runs a script atomically, so no reader, and no
// crash, sees half a change. Per principal (<tag> is elevate:{<principal>}):
//
//	<tag>:asg                hash    assignment id -> assignment JSON
//	<tag>:act                hash    escaped activation id -> activation JSON (all of them, history included)
//	<tag>:live               set     escaped ids of activations recorded as live
//	<tag>:el:<id>            string  "1", expiring (PXAT) when the elevation ends: it is live while this exists
//	<tag>:on:<role>:<scope>  string  the live activation's id, same expiry: one per role and scope
//
// Business rules are decided in Go; the scripts check that what Go read is
// still true (versions, locks, liveness) and apply the change. A script that
// changes what a principal holds publishes the principal's tag on the
// invalidation channel in the same step, for the replicas' caches
// (cache.go).

// applyScript: KEYS act, live, asg. ARGV[1] assignment id to delete or "",
// ARGV[2] number of changes, ARGV[3] el key prefix, then per change: escaped
// id, expected version ("0": must not exist), JSON, effect (store.Effect),
// pxat, lock key, el key, assignment id, id; then the invalidation channel
// and the principal's tag. Returns {"ok", deleted
// assignment JSON or false} or {reason, change index}. Deleting an
// assignment also checks that the changes end every activation of it still
// pending, scheduled or live: one started since Go read them makes the
// delete "stale", to be read and decided again.
var applyScript = goredis.NewScript(`
local n = tonumber(ARGV[2])
local function arg(i, k) return ARGV[3 + i * 9 + k] end
if ARGV[1] ~= '' then
  if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then return {'no_assignment', -1} end
  local changing = {}
  for i = 0, n - 1 do changing[arg(i, 1)] = true end
  local all = redis.call('HGETALL', KEYS[1])
  for j = 1, #all, 2 do
    if not changing[all[j]] then
      local r = cjson.decode(all[j + 1])
      if r.assignment_id == ARGV[1] and (r.status == 'pending_approval' or r.status == 'scheduled'
          or (r.status == 'active' and redis.call('EXISTS', ARGV[3] .. all[j]) == 1)) then
        return {'stale', -1}
      end
    end
  end
end
for i = 0, n - 1 do
  local cur = redis.call('HGET', KEYS[1], arg(i, 1))
  if arg(i, 2) == '0' then
    if cur then return {'exists', i} end
  else
    if not cur then return {'missing', i} end
    if tostring(cjson.decode(cur).version) ~= arg(i, 2) then return {'stale', i} end
  end
  local effect = arg(i, 4)
  if effect == '1' then
    if redis.call('HEXISTS', KEYS[3], arg(i, 8)) == 0 then return {'no_assignment', i} end
    local holder = redis.call('GET', arg(i, 6))
    if holder and holder ~= arg(i, 9) then return {'held', i} end
  elseif effect == '2' or effect == '3' then
    if redis.call('EXISTS', arg(i, 7)) == 0 then return {'ended', i} end
  elseif effect == '4' then
    if redis.call('EXISTS', arg(i, 7)) == 1 then return {'running', i} end
  end
end
for i = 0, n - 1 do
  local id, effect, pxat, lock, el = arg(i, 1), arg(i, 4), arg(i, 5), arg(i, 6), arg(i, 7)
  redis.call('HSET', KEYS[1], id, arg(i, 3))
  if effect == '1' then
    redis.call('SET', el, '1', 'PXAT', pxat)
    redis.call('SET', lock, arg(i, 9), 'PXAT', pxat)
    redis.call('SADD', KEYS[2], id)
  elseif effect == '2' then
    redis.call('DEL', el)
    if redis.call('GET', lock) == arg(i, 9) then redis.call('DEL', lock) end
    redis.call('SREM', KEYS[2], id)
  elseif effect == '3' then
    redis.call('PEXPIREAT', el, pxat)
    if redis.call('GET', lock) == arg(i, 9) then redis.call('PEXPIREAT', lock, pxat) end
  elseif effect == '4' then
    redis.call('SREM', KEYS[2], id)
  end
end
local deleted = false
if ARGV[1] ~= '' then
  deleted = redis.call('HGET', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
redis.call('PUBLISH', ARGV[4 + n * 9], ARGV[5 + n * 9])
return {'ok', deleted}
`)

// assignScript: KEYS asg; ARGV id, JSON, invalidation channel, principal's
// tag. Adds the assignment unless the id is taken; 1 when added.
var assignScript = goredis.NewScript(`
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`)

// liveLua returns the JSON of the activations in the live set KEYS[live]
// whose el key (ARGV[1] .. id) still exists, read from the hash KEYS[act].
const liveLua = `
local function live(set, act)
  local out = {}
  for _, id in ipairs(redis.call('SMEMBERS', set)) do
    if redis.call('EXISTS', ARGV[1] .. id) == 1 then
      local v = redis.call('HGET', act, id)
      if v then out[#out + 1] = v end
    end
  end
  return out
end
`

// liveScript: KEYS live, act; ARGV el key prefix. Returns the JSON of the
// running activations.
var liveScript = goredis.NewScript(liveLua + `return live(KEYS[1], KEYS[2])`)

// claimScript: KEYS due; ARGV now (ms), lease end (ms), limit. Leases the due
// ids by moving their score to the lease's end, atomically, so concurrent
// claimers get disjoint sets.
var claimScript = goredis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id) end
return ids
`)

// holdingsScript: KEYS asg, live, act; ARGV el key prefix. Returns {all
// assignments' JSON, running activations' JSON}: one round trip per decision.
var holdingsScript = goredis.NewScript(liveLua + `return {redis.call('HVALS', KEYS[1]), live(KEYS[2], KEYS[3])}`)
