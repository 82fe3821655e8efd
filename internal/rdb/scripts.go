package rdb

import "github.com/redis/go-redis/v9"

// How a job moves. A job travels as one envelope string (see Envelope):
// queue lists hold envelopes; fetching pops them and records each in the
// fetching process's in-flight hash (of the job's queue) as
// "<lease>|<envelope>", with a lease that grows with every run of the job.
// Every way out of an in-flight hash (ack, requeue, schedule, retry, dead,
// cancel, release) checks that entry's lease: only the run holding the job's
// current lease may finish it. A process presumed dead loses its in-flight
// hashes to the reaper, so none of its stale runs can finish anything. Jobs
// waiting in the sched, retry and dead sets are ids in a sorted set plus an
// entry in the queue's parked hash (and, for failures, its errors hash).
//
// Every queue script receives, for each queue it touches, the block of keys
// QKeys.block lists (luaLib's qkeys names them), after two keys for events:
// KEYS[1] the events stream and KEYS[2] its event count. On a single Redis
// those are the global stream, and scripts append their events to it
// atomically with the change (ARGV[1] '1'); on a cluster they are two keys
// of the queue's own group that are never touched, and scripts return the
// events for the caller to append (ARGV[1] '0'). ARGV[2] is the number of
// events the stream keeps. Scripts that emit events return their batch
// first: a JSON array, or "" (none, or appended already).
//
// Moving a job touches one key per job at most (plus a few per call).

