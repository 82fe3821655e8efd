package rdb

import "github.com/redis/go-redis/v9"

// How a job moves. A job travels as one envelope string (see Envelope):
// queue lists hold envelopes; fetching pops them and records each in the
// fetching process's in-flight hash as "<lease>|<envelope>", with a lease
// number from a hybrid clock (see fetchScript), so leases grow with every run
// of a job, even across a Redis that lost recent writes.
// Every way out of the in-flight hash (ack, requeue, schedule, retry, dead,
// cancel, release) checks that entry's lease: only the run holding the job's
// current lease may finish it. A process presumed dead loses its whole
// in-flight hash to the reaper, so none of its stale runs can finish anything.
// Jobs waiting in the scheduled, retry and dead sets are ids in a sorted set
// plus a job hash j:<id> holding the envelope and the last error.
//
// Moving a job touches one key per job (plus a few per call): on this
// project's machines a key touched from Lua costs about a microsecond.

// luaLib is prepended to scripts that need its helpers.
const luaLib = `
local function notify(p, queues)
  for q in pairs(queues) do
    if redis.call('DEL', p .. 'idle:' .. q) == 1 then
      redis.call('PUBLISH', p .. 'notify', q)
    end
  end
end
local function publish(p, ev)
  if ev ~= nil and ev ~= '' then redis.call('PUBLISH', p .. 'events', ev) end
end
local function env_queue(env)
  return string.match(env, '^1|[^|]*|[^|]*|([^|]*)|')
end
local function env_unique(env)
  return string.match(env, '^1|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|([^|]*)|')
end
local function release_unique(p, jid, env)
  local u = env_unique(env)
  if u and u ~= '-' then
    local uk = p .. 'u:' .. u
    if redis.call('GET', uk) == jid then redis.call('DEL', uk) end
  end
end
-- split an in-flight entry "<lease>|<envelope>"
local function entry(v)
  if not v then return nil, nil end
  return string.match(v, '^(%d+)|(.*)$')
end
local function trim_dead(p, now, max_jobs, max_age_ms)
  local dk = p .. 'dead'
  local old = redis.call('ZRANGEBYSCORE', dk, '-inf', now - max_age_ms, 'LIMIT', 0, 1000)
  for _, jid in ipairs(old) do
    redis.call('DEL', p .. 'j:' .. jid, p .. 'it:' .. jid)
    redis.call('ZREM', dk, jid)
  end
  local excess = redis.call('ZCARD', dk) - max_jobs
  if excess > 0 then
    if excess > 1000 then excess = 1000 end
    local drop = redis.call('ZRANGE', dk, 0, excess - 1)
    for _, jid in ipairs(drop) do
      redis.call('DEL', p .. 'j:' .. jid, p .. 'it:' .. jid)
    end
    redis.call('ZREMRANGEBYRANK', dk, 0, excess - 1)
  end
end
-- replay returns the reply stored for a call token, if the call already ran
-- (the Redis client retried it after losing the reply); remember stores it.
local function replay(p, tok)
  if tok == '' then return nil end
  local v = redis.call('GET', p .. 'call:' .. tok)
  if v then return cjson.decode(v) end
  return nil
end
local function remember(p, tok, out)
  if tok ~= '' then redis.call('SET', p .. 'call:' .. tok, cjson.encode(out), 'PX', 60000) end
  return out
end
-- cancelled_event is the event of a job dropped because it was cancelled:
-- its id, kind, queue, attempt and meta, read from its envelope.
local function cancelled_event(jid, env, at)
  local kind, q, attempt, mlen, rest = string.match(env,
    '^1|[^|]*|([^|]*)|([^|]*)|(%d+)|[^|]*|[^|]*|[^|]*|[^|]*|(%d+)|[^|]*|()')
  local ev = {type = 'cancelled', jid = jid, at = at}
  if kind then
    ev.kind, ev.queue, ev.attempt = kind, q, math.max(tonumber(attempt), 1)
    local n = tonumber(mlen)
    if n > 0 then
      local ok, meta = pcall(cjson.decode, string.sub(env, rest, rest + n - 1))
      if ok and type(meta) == 'table' then ev.meta = meta end
    end
  end
  return cjson.encode(ev)
end
-- server_ms is the Redis server's time in milliseconds.
local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function bump_stat(p, name, day, n)
  redis.call('INCRBY', p .. 'stat:' .. name, n)
  local dk = p .. 'stat:' .. name .. ':' .. day
  redis.call('INCRBY', dk, n)
  redis.call('EXPIRE', dk, 31622400)
end
`

// enqueueScript adds jobs, to their queue's tail or to the scheduled set.
//
// KEYS[1] queues set, KEYS[2] remembered job ids
// ARGV[1] prefix, ARGV[2] now (ms), ARGV[3] call token (a retried call
// returns the first call's reply), then 8 per job:
//
//	jid, queue, envelope, due (ms, 0 = now), unique hash ('' = none),
//	unique ttl (ms, 0 = until the job finishes), event JSON ('' = none),
//	how long to remember a caller-chosen jid (ms, 0 = not chosen)
//
// Returns, per job, a status and a job id: 1 queued, 2 scheduled, 0 duplicate
// (the id is the job holding the uniqueness key, or the remembered jid).
var enqueueScript = redis.NewScript(luaLib + `
local p = ARGV[1]
local now = tonumber(ARGV[2])
local prior = replay(p, ARGV[3])
if prior then return prior end
local out, pushes, queues = {}, {}, {}
local pruned = false
for b = 4, #ARGV - 1, 8 do
  local jid, q, env = ARGV[b], ARGV[b+1], ARGV[b+2]
  local due, uh, uttl, ev = tonumber(ARGV[b+3]), ARGV[b+4], tonumber(ARGV[b+5]), ARGV[b+6]
  local keep = tonumber(ARGV[b+7])
  local status = 1
  if keep > 0 then
    if not pruned then
      redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
      pruned = true
    end
    if redis.call('ZSCORE', KEYS[2], jid) then
      status = 0
    else
      redis.call('ZADD', KEYS[2], now + keep, jid)
    end
  end
  if status == 1 and uh ~= '' then
    local uk = p .. 'u:' .. uh
    local ok
    if uttl > 0 then ok = redis.call('SET', uk, jid, 'NX', 'PX', uttl)
    else ok = redis.call('SET', uk, jid, 'NX') end
    if not ok then
      status = 0
      jid = redis.call('GET', uk) or ''
    end
  end
  if status == 1 then
    queues[q] = true
    if due > now then
      status = 2
      redis.call('HSET', p .. 'j:' .. jid, 'env', env)
      redis.call('ZADD', p .. 'scheduled', due, jid)
    else
      local l = pushes[q]
      if not l then l = {}; pushes[q] = l end
      l[#l+1] = env
    end
    publish(p, ev)
  end
  out[#out+1] = status
  out[#out+1] = jid
end
for q, l in pairs(pushes) do
  for i = 1, #l, 1000 do
    redis.call('RPUSH', p .. 'q:' .. q, unpack(l, i, math.min(i + 999, #l)))
  end
end
for q in pairs(queues) do redis.call('SADD', KEYS[1], q) end
notify(p, pushes)
return remember(p, ARGV[3], out)
`)