// luaLib is prepended to the queue scripts.
const luaLib = `
local INLINE = ARGV[1] == '1'
local EVMAX = tonumber(ARGV[2])
local evs, nevs = {}, 0
-- emit adds events to the call's batch: json is one event object, or n
-- objects joined by commas.
local function emit(json, n)
  if json and json ~= '' then
    evs[#evs+1] = json
    nevs = nevs + (n or 1)
  end
end
-- append_events adds a batch of n events to the stream (KEYS[1]) and trims
-- it to the newest EVMAX events or its last entry. The batch is a list of
-- pieces, each one or more event objects joined by commas; they become the
-- entry's fields e, e2, e3, ... as they are: a string handed to or built in
-- a script costs about a microsecond per kilobyte, so the events are never
-- joined here. KEYS[2] indexes the stream: one "cum n id" per entry, oldest
-- first (cum: events appended ever, up to this entry's), so trimming never
-- reads an entry's events.
local function append_events(pieces, n)
  local args = {'XADD', KEYS[1], '*', 'n', n, 'e', pieces[1]}
  for i = 2, #pieces do
    args[#args+1] = 'e' .. i
    args[#args+1] = pieces[i]
  end
  local id = redis.call(unpack(args))
  local cum = n
  local last = redis.call('LINDEX', KEYS[2], -1)
  if last then cum = cum + tonumber(string.match(last, '^(%d+)')) end
  redis.call('RPUSH', KEYS[2], string.format('%d %d %s', cum, n, id))
  while true do
    local first = redis.call('LINDEX', KEYS[2], 0)
    local fc, fn, fid = string.match(first, '^(%d+) (%d+) (.+)$')
    if fid == id or cum - (tonumber(fc) - tonumber(fn)) <= EVMAX then break end
    redis.call('XDEL', KEYS[1], fid)
    redis.call('LPOP', KEYS[2])
  end
end
-- flush appends the events emitted to the stream (inline) or returns them
-- as one JSON array. Many small pieces (one per job) are joined first.
local function flush()
  if #evs == 0 then return '' end
  if not INLINE then return '[' .. table.concat(evs, ',') .. ']' end
  if #evs > 8 then evs = {table.concat(evs, ',')} end
  append_events(evs, nevs)
  return ''
end
-- events_of walks a blob of events joined by commas, whose lengths are
-- given one per job (0: the job has none): events_of(blob) returns a
-- function that, given the next job's length, returns its event.
local function events_of(blob)
  local at = 1
  return function(n)
    if n == 0 then return nil end
    local ev = string.sub(blob, at, at + n - 1)
    at = at + n + 1
    return ev
  end
end
-- qkeys names the block of a queue's keys starting at KEYS[b].
local function qkeys(b)
  return {jobs=KEYS[b], inflight=KEYS[b+1], started=KEYS[b+2], leases=KEYS[b+3], paused=KEYS[b+4],
    idle=KEYS[b+5], cancels=KEYS[b+6], sched=KEYS[b+7], retry=KEYS[b+8], dead=KEYS[b+9],
    parked=KEYS[b+10], errors=KEYS[b+11], unique=KEYS[b+12], uniquejid=KEYS[b+13], ids=KEYS[b+14],
    stats=KEYS[b+15], calls=KEYS[b+16], callsat=KEYS[b+17], procs=KEYS[b+18]}
end
-- block returns the keys of the i-th queue of the call (1-based).
local function block(i) return qkeys(3 + (i - 1) * 19) end
-- head reads an envelope's header once: id, kind, queue, attempt,
-- recovered, unique hash.
local function head(env)
  return string.match(env, '^1|([^|]*)|([^|]*)|([^|]*)|(%d+)|(%d+)|([^|]*)|')
end
-- meta returns an envelope's metadata, decoded, or nil.
local function meta(env)
  local n, at = string.match(env, '^1|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|(%d+)|[^|]*|()')
  n = tonumber(n or '0')
  if not n or n == 0 then return nil end
  local ok, m = pcall(cjson.decode, string.sub(env, at, at + n - 1))
  if ok and type(m) == 'table' then return m end
  return nil
end
-- entry splits an in-flight entry "<lease>|<envelope>".
local function entry(v)
  if not v then return nil, nil end
  return string.match(v, '^(%d+)|(.*)$')
end
-- notify wakes the workers waiting on queue q if one said it was idle.
local function notify(ch, k, q)
  if redis.call('DEL', k.idle) == 1 then redis.call('PUBLISH', ch, q) end
end
-- release_unique frees the uniqueness key uh if job jid holds it.
local function release_unique(k, jid, uh)
  if uh and uh ~= '' and uh ~= '-' and redis.call('HGET', k.uniquejid, uh) == jid then
    redis.call('HDEL', k.uniquejid, uh)
    redis.call('ZREM', k.unique, uh)
  end
end
-- replay returns the reply stored for a call token, if the call already ran
-- (the Redis client retried it after losing the reply); remember stores it
-- for a minute.
local function replay(k, tok)
  if tok == '' then return nil end
  local v = redis.call('HGET', k.calls, tok)
  if v then return cjson.decode(v) end
  return nil
end
local function remember(k, tok, now, out)
  if tok ~= '' then
    redis.call('HSET', k.calls, tok, cjson.encode(out))
    redis.call('ZADD', k.callsat, now, tok)
    local old = redis.call('ZRANGEBYSCORE', k.callsat, '-inf', now - 60000, 'LIMIT', 0, 100)
    if #old > 0 then
      redis.call('HDEL', k.calls, unpack(old))
      redis.call('ZREM', k.callsat, unpack(old))
    end
  end
  return out
end
-- bump adds n to a counter, all time and for the day; the day's first bump
-- drops the counter of the day a year and a month before.
local function bump(k, name, day, oldday, n)
  redis.call('HINCRBY', k.stats, name, n)
  if redis.call('HINCRBY', k.stats, name .. ':' .. day, n) == n then
    redis.call('HDEL', k.stats, name .. ':' .. oldday)
  end
end
-- park puts a job in a sorted set, with its envelope (and error).
local function park(k, set, score, jid, env, err)
  redis.call('HSET', k.parked, jid, env)
  if err and err ~= '' then redis.call('HSET', k.errors, jid, err) end
  redis.call('ZADD', set, score, jid)
end
-- unpark forgets a job's envelope and error.
local function unpark(k, jid)
  redis.call('HDEL', k.parked, jid)
  redis.call('HDEL', k.errors, jid)
end
-- trim_dead drops dead jobs past the caps, oldest first, and appends their
-- ids to out.
local function trim_dead(k, now, max_jobs, max_age, out)
  local drop = redis.call('ZRANGEBYSCORE', k.dead, '-inf', now - max_age, 'LIMIT', 0, 1000)
  local excess = redis.call('ZCARD', k.dead) - #drop - max_jobs
  if excess > 0 then
    for _, jid in ipairs(redis.call('ZRANGE', k.dead, #drop, #drop + math.min(excess, 1000) - 1)) do
      drop[#drop+1] = jid
    end
  end
  for i = 1, #drop, 500 do
    local part = {unpack(drop, i, math.min(i + 499, #drop))}
    redis.call('HDEL', k.parked, unpack(part))
    redis.call('HDEL', k.errors, unpack(part))
    redis.call('ZREM', k.dead, unpack(part))
  end
  for _, jid in ipairs(drop) do out[#out+1] = jid end
end
-- server_ms is the Redis server's time in milliseconds.
local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// enqueueScript adds jobs, to their queue's tail or to its sched set.
//
// KEYS[1..2] events; then one block per queue (QKeys.block)
// ARGV[1..2] events; ARGV[3] now (ms), ARGV[4] call token (a retried call
// returns the first call's reply; kept in the first queue's calls),
// ARGV[5] notify channel, ARGV[6] the jobs' events (JSON objects joined by
// commas, in job order), ARGV[7] the number of queues, ARGV[8..] their
// names, then 8 per job:
//
//	queue index (1-based), jid, envelope, due (ms, 0 = now), unique hash
//	('' = none), unique ttl (ms, 0 = until the job finishes), length of the
//	job's event in ARGV[6] (0: none), how long to remember a caller-chosen
//	jid (ms, 0 = not chosen)
//
// Returns {events, then per job a status and a job id}: 1 queued, 2
// scheduled, 0 duplicate (the id is the job holding the uniqueness key, or
// the remembered jid).
var enqueueScript = redis.NewScript(luaLib + `
local now, tok, ch, nq = tonumber(ARGV[3]), ARGV[4], ARGV[5], tonumber(ARGV[7])
local first = block(1)
local prior = replay(first, tok)
if prior then return prior end
local names = {}
for i = 1, nq do names[i] = ARGV[7 + i] end
local out, pushes, pruned = {''}, {}, {}
local all, nev = true, 0
for b = 8 + nq, #ARGV - 7, 8 do
  local qi = tonumber(ARGV[b])
  local k = block(qi)
  local jid, env, due, uh = ARGV[b+1], ARGV[b+2], tonumber(ARGV[b+3]), ARGV[b+4]
  local uttl, ev, keep = tonumber(ARGV[b+5]), ARGV[b+6] ~= '0', tonumber(ARGV[b+7])
  local status = 1
  if keep > 0 then
    if not pruned[qi] then
      redis.call('ZREMRANGEBYSCORE', k.ids, '-inf', now)
      pruned[qi] = true
    end
    if redis.call('ZSCORE', k.ids, jid) then
      status = 0
    else
      redis.call('ZADD', k.ids, string.format('%d', now + keep), jid)
    end
  end
  if status == 1 and uh ~= '' then
    local held = tonumber(redis.call('ZSCORE', k.unique, uh) or '0')
    if held > now then
      status = 0
      jid = redis.call('HGET', k.uniquejid, uh) or ''
    else
      local exp = 253402300799999 -- 9999-12-31: held until the job finishes
      if uttl > 0 then exp = now + uttl end
      redis.call('ZADD', k.unique, string.format('%d', exp), uh)
      redis.call('HSET', k.uniquejid, uh, jid)
    end
  end
  if status == 1 then
    if due > now then
      status = 2
      park(k, k.sched, due, jid, env)
    else
      local l = pushes[qi]
      if not l then l = {}; pushes[qi] = l end
      l[#l+1] = env
    end
    if ev then nev = nev + 1 end
  elseif ev then
    all = false
  end
  out[#out+1] = status
  out[#out+1] = jid
end
for qi, l in pairs(pushes) do
  local k = block(qi)
  for i = 1, #l, 1000 do
    redis.call('RPUSH', k.jobs, unpack(l, i, math.min(i + 999, #l)))
  end
  notify(ch, k, names[qi])
end
if all then
  -- The common case: the events go out as one piece.
  emit(ARGV[6], nev)
else
  -- Some were duplicates: emit the events of the jobs added only.
  local again = events_of(ARGV[6])
  local j = 2
  for b = 8 + nq, #ARGV - 7, 8 do
    local evlen = tonumber(ARGV[b+6])
    if evlen > 0 then
      local ev = again(evlen)
      if out[j] ~= 0 then emit(ev) end
    end
    j = j + 2
  end
end
out[1] = flush()
return remember(first, tok, now, out)
`)

// fetchScript moves up to n jobs from the given queues, in order, into the
// process's in-flight hashes, each with a new lease.
//
// Leases are a hybrid clock, per queue: the next lease is the greater of the
// last one handed out plus one and the Redis server's time in microseconds,
// and the queue's counter keeps the last. So leases grow with every run of a
// job, and if Redis loses recent writes (a restart from an older snapshot, a
// failover to a lagging replica) and a counter goes back, the clock still
// puts new leases above every lease handed out before, as long as the server
// clock did not step back by more than the writes lost. A counter leads the
// clock only while more than one lease per microsecond is handed out. Leases
// near 1.8e15 stay exact in Lua's doubles (below 2^53) but are formatted
// with '%d': Lua would print them with "%.14g".
//
// When it finds nothing it raises the idle flag of every queue it looked at,
// so the next enqueue to one of them publishes a notification. A process
// that is not registered in a queue (its procs hash: a reaper took its jobs,
// or Redis lost the data) may not fetch from it until it has registered
// again: jobs it took would sit where no reaper looks. A job whose
// cancellation is pending is dropped instead of handed out.
//
// KEYS[1..2] events; then one block per queue, for the fetching process
// ARGV[1..2] events; ARGV[3] n, ARGV[4] process id, ARGV[5] now (RFC 3339,
// for events), ARGV[6] '1' to emit cancelled events, ARGV[7..] the queue
// names, in the order to look
//
// Returns {events, then 3 per job: lease (a string), queue, envelope}. An
// envelope without an id is filed under the id "bad-<lease>". Fails with
// ITERJOB_REAPED for a process not registered in one of the queues.
var fetchScript = redis.NewScript(luaLib + `
local need, proc = tonumber(ARGV[3]), ARGV[4]
local byq = {}
for i = 7, #ARGV do
  if redis.call('HEXISTS', block(i - 6).procs, proc) == 0 then
    return redis.error_reply('ITERJOB_REAPED process ' .. proc .. ' is not registered in queue ' .. ARGV[i])
  end
end
for i = 7, #ARGV do
  local k = block(i - 6)
  if need > 0 and redis.call('EXISTS', k.paused) == 0 then
    local envs = redis.call('LPOP', k.jobs, need)
    if envs then
      local checkCancels = redis.call('EXISTS', k.cancels) == 1
      local mine = {}
      for _, env in ipairs(envs) do
        local jid = string.match(env, '^1|([^|]+)|')
        if checkCancels and jid and redis.call('ZREM', k.cancels, jid) == 1 then
          local _, kind, q, attempt, _, uh = head(env)
          release_unique(k, jid, uh)
          if ARGV[6] == '1' then
            emit(cjson.encode({type = 'cancelled', jid = jid, kind = kind, queue = q,
              attempt = math.max(tonumber(attempt or '1') or 1, 1), at = ARGV[5], meta = meta(env)}))
          end
        else
          mine[#mine+1] = {jid, env}
          need = need - 1
        end
      end
      if #mine > 0 then byq[#byq+1] = {k, mine, ARGV[i]} end
    end
  end
end
local out = {''}
if #byq == 0 then
  for i = 7, #ARGV do redis.call('SET', block(i - 6).idle, '1') end
  out[1] = flush()
  return out
end
local t = redis.call('TIME')
local clock = tonumber(t[1]) * 1000000 + tonumber(t[2]) - 1
for _, qb in ipairs(byq) do
  local k, mine = qb[1], qb[2]
  local base = tonumber(redis.call('GET', k.leases) or '0') or 0
  if clock > base then base = clock end
  redis.call('SET', k.leases, string.format('%d', base + #mine))
  local fv = {}
  for i, g in ipairs(mine) do
    local lease = string.format('%d', base + i)
    fv[#fv+1] = g[1] or ('bad-' .. lease)
    fv[#fv+1] = lease .. '|' .. g[2]
    out[#out+1] = lease
    out[#out+1] = qb[3]
    out[#out+1] = g[2]
  end
  redis.call('HSET', k.inflight, unpack(fv))
end
out[1] = flush()
return out
`)

// FetchScriptHash is the SHA1 of fetchScript, which names it in an EVALSHA
// (crash tests act on the reply of a fetch by it).
var FetchScriptHash = fetchScript.Hash()

// ackScript completes jobs that succeeded: forgets them, releases their
// uniqueness keys and counts them. A job this run no longer owns is left
// alone and reported.
//
// KEYS[1..2] events; then one block per queue, for the acking process
// ARGV[1..2] events; ARGV[3] day (yyyy-mm-dd), ARGV[4] the day whose counter
// to drop, ARGV[5] events that precede (JSON objects joined by commas),
// ARGV[6] their number, ARGV[7] the jobs' events (JSON objects joined by
// commas, in job order), then 4 per job: queue index, jid, lease, length of
// its event in ARGV[7] (0: none)
//
// The events go out as one piece when every job is acknowledged (the common
// case: Lua never handles them one by one); otherwise those of the stale
// jobs are cut out.
//
// Returns {events, ids of stale jobs...}.
var ackScript = redis.NewScript(luaLib + `
local byq, stale = {}, {''}
emit(ARGV[5], tonumber(ARGV[6]))
for i = 8, #ARGV - 3, 4 do
  local qi = tonumber(ARGV[i])
  local l = byq[qi]
  if not l then l = {ids = {}, args = {}}; byq[qi] = l end
  l.ids[#l.ids+1] = ARGV[i+1]
  l.args[#l.args+1] = i
end
local ok = {}
for qi, l in pairs(byq) do
  local k = block(qi)
  local vals = redis.call('HMGET', k.inflight, unpack(l.ids))
  local done = {}
  for n, jid in ipairs(l.ids) do
    local i = l.args[n]
    local v = vals[n]
    local lease, uh
    -- Read the lease and the unique hash without copying the envelope.
    if v then lease, uh = string.match(v, '^(%d+)|1|[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|([^|]*)|') end
    if lease and lease == ARGV[i+2] then
      if uh ~= '-' then release_unique(k, jid, uh) end
      done[#done+1] = jid
      ok[i] = true
    else
      stale[#stale+1] = jid
    end
  end
  if #done > 0 then
    redis.call('HDEL', k.inflight, unpack(done))
    if redis.call('EXISTS', k.started) == 1 then redis.call('HDEL', k.started, unpack(done)) end
    if redis.call('EXISTS', k.cancels) == 1 then redis.call('ZREM', k.cancels, unpack(done)) end
    bump(k, 'processed', ARGV[3], ARGV[4], #done)
  end
end
if ARGV[7] ~= '' then
  if #stale == 1 then
    local n = 0
    for i = 8, #ARGV - 3, 4 do
      if ARGV[i+3] ~= '0' then n = n + 1 end
    end
    emit(ARGV[7], n)
  else
    local next_event = events_of(ARGV[7])
    for i = 8, #ARGV - 3, 4 do
      local ev = next_event(tonumber(ARGV[i+3]))
      if ok[i] then emit(ev) end
    end
  end
end
stale[1] = flush()
return stale
`)

// finishScript ends a run that did not succeed, if the run still owns the
// job (its in-flight entry carries the run's lease).
//
// KEYS[1..2] events; KEYS[3..] the job's queue block, for its process
// ARGV[1..2] events; ARGV[3] jid, ARGV[4] lease, ARGV[5] action, ARGV[6] due
// (ms), ARGV[7] new envelope (empty = unchanged), ARGV[8] error JSON (empty
// = none), ARGV[9] event JSON, ARGV[10] now (ms), ARGV[11] day, ARGV[12] the
// day whose counter to drop, ARGV[13] dead max jobs, ARGV[14] dead max age
// (ms), ARGV[15] notify channel, ARGV[16] events that precede (JSON objects
// joined by commas), ARGV[17] their number
//
// Actions: requeue (queue head, not a retry), schedule (sched set at due),
// retry (retry set at due, counts a failure), dead (dead set, counts a
// failure, releases uniqueness, trims the dead set), cancel (forgets the
// job, releases uniqueness). A job whose envelope cannot be read goes to the
// dead set whatever the action.
//
// Returns {events, 1 or 0 (the run no longer owns the job), ids of the dead
// jobs trimmed...}.
var finishScript = redis.NewScript(luaLib + `
local k = block(1)
local jid, lease, action = ARGV[3], ARGV[4], ARGV[5]
emit(ARGV[16], tonumber(ARGV[17]))
local l, env = entry(redis.call('HGET', k.inflight, jid))
if not l or l ~= lease then return {flush(), 0} end
redis.call('HDEL', k.inflight, jid)
redis.call('HDEL', k.started, jid)
if ARGV[7] ~= '' then env = ARGV[7] end
local now = tonumber(ARGV[10])
local _, _, q, _, _, uh = head(env)
local out = {'', 1}
if not q and action ~= 'cancel' then action = 'dead' end
if action == 'requeue' then
  redis.call('LPUSH', k.jobs, env)
  notify(ARGV[15], k, q)
elseif action == 'schedule' then
  park(k, k.sched, ARGV[6], jid, env)
elseif action == 'retry' then
  park(k, k.retry, ARGV[6], jid, env, ARGV[8])
  bump(k, 'failed', ARGV[11], ARGV[12], 1)
elseif action == 'dead' then
  park(k, k.dead, now, jid, env, ARGV[8])
  release_unique(k, jid, uh)
  bump(k, 'failed', ARGV[11], ARGV[12], 1)
  trim_dead(k, now, tonumber(ARGV[13]), tonumber(ARGV[14]), out)
elseif action == 'cancel' then
  release_unique(k, jid, uh)
  redis.call('ZREM', k.cancels, jid)
else
  return redis.error_reply('rdb: unknown finish action ' .. action)
end
emit(ARGV[9])
out[1] = flush()
return out
`)

// promoteScript moves due jobs from the sched and retry sets of the given
// queues to the tail of their queues.
//
// KEYS[1..2] events (unused); then one block per queue
// ARGV[1..2] events; ARGV[3] now (ms), ARGV[4] limit per set, ARGV[5]
// notify channel, ARGV[6..] the queue names
//
// Returns {moved, next due in ms or -1}.
var promoteScript = redis.NewScript(luaLib + `
local now, limit, ch = ARGV[3], tonumber(ARGV[4]), ARGV[5]
local moved, next_due = 0, -1
for i = 6, #ARGV do
  local k = block(i - 5)
  local woke = false
  for _, set in ipairs({k.sched, k.retry}) do
    local jids = redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, limit)
    for _, jid in ipairs(jids) do
      redis.call('ZREM', set, jid)
      local env = redis.call('HGET', k.parked, jid)
      if env then
        redis.call('RPUSH', k.jobs, env)
        unpark(k, jid)
        woke = true
        moved = moved + 1
      end
    end
    local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
    if first[2] then
      local d = tonumber(first[2])
      if next_due < 0 or d < next_due then next_due = d end
    end
  end
  if woke then notify(ch, k, ARGV[i]) end
end
return {moved, next_due}
`)

// releaseScript hands jobs a process holds but will not run back to the head
// of their queue, without counting anything: fetched jobs a shutting-down
// process never started, or orphans (jobs in its in-flight hash it does not
// hold, after a lost fetch reply).
//
// KEYS[1..2] events (unused); KEYS[3..] the queue's block, for the process
// ARGV[1..2] events; ARGV[3] notify channel, ARGV[4] queue name, then 2 per
// job: jid, lease (empty: whatever the lease)
//
// Returns the number released.
var releaseScript = redis.NewScript(luaLib + `
local k = block(1)
local n = 0
for i = #ARGV - 1, 5, -2 do
  local jid, lease = ARGV[i], ARGV[i+1]
  local l, env = entry(redis.call('HGET', k.inflight, jid))
  if env and (l == lease or lease == '') then
    redis.call('LPUSH', k.jobs, env)
    redis.call('HDEL', k.inflight, jid)
    n = n + 1
  end
end
if n > 0 then notify(ARGV[3], k, ARGV[4]) end
return n
`)

// reapQueueScript returns the in-flight jobs of a dead process in one queue
// to the head of the queue, counting the recovery in each envelope, and
// unregisters the process there, so that if it is alive after all (it
// stalled) it fetches no more from the queue until it registers again.
//
// A recovery counts against a job only when the job may have been what
// killed its process. Nothing says whether a job never recovered before was
// running or only fetched ahead, so its first recovery always counts. A job
// recovered before is marked in started:<id> (with its lease) by the run
// that starts it, before any of its code runs: its recovery counts only
// with that mark. So a job fetched ahead by process after process that each
// died of something else is never taken for a poison pill.
//
// KEYS[1..2] events (unused); KEYS[3..] the queue's block, for the dead
// process
// ARGV[1..2] events; ARGV[3] notify channel, ARGV[4] queue name, ARGV[5]
// the dead process's id, ARGV[6] now (ms)
//
// Returns the number of jobs recovered.
var reapQueueScript = redis.NewScript(luaLib + `
local k = block(1)
local all = redis.call('HGETALL', k.inflight)
local n = 0
for i = 2, #all, 2 do
  local lease, env = entry(all[i])
  local h, c, t = string.match(env or '', '^(1|[^|]*|[^|]*|[^|]*|[^|]*|)(%d+)(|.*)$')
  if h then
    c = tonumber(c)
    if c == 0 or redis.call('HGET', k.started, all[i-1]) == lease then c = c + 1 end
    redis.call('LPUSH', k.jobs, h .. c .. t)
  else
    park(k, k.dead, ARGV[6], all[i-1], env or all[i],
      '{"message":"rdb: unreadable in-flight entry recovered from a dead process","class":"rdb"}')
  end
  n = n + 1
end
redis.call('DEL', k.inflight, k.started)
redis.call('HDEL', k.procs, ARGV[5])
if n > 0 then notify(ARGV[3], k, ARGV[4]) end
return n
`)

// registerScript registers a process in a queue (it may fetch from it), or,
// with ARGV[4] '0', unregisters it (it stopped).
//
// KEYS[1..2] events (unused); KEYS[3..] the queue's block
// ARGV[1..2] events; ARGV[3] process id, ARGV[4] '1' to register,
// ARGV[5] now (ms)
var registerScript = redis.NewScript(luaLib + `
local k = block(1)
if ARGV[4] == '1' then
  redis.call('HSET', k.procs, ARGV[3], ARGV[5])
else
  redis.call('HDEL', k.procs, ARGV[3])
end
return 1
`)

// restoreScript puts back the in-flight entries of a process in one queue
// after Redis lost them (see heartbeatScript), for the jobs the process still
// holds, with their leases; an entry present is left alone. It raises the
// queue's lease counter to the highest lease restored, so no later lease
// repeats one, and restores the start marks of recovered jobs the process
// started.
//
// KEYS[1..2] events (unused); KEYS[3..] the queue's block, for the process
// ARGV[1..2] events; ARGV[3] start marks TTL (s), then 4 per job: jid,
// lease, envelope, '1' to mark it started
//
// Returns the number of entries put back.
var restoreScript = redis.NewScript(luaLib + `
local k = block(1)
local n, top = 0, tonumber(redis.call('GET', k.leases) or '0') or 0
local marked = false
for i = 4, #ARGV - 3, 4 do
  local jid, lease = ARGV[i], ARGV[i+1]
  n = n + redis.call('HSETNX', k.inflight, jid, lease .. '|' .. ARGV[i+2])
  if ARGV[i+3] == '1' then
    redis.call('HSETNX', k.started, jid, lease)
    marked = true
  end
  local l = tonumber(lease)
  if l > top then top = l end
end
redis.call('SET', k.leases, string.format('%d', top))
if marked then redis.call('EXPIRE', k.started, ARGV[3]) end
return n
`)

// markStartedScript records that a process started the run of a job holding
// a lease (see reapQueueScript).
//
// KEYS[1..2] events (unused); KEYS[3..] the queue's block, for the process
// ARGV[1..2] events; ARGV[3] jid, ARGV[4] lease, ARGV[5] TTL of the marks (s)
var markStartedScript = redis.NewScript(luaLib + `
local k = block(1)
redis.call('HSET', k.started, ARGV[3], ARGV[4])
redis.call('EXPIRE', k.started, ARGV[5])
return 1
`)

// forgiveScript sets to zero the recovery count of a job a run holds: the
// run made progress, so the crashes before it were not the job's fault.
//
// KEYS[1..2] events (unused); KEYS[3..] the queue's block, for the process
// ARGV[1..2] events; ARGV[3] jid, ARGV[4] lease
//
// Returns 1, or 0 when the run no longer holds the job.
var forgiveScript = redis.NewScript(luaLib + `
local k = block(1)
local l, env = entry(redis.call('HGET', k.inflight, ARGV[3]))
if not l or l ~= ARGV[4] then return 0 end
local h, c, t = string.match(env, '^(1|[^|]*|[^|]*|[^|]*|[^|]*|)(%d+)(|.*)$')
if h and c ~= '0' then
  redis.call('HSET', k.inflight, ARGV[3], l .. '|' .. h .. '0' .. t)
end
return 1
`)

// cancelScript records the cancellation of a job in one queue and carries
// it out if the job waits in the queue's sched, retry or dead set. The job
// id goes into the cancels set first: a fetch drops a job whose cancellation
// is pending, and a runner stops such a running job, so a job that moves
// while Cancel looks for it is still cancelled.
//
// KEYS[1..2] events; KEYS[3..21] the queue's block; KEYS[22..] the queue's
// in-flight hashes of the registered processes
// ARGV[1..2] events; ARGV[3] jid, ARGV[4] event JSON, ARGV[5] now (ms),
// ARGV[6] how long a pending cancellation is kept (ms), ARGV[7] call token,
// ARGV[8] '1' to check ARGV[9], the envelope the event was built from: a job
// found in a set with another envelope is left there
//
// Returns {events, state}: 'scheduled', 'retry' or 'dead' (removed from
// that set), 'running' (in an in-flight hash: its runner stops it), empty
// (neither), or 'changed' (in a set, but its envelope is not ARGV[9]: read
// it again and build the event anew).
var cancelScript = redis.NewScript(luaLib + `
local k = block(1)
local jid, now = ARGV[3], tonumber(ARGV[5])
local prior = replay(k, ARGV[7])
if prior then return prior end
redis.call('ZREMRANGEBYSCORE', k.cancels, '-inf', now - tonumber(ARGV[6]))
redis.call('ZADD', k.cancels, now, jid)
for name, set in pairs({scheduled = k.sched, retry = k.retry, dead = k.dead}) do
  if redis.call('ZSCORE', set, jid) then
    local env = redis.call('HGET', k.parked, jid)
    if ARGV[8] == '1' and (env or '') ~= ARGV[9] then return {'', 'changed'} end
    redis.call('ZREM', set, jid)
    if env then
      local _, _, _, _, _, uh = head(env)
      release_unique(k, jid, uh)
    end
    unpark(k, jid)
    redis.call('ZREM', k.cancels, jid)
    emit(ARGV[4])
    return remember(k, ARGV[7], now, {flush(), name})
  end
end
for i = 22, #KEYS do
  if redis.call('HEXISTS', KEYS[i], jid) == 1 then return remember(k, ARGV[7], now, {'', 'running'}) end
end
return remember(k, ARGV[7], now, {'', ''})
`)

// removeQueuedScript removes one envelope from a queue list, with any
// pending cancellation of its job.
//
// KEYS[1..2] events; KEYS[3..] the queue's block
// ARGV[1..2] events; ARGV[3] jid, ARGV[4] envelope, ARGV[5] event JSON
//
// Returns {events, 1}, or {events, 0} when the envelope was no longer there.
var removeQueuedScript = redis.NewScript(luaLib + `
local k = block(1)
if redis.call('LREM', k.jobs, 1, ARGV[4]) == 0 then return {'', 0} end
local _, _, _, _, _, uh = head(ARGV[4])
release_unique(k, ARGV[3], uh)
redis.call('ZREM', k.cancels, ARGV[3])
emit(ARGV[5])
return {flush(), 1}
`)

// moveScript is the admin API's move of a job waiting in a sorted set of its
// queue (sched, retry or dead) to the queue's tail ('queue'), the dead set
// ('dead') or nowhere ('delete'). The caller built the event from the
// envelope it read; if the envelope is no longer that one (the job moved
// and came back, an attempt later), nothing is done, so the caller reads it
// again rather than emit a stale event.
//
// KEYS[1..2] events; KEYS[3..] the queue's block
// ARGV[1..2] events; ARGV[3] jid, ARGV[4] set it waits in ('scheduled',
// 'retry', 'dead'), ARGV[5] target, ARGV[6] now (ms), ARGV[7] event JSON,
// ARGV[8] dead max jobs, ARGV[9] dead max age (ms), ARGV[10] call token,
// ARGV[11] the envelope the event was built from (empty: do not check),
// ARGV[12] notify channel, ARGV[13] queue name
//
// Returns {events, 1}, {events, 0} when the job is not in that set, or
// {events, -1} when its envelope is not ARGV[11]; then the ids of the dead
// jobs trimmed.
var moveScript = redis.NewScript(luaLib + `
local k = block(1)
local jid, to, now = ARGV[3], ARGV[5], tonumber(ARGV[6])
local from = ({scheduled = k.sched, retry = k.retry, dead = k.dead})[ARGV[4]]
local prior = replay(k, ARGV[10])
if prior then return prior end
local env = redis.call('HGET', k.parked, jid)
if not env or not from then return remember(k, ARGV[10], now, {'', 0}) end
if ARGV[11] ~= '' and env ~= ARGV[11] then return {'', -1} end
if redis.call('ZREM', from, jid) == 0 then return remember(k, ARGV[10], now, {'', 0}) end
local _, _, _, _, _, uh = head(env)
local out = {'', 1}
if to == 'queue' then
  redis.call('RPUSH', k.jobs, env)
  unpark(k, jid)
  notify(ARGV[12], k, ARGV[13])
elseif to == 'dead' then
  redis.call('ZADD', k.dead, now, jid)
  release_unique(k, jid, uh)
  trim_dead(k, now, tonumber(ARGV[8]), tonumber(ARGV[9]), out)
elseif to == 'delete' then
  release_unique(k, jid, uh)
  unpark(k, jid)
else
  redis.call('ZADD', from, now, jid)
  return redis.error_reply('rdb: cannot move job to ' .. to)
end
emit(ARGV[7])
out[1] = flush()
return remember(k, ARGV[10], now, out)
`)

// resumeQueueScript unpauses a queue and wakes idle workers.
//
// KEYS[1..2] events (unused); KEYS[3..] the queue's block
// ARGV[1..2] events; ARGV[3] notify channel, ARGV[4] queue name
var resumeQueueScript = redis.NewScript(luaLib + `
local k = block(1)
redis.call('DEL', k.paused)
notify(ARGV[3], k, ARGV[4])
return 1
`)

// appendEventsScript appends a batch of events to the stream and trims it
// to the events it keeps (on a cluster, where a queue script cannot reach
// the stream).
//
// KEYS[1] events stream, KEYS[2] its index
// ARGV[1] '1', ARGV[2] events kept, ARGV[3] the batch (event objects joined
// by commas), ARGV[4] the number of events in it
var appendEventsScript = redis.NewScript(luaLib + `
append_events({ARGV[3]}, tonumber(ARGV[4]))
return 1
`)

// heartbeatScript records that a process is alive, on the Redis server's
// clock (so hosts whose clocks disagree agree on who is late).
//
// KEYS[1] procs set, KEYS[2] process hash, KEYS[3] the namespace's epoch,
// KEYS[4] the set of processes being reaped
// ARGV[1] process id, ARGV[2] info JSON, ARGV[3] busy JSON, ARGV[4] hash TTL
// (s), ARGV[5] '1' on the first beat, ARGV[6] the process's liveness channel
// (empty for none), ARGV[7] its heartbeat interval (ms), ARGV[8] the epoch
// the process knows (empty on the first beat), ARGV[9] a new epoch, used if
// there is none (a fresh token every beat, so an epoch set again after a
// loss differs from every epoch before)
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
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
local epoch = redis.call('GET', KEYS[3])
local lost = false
if not epoch then
  epoch, lost = ARGV[9], true
  redis.call('SET', KEYS[3], epoch)
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], 'info', ARGV[2], 'busy', ARGV[3], 'beat', now, 'alive', ARGV[6], 'hb', ARGV[7])
redis.call('HDEL', KEYS[2], 'gone')
redis.call('EXPIRE', KEYS[2], ARGV[4])
local status = 1
if not known and ARGV[5] ~= '1' then
  if lost or (ARGV[8] ~= '' and ARGV[8] ~= epoch) then status = 2 else status = 0 end
end
return {status, now, epoch}
`)

// reapCandidatesScript lists the processes a reap must look at: those
// silent for a while, and those left in the reaping set. Most reaps find
// none and stop here, in one call; otherwise the caller passes their
// process hashes to reapScript in KEYS.
//
// KEYS[1] procs set, KEYS[2] reaping set
// ARGV[1] how long a process must be silent to be looked at (ms), ARGV[2]
// this process's id (never reaped)
//
// Returns {the number of silent processes, their ids..., the ids in the
// reaping set...}, up to 100 of each.
var reapCandidatesScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {0}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]), 'LIMIT', 0, 101)) do
  if id ~= ARGV[2] and out[1] < 100 then
    out[#out+1] = id
    out[1] = out[1] + 1
  end
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, 99)) do
  if id ~= ARGV[2] then out[#out+1] = id end
end
return out
`)

// reapScript judges the silent processes reapCandidatesScript found and
// moves the dead ones from the procs set to the reaping set; the caller
// then reaps their jobs queue by queue (reapQueueScript) and drops them
// from the reaping set. A reaper that dies half way leaves them in the
// reaping set, where the next reaper finds them. Times are the Redis
// server's.
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
// clears the mark the first reap leaves, field 'gone' of its hash). The
// quick path is only taken by a reaper whose own liveness connection the
// server sees: after a failover or restart, the new server knows no
// subscription at all until each process reconnects, and a reaper that has
// not itself reconnected cannot tell the dead from the reconnecting. The
// caller passes no channel (the quick path off) while its own calls have
// been failing recently, for the same reason.
//
// KEYS[1] procs set, KEYS[2] reaping set, KEYS[3..] the process hashes of
// the candidates, in ARGV order
// ARGV[1] DeadAfter (ms), ARGV[2] how long a process must be silent to be
// looked at (ms), ARGV[3] the reaper's own liveness channel (empty: no quick
// path), ARGV[4..] the candidates' ids
//
// Returns {ms until a process seen without its liveness connection may be
// confirmed dead (-1: none pending), ids of the processes found dead}.
var reapScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead_cut, look_cut = now - tonumber(ARGV[1]), now - tonumber(ARGV[2])
local out = {-1}
local function recheck(ms)
  if ms < 1 then ms = 1 end
  if out[1] < 0 or ms < out[1] then out[1] = ms end
end
local quick = ARGV[3] ~= '' and redis.call('PUBSUB', 'NUMSUB', ARGV[3])[2] > 0
for i = 4, #ARGV do
  local id, pk = ARGV[i], KEYS[i - 1]
  -- It may have beaten since it was listed.
  local beat = tonumber(redis.call('ZSCORE', KEYS[1], id) or '')
  if beat and beat <= look_cut then
    local dead = beat <= dead_cut
    if not dead and quick then
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
          dead = true
        else
          recheck(gone + hb / 2 - now)
        end
      end
    end
    if dead then
      redis.call('ZREM', KEYS[1], id)
      redis.call('DEL', pk)
      redis.call('ZADD', KEYS[2], now, id)
      out[#out+1] = id
    end
  end
end
return out
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