// fetchScript moves up to n jobs from the given queues, in order, into the
// process's in-flight hash, each with a new lease.
//
// Leases are a hybrid clock: the next lease is the greater of the last one
// handed out plus one and the Redis server's time in microseconds, and the
// counter keeps the last. So leases grow with every run of a job, and if
// Redis loses recent writes (a restart from an older snapshot, a failover to
// a lagging replica) and its counter goes back, the clock still puts new
// leases above every lease handed out before, as long as the server clock
// did not step back by more than the writes lost. The counter leads the
// clock only while more than one lease per microsecond is handed out. Leases
// near 1.8e15 stay exact in Lua's doubles (below 2^53) but are formatted
// with '%d': Lua would print them with "%.14g".
//
// When it finds nothing it
// raises the idle flag of every queue it looked at, so the next enqueue to
// one of them publishes a notification. A process that is not registered
// (it was presumed dead and reaped) may not fetch until its next heartbeat
// registers it again: jobs it took would sit where no reaper looks. A job
// whose cancellation is pending is dropped instead of handed out.
//
// KEYS[1] in-flight hash, KEYS[2] paused set, KEYS[3] lease counter, KEYS[4] procs set
// ARGV[1] prefix, ARGV[2] n, ARGV[3] process id, ARGV[4] now (RFC 3339, for
// events), ARGV[5] '1' to publish events, ARGV[6..] queue names in the order to look
//
// Returns 2 values per job: lease (as a string), envelope. An envelope without an id is
// filed under the id "bad-<lease>". Fails with ITERJOB_REAPED for an
// unregistered process.
var fetchScript = redis.NewScript(luaLib + `
local p = ARGV[1]
if not redis.call('ZSCORE', KEYS[4], ARGV[3]) then
  return redis.error_reply('ITERJOB_REAPED process ' .. ARGV[3] .. ' is not registered')
end
local need = tonumber(ARGV[2])
local checkCancels = redis.call('EXISTS', p .. 'cancels') == 1
local got = {}
for i = 6, #ARGV do
  if need <= 0 then break end
  local q = ARGV[i]
  if redis.call('SISMEMBER', KEYS[2], q) == 0 then
    local envs = redis.call('LPOP', p .. 'q:' .. q, need)
    if envs then
      for _, env in ipairs(envs) do
        local jid = string.match(env, '^1|([^|]+)|')
        if checkCancels and jid and redis.call('ZREM', p .. 'cancels', jid) == 1 then
          release_unique(p, jid, env)
          if ARGV[5] == '1' then
            publish(p, cancelled_event(jid, env, ARGV[4]))
          end
        else
          got[#got+1] = {jid, env}
          need = need - 1
        end
      end
    end
  end
end
if #got == 0 then
  for i = 6, #ARGV do redis.call('SET', p .. 'idle:' .. ARGV[i], '1') end
  return {}
end
local t = redis.call('TIME')
local base = tonumber(t[1]) * 1000000 + tonumber(t[2]) - 1
local last = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
if last > base then base = last end
redis.call('SET', KEYS[3], string.format('%d', base + #got))
local out, fv = {}, {}
for i, g in ipairs(got) do
  local lease = string.format('%d', base + i)
  fv[#fv+1] = g[1] or ('bad-' .. lease)
  fv[#fv+1] = lease .. '|' .. g[2]
  out[#out+1] = lease
  out[#out+1] = g[2]
end
redis.call('HSET', KEYS[1], unpack(fv))
return out
`)

// ackScript completes jobs that succeeded: forgets them, releases their
// uniqueness keys and counts them. A job this run no longer owns is left
// alone and reported.
//
// KEYS[1] in-flight hash, KEYS[2] the process's start marks
// ARGV[1] prefix, ARGV[2] day (yyyy-mm-dd), then 3 per job: jid, lease, event JSON
//
// Returns the ids of stale jobs.
var ackScript = redis.NewScript(luaLib + `
local p = ARGV[1]
local ids = {}
for i = 3, #ARGV - 1, 3 do ids[#ids+1] = ARGV[i] end
local vals = redis.call('HMGET', KEYS[1], unpack(ids))
local stale, done = {}, {}
for k, jid in ipairs(ids) do
  local v = vals[k]
  -- Read the lease and the unique hash without copying the envelope.
  if v and string.match(v, '^(%d+)|') == ARGV[3*k+1] then
    local u = string.match(v, '^%d+|1|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|([^|]*)|')
    if u and u ~= '-' then
      local uk = p .. 'u:' .. u
      if redis.call('GET', uk) == jid then redis.call('DEL', uk) end
    end
    done[#done+1] = jid
    publish(p, ARGV[3*k+2])
  else
    stale[#stale+1] = jid
  end
end
if #done > 0 then
  redis.call('HDEL', KEYS[1], unpack(done))
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('HDEL', KEYS[2], unpack(done)) end
  bump_stat(p, 'processed', ARGV[2], #done)
  if redis.call('EXISTS', p .. 'cancels') == 1 then redis.call('ZREM', p .. 'cancels', unpack(done)) end
end
return stale
`)

// finishScript ends a run that did not succeed, if the run still owns the
// job (its in-flight entry carries the run's lease).
//
// KEYS[1] in-flight hash, KEYS[2] the process's start marks
// ARGV[1] prefix, ARGV[2] jid, ARGV[3] lease, ARGV[4] action, ARGV[5] due (ms),
// ARGV[6] new envelope (empty = unchanged), ARGV[7] error JSON (empty = none),
// ARGV[8] event JSON, ARGV[9] now (ms), ARGV[10] day, ARGV[11] dead max jobs,
// ARGV[12] dead max age (ms)
//
// Actions: requeue (queue head, not a retry), schedule (scheduled set at due),
// retry (retry set at due, counts a failure), dead (dead set, counts a
// failure, releases uniqueness, keeps an iterable job's state as long as the
// dead set keeps the job), cancel (forgets the job, releases uniqueness).
//
// Returns 1, or 0 when the run no longer owns the job.
var finishScript = redis.NewScript(luaLib + `
local p, jid, lease, action = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local l, env = entry(redis.call('HGET', KEYS[1], jid))
if not l or l ~= lease then return 0 end
redis.call('HDEL', KEYS[1], jid)
redis.call('HDEL', KEYS[2], jid)
if ARGV[6] ~= '' then env = ARGV[6] end
local now = tonumber(ARGV[9])
local q = env_queue(env)
if action == 'requeue' and q then
  redis.call('LPUSH', p .. 'q:' .. q, env)
  notify(p, {[q] = true})
elseif action == 'schedule' then
  redis.call('HSET', p .. 'j:' .. jid, 'env', env)
  redis.call('ZADD', p .. 'scheduled', ARGV[5], jid)
elseif action == 'retry' then
  redis.call('HSET', p .. 'j:' .. jid, 'env', env, 'err', ARGV[7])
  redis.call('ZADD', p .. 'retry', ARGV[5], jid)
  bump_stat(p, 'failed', ARGV[10], 1)
elseif action == 'dead' or action == 'requeue' then
  redis.call('HSET', p .. 'j:' .. jid, 'env', env, 'err', ARGV[7])
  redis.call('ZADD', p .. 'dead', now, jid)
  redis.call('PEXPIRE', p .. 'it:' .. jid, ARGV[12])
  release_unique(p, jid, env)
  bump_stat(p, 'failed', ARGV[10], 1)
  trim_dead(p, now, tonumber(ARGV[11]), tonumber(ARGV[12]))
elseif action == 'cancel' then
  release_unique(p, jid, env)
  redis.call('ZREM', p .. 'cancels', jid)
else
  return redis.error_reply('rdb: unknown finish action ' .. action)
end
publish(p, ARGV[8])
return 1
`)

// promoteScript moves due jobs from the scheduled and retry sets to the tail
// of their queues.
//
// KEYS[1] scheduled set, KEYS[2] retry set
// ARGV[1] prefix, ARGV[2] now (ms), ARGV[3] limit per set
//
// Returns {moved, next due in ms or -1}.
var promoteScript = redis.NewScript(luaLib + `
local p, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local moved = 0
local woke = {}
local next_due = -1
for k = 1, 2 do
  local jids = redis.call('ZRANGEBYSCORE', KEYS[k], '-inf', now, 'LIMIT', 0, limit)
  for _, jid in ipairs(jids) do
    redis.call('ZREM', KEYS[k], jid)
    local jk = p .. 'j:' .. jid
    local env = redis.call('HGET', jk, 'env')
    local q = env and env_queue(env)
    if q then
      redis.call('RPUSH', p .. 'q:' .. q, env)
      redis.call('DEL', jk)
      woke[q] = true
      moved = moved + 1
    end
  end
  local first = redis.call('ZRANGE', KEYS[k], 0, 0, 'WITHSCORES')
  if first[2] then
    local d = tonumber(first[2])
    if next_due < 0 or d < next_due then next_due = d end
  end
end
notify(p, woke)
return {moved, next_due}
`)

// heartbeatScript records that a process is alive, on the Redis server's
// clock (so hosts whose clocks disagree agree on who is late).
//
// KEYS[1] procs set, KEYS[2] process hash, KEYS[3] the process's start marks,
// KEYS[4] the namespace's epoch
// ARGV[1] process id, ARGV[2] info JSON, ARGV[3] busy JSON, ARGV[4] hash TTL
// (s), ARGV[5] '1' on the first beat, ARGV[6] start marks TTL (s), ARGV[7]
// the process's liveness channel (empty for none), ARGV[8] its heartbeat
// interval (ms), ARGV[9] the epoch the process knows (empty on the first beat),
// ARGV[10] a new epoch, used if there is none (a fresh token every beat, so
// an epoch set again after a loss differs from every epoch before)
//
// The liveness channel is a pub/sub channel the process stays subscribed to
// (see reapScript); the process hash records it with the interval, so
// reapers judge each process by its own settings.
//
// The epoch is a random token set once (no TTL) by the first process to beat
// in the namespace; every process learns it on its first beat. A process
// that finds itself unregistered tells why by it: the epoch it knows still
// there means another process reaped it (its in-flight jobs went to
// others); the epoch gone or changed means Redis lost the namespace's data
// (a restart without persistence, a failover to a replica without it, a
// flush), its registration and in-flight jobs with it, and nobody else took
// them.
//
// Returns {status, now (ms), epoch}: status 1 when the process was
// registered, 0 when it had been presumed dead and reaped since its last
// beat, 2 when Redis lost its registration with the data; it is registered
// again in every case.
var heartbeatScript = redis.NewScript(luaLib + `
local now = server_ms()
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
local epoch = redis.call('GET', KEYS[4])
local lost = false
if not epoch then
  epoch, lost = ARGV[10], true
  redis.call('SET', KEYS[4], epoch)
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], 'info', ARGV[2], 'busy', ARGV[3], 'beat', now, 'alive', ARGV[7], 'hb', ARGV[8])
redis.call('HDEL', KEYS[2], 'gone')
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[6])
local status = 1
if not known and ARGV[5] ~= '1' then
  if lost or (ARGV[9] ~= '' and ARGV[9] ~= epoch) then status = 2 else status = 0 end
end
return {status, now, epoch}
`)

// restoreScript puts back the in-flight entries of a process after Redis
// lost them (see heartbeatScript), for the jobs the process still holds,
// with their leases; an entry present is left alone. It raises the lease
// counter to the highest lease restored, so no later lease repeats one, and
// restores the start marks of recovered jobs the process started.
//
// KEYS[1] in-flight hash, KEYS[2] the process's start marks, KEYS[3] lease counter
// ARGV[1] start marks TTL (s), then 4 per job: jid, lease, envelope, '1' to
// mark it started
//
// Returns the number of entries put back.
var restoreScript = redis.NewScript(`
local n, top = 0, tonumber(redis.call('GET', KEYS[3]) or '0') or 0
local marked = false
for i = 2, #ARGV - 3, 4 do
  local jid, lease = ARGV[i], ARGV[i+1]
  n = n + redis.call('HSETNX', KEYS[1], jid, lease .. '|' .. ARGV[i+2])
  if ARGV[i+3] == '1' then
    redis.call('HSETNX', KEYS[2], jid, lease)
    marked = true
  end
  local l = tonumber(lease)
  if l > top then top = l end
end
redis.call('SET', KEYS[3], string.format('%d', top))
if marked then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
return n
`)

// reapScript returns the in-flight jobs of dead processes to the head of
// their queues, counting the recovery in each envelope, and forgets those
// processes. Times are the Redis server's.
//
// A process is dead when it has not beaten for DeadAfter (it died, hung or
// lost Redis), or, much sooner, when its liveness connection is gone: each
// consumer stays subscribed to a channel of its own, and when a process
// dies the kernel closes its sockets, so Redis drops the subscription at
// once (PUBSUB NUMSUB reads 0). A hung or partitioned process keeps its
// connection and falls back to DeadAfter. As a live process whose pub/sub
// connection is merely reconnecting (a Redis restart or failover) must not
// be taken for dead, the quick path needs a process that missed its beats
// (silent for 1.5 of its intervals) and was seen without a subscriber by two
// reaps at least half an interval apart, with no beat in between (a beat
// clears the mark the first reap leaves, field 'gone' of its hash).
//
// A recovery counts against a job only when the job may have been what
// killed its process. Nothing says whether a job never recovered before was
// running or only fetched ahead, so its first recovery always counts. A job
// recovered before is marked in started:<id> (with its lease) by the run
// that starts it, before any of its code runs: its recovery counts only
// with that mark. So a job fetched ahead by process after process that each
// died of something else is never taken for a poison pill.
//
// KEYS[1] procs set
// ARGV[1] prefix, ARGV[2] DeadAfter (ms), ARGV[3] this process's id (never
// reaped), ARGV[4] how long a process must be silent to be looked at (ms)
//
// Returns {jobs recovered, ms until a process seen without its liveness
// connection may be confirmed dead (-1: none pending), reaped process ids...}.
var reapScript = redis.NewScript(luaLib + `
local p, self = ARGV[1], ARGV[3]
local now = server_ms()
local dead_cut = now - tonumber(ARGV[2])
local silent = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[4]), 'WITHSCORES', 'LIMIT', 0, 100)
local out = {0, -1}
local woke = {}
local function recheck(ms)
  if ms < 1 then ms = 1 end
  if out[2] < 0 or ms < out[2] then out[2] = ms end
end
local function reap(id)
  local ik, sk = p .. 'inflight:' .. id, p .. 'started:' .. id
  local all = redis.call('HGETALL', ik)
  for i = 2, #all, 2 do
    local lease, env = entry(all[i])
    local head, n, tail = string.match(env or '', '^(1|[^|]*|[^|]*|[^|]*|[^|]*|)(%d+)(|.*)$')
    local q = env and env_queue(env)
    if head and q then
      n = tonumber(n)
      if n == 0 or redis.call('HGET', sk, all[i-1]) == lease then n = n + 1 end
      env = head .. n .. tail
      redis.call('LPUSH', p .. 'q:' .. q, env)
      woke[q] = true
    else
      redis.call('HSET', p .. 'j:' .. all[i-1], 'env', env or all[i], 'err', '{"message":"rdb: unreadable in-flight entry recovered from a dead process","class":"rdb"}')
      redis.call('ZADD', p .. 'dead', now, all[i-1])
    end
    out[1] = out[1] + 1
  end
  redis.call('DEL', ik, sk, p .. 'proc:' .. id)
  redis.call('ZREM', KEYS[1], id)
  out[#out+1] = id
end
for i = 1, #silent, 2 do
  local id, beat = silent[i], tonumber(silent[i+1])
  if id ~= self then
    if beat <= dead_cut then
      reap(id)
    else
      local pk = p .. 'proc:' .. id
      local f = redis.call('HMGET', pk, 'alive', 'hb', 'gone')
      local hb = tonumber(f[2] or '')
      if f[1] and f[1] ~= '' and hb and beat <= now - 1.5 * hb then
        local gone = tonumber(f[3] or '')
        if redis.call('PUBSUB', 'NUMSUB', f[1])[2] > 0 then
          if gone then redis.call('HDEL', pk, 'gone') end
        elseif not gone then
          redis.call('HSET', pk, 'gone', now)
          recheck(hb / 2)
        elseif now - gone >= hb / 2 then
          reap(id)
        else
          recheck(gone + hb / 2 - now)
        end
      end
    end
  end
end
notify(p, woke)
return out
`)

// releaseScript hands jobs a process holds but will not run back to the head
// of their queues, without counting anything: fetched jobs a shutting-down
// process never started, or orphans (jobs in its in-flight hash it does not
// hold, after a lost fetch reply).
//
// KEYS[1] in-flight hash
// ARGV[1] prefix, then 2 per job: jid, lease (empty: whatever the lease)
//
// Returns the number released.
var releaseScript = redis.NewScript(luaLib + `
local p = ARGV[1]
local n = 0
local woke = {}
for i = #ARGV - 1, 2, -2 do
  local jid, lease = ARGV[i], ARGV[i+1]
  local l, env = entry(redis.call('HGET', KEYS[1], jid))
  local q = env and env_queue(env)
  if q and (l == lease or lease == '') then
    redis.call('LPUSH', p .. 'q:' .. q, env)
    redis.call('HDEL', KEYS[1], jid)
    woke[q] = true
    n = n + 1
  end
end
notify(p, woke)
return n
`)

// cancelScript records a cancellation and carries it out where it can be
// done at once. The job id goes into the cancels set first: a fetch drops a
// job whose cancellation is pending, and a runner stops such a running job,
// so a job that moves while Cancel looks for it is still cancelled. A job
// waiting in the scheduled, retry or dead set is removed at once.
//
// KEYS[1] job hash, KEYS[2] procs set
// ARGV[1] prefix, ARGV[2] jid, ARGV[3] event JSON, ARGV[4] now (ms),
// ARGV[5] how long a pending cancellation is kept (ms), ARGV[6] call token,
// ARGV[7] '1' to forget the cancellation if the job is not found,
// ARGV[8] '1' to check ARGV[9], the envelope the event was built from (empty:
// none): a job found in a set with another envelope is left there
//
// Returns the state the job was in: 'scheduled', 'retry', 'dead' (removed),
// 'running' (in some process's in-flight hash: its runner stops it), ”
// (not found here: it may be queued), or 'changed' (in a set, but its
// envelope is not ARGV[9]: read it again and build the event anew).
var cancelScript = redis.NewScript(luaLib + `
local p, jid = ARGV[1], ARGV[2]
local prior = replay(p, ARGV[6])
if prior then return prior end
local ck = p .. 'cancels'
redis.call('ZREMRANGEBYSCORE', ck, '-inf', tonumber(ARGV[4]) - tonumber(ARGV[5]))
redis.call('ZADD', ck, ARGV[4], jid)
for _, set in ipairs({'scheduled', 'retry', 'dead'}) do
  if redis.call('ZSCORE', p .. set, jid) then
    local env = redis.call('HGET', KEYS[1], 'env')
    if ARGV[8] == '1' and (env or '') ~= ARGV[9] then return 'changed' end
    redis.call('ZREM', p .. set, jid)
    if env then release_unique(p, jid, env) end
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', ck, jid)
    publish(p, ARGV[3])
    return remember(p, ARGV[6], set)
  end
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if redis.call('HEXISTS', p .. 'inflight:' .. id, jid) == 1 then
    return remember(p, ARGV[6], 'running')
  end
end
if ARGV[7] == '1' then redis.call('ZREM', ck, jid) end
return remember(p, ARGV[6], '')
`)

// removeQueuedScript removes one envelope from a queue list (and any pending
// cancellation of its job).
//
// KEYS[1] queue list
// ARGV[1] prefix, ARGV[2] jid, ARGV[3] envelope, ARGV[4] event JSON,
// ARGV[5] '1' to release the job's uniqueness key
//
// Returns 1, or 0 when the envelope was no longer there.
var removeQueuedScript = redis.NewScript(luaLib + `
if redis.call('LREM', KEYS[1], 1, ARGV[3]) == 0 then return 0 end
if ARGV[5] == '1' then release_unique(ARGV[1], ARGV[2], ARGV[3]) end
redis.call('ZREM', ARGV[1] .. 'cancels', ARGV[2])
publish(ARGV[1], ARGV[4])
return 1
`)

// moveScript is the admin API's move of a job waiting in a sorted set
// (scheduled, retry or dead) to its queue's tail ('queue'), the dead set
// ('dead') or nowhere ('delete'). The caller built the event from the
// envelope it read; if the envelope is no longer that one (the job moved
// and came back, an attempt later), nothing is done, so the caller reads it
// again rather than publish a stale event.
//
// KEYS[1] job hash
// ARGV[1] prefix, ARGV[2] jid, ARGV[3] set it waits in, ARGV[4] target,
// ARGV[5] now (ms), ARGV[6] event JSON, ARGV[7] dead max jobs, ARGV[8] dead
// max age (ms), ARGV[9] call token, ARGV[10] the envelope the event was
// built from (empty: do not check)
//
// Returns 1, 0 when the job is not in that set, or -1 when its envelope is
// not ARGV[10].
var moveScript = redis.NewScript(luaLib + `
local p, jid, jk, from, to = ARGV[1], ARGV[2], KEYS[1], ARGV[3], ARGV[4]
local prior = replay(p, ARGV[9])
if prior then return prior end
local env = redis.call('HGET', jk, 'env')
if not env then return remember(p, ARGV[9], 0) end
if ARGV[10] ~= '' and env ~= ARGV[10] then return -1 end
if redis.call('ZREM', p .. from, jid) == 0 then return remember(p, ARGV[9], 0) end
local now = tonumber(ARGV[5])
local q = env_queue(env)
if to == 'queue' and q then
  redis.call('RPUSH', p .. 'q:' .. q, env)
  redis.call('DEL', jk)
  notify(p, {[q] = true})
elseif to == 'dead' then
  redis.call('ZADD', p .. 'dead', now, jid)
  redis.call('PEXPIRE', p .. 'it:' .. jid, ARGV[8])
  release_unique(p, jid, env)
  trim_dead(p, now, tonumber(ARGV[7]), tonumber(ARGV[8]))
elseif to == 'delete' then
  release_unique(p, jid, env)
  redis.call('DEL', jk, p .. 'it:' .. jid)
else
  redis.call('ZADD', p .. from, now, jid)
  return redis.error_reply('rdb: cannot move job to ' .. to)
end
publish(p, ARGV[6])
return remember(p, ARGV[9], 1)
`)

// resumeQueueScript unpauses a queue and wakes idle workers.
//
// KEYS[1] paused set; ARGV[1] prefix, ARGV[2] queue
var resumeQueueScript = redis.NewScript(luaLib + `
redis.call('SREM', KEYS[1], ARGV[2])
notify(ARGV[1], {[ARGV[2]] = true})
return 1
`)

// iterBeginScript claims an iterable job's state for a run.
//
// KEYS[1] state hash
// ARGV[1] run, ARGV[2] now (ms), ARGV[3] TTL (ms)
//
// Returns {1, field, value, ...} with the state after the claim, or {0, run}
// when the state already belongs to this or a later run.
var iterBeginScript = redis.NewScript(`
local run = tonumber(ARGV[1])
local cur = tonumber(redis.call('HGET', KEYS[1], 'run') or '0')
if cur >= run then return {0, cur} end
redis.call('HSET', KEYS[1], 'run', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'executions', 1)
redis.call('HSETNX', KEYS[1], 'first_started_at', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local out = {1}
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out+1] = v end
return out
`)

// iterSaveScript writes an iterable job's state if the run still owns it, and
// refreshes its TTL.
//
// KEYS[1] state hash
// ARGV[1] run, ARGV[2] TTL (ms), then field, value pairs
//
// Returns 1, or 0 when a later run owns the state.
var iterSaveScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'run') ~= ARGV[1] then return 0 end
local fv = {}
for i = 3, #ARGV do fv[#fv+1] = ARGV[i] end
if #fv > 0 then redis.call('HSET', KEYS[1], unpack(fv)) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// iterRestoreScript writes an iterable job's whole state, run included, if
// the job has none: for a run whose state Redis lost (see heartbeatScript).
// It is never used to create state otherwise.
//
// KEYS[1] state hash
// ARGV[1] run, ARGV[2] TTL (ms), ARGV[3] executions, ARGV[4] first started
// at (ms), then field, value pairs
//
// Returns 2 when it restored the state, 1 when the state is there and owned
// by the run (nothing to do), 0 when another run owns it.
var iterRestoreScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'run')
if cur then
  if cur == ARGV[1] then return 1 end
  return 0
end
local fv = {'run', ARGV[1], 'executions', ARGV[3], 'first_started_at', ARGV[4]}
for i = 5, #ARGV do fv[#fv+1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fv))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 2
`)

// forgiveScript sets to zero the recovery count of a job a run holds: the
// run made progress, so the crashes before it were not the job's fault.
//
// KEYS[1] in-flight hash
// ARGV[1] jid, ARGV[2] lease
//
// Returns 1, or 0 when the run no longer holds the job.
var forgiveScript = redis.NewScript(luaLib + `
local l, env = entry(redis.call('HGET', KEYS[1], ARGV[1]))
if not l or l ~= ARGV[2] then return 0 end
local head, n, tail = string.match(env, '^(1|[^|]*|[^|]*|[^|]*|[^|]*|)(%d+)(|.*)$')
if head and n ~= '0' then
  redis.call('HSET', KEYS[1], ARGV[1], l .. '|' .. head .. '0' .. tail)
end
return 1
`)
