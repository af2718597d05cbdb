/**
 * The Lua script that holds a shared breaker's decisions, and the pure reading of its
 * replies. Everything a breaker shares lives in ONE hash key (`<prefix>{<name>}`), so the
 * script is atomic and runs unchanged on Redis Cluster; the time is the server's (`TIME`),
 * so the clocks of the processes never have to agree.
 *
 * Fields of the hash:
 * - `gen`: an id made when the key is created: a key lost (restart, expiry) and made again
 *   is a new generation, whose epochs start over.
 * - `st`: `c` (closed) or `o` (open; half-open once `until` has passed).
 * - `ep`: the epoch, incremented on every opening and every closing: one open period is one epoch.
 * - `until`: server milliseconds at which the open period ends.
 * - `ok`: probe successes in this half-open period.
 * - `b`: the window, JSON `{ bucket: [calls, failures] }`.
 * - `pf`: JSON `{ process: last failure time }`: the processes that failed within the window.
 * - `pr`: the probe leases, JSON `{ "s<slot>": [process, lease expiry] }`.
 * - `np`: the probes granted in this epoch; `opens`: openings ever; `at`: the last opening (server ms).
 * - `n`: consecutive openings since the last closing: the index into the open durations.
 *
 * The open durations (`ARGV[8]`) are a comma-separated list: one duration (`resetTimeout` or
 * `shared.openDuration`), or the first durations of an `openSchedule`, one per consecutive
 * opening, the last one kept once the list ends. The process whose report or probe opens the
 * state sends the list, so the duration is decided once and written in `until` for the fleet.
 *
 * @internal
 */
export const script = `
local key = KEYS[1]
local op = ARGV[1]
local owner = ARGV[2]
local windowMs = tonumber(ARGV[3])
local bucketCount = tonumber(ARGV[4])
local minimumCalls = tonumber(ARGV[5])
local rate = tonumber(ARGV[6])
local quorum = tonumber(ARGV[7])
local openDurations = {}
for v in string.gmatch(ARGV[8], '[^,]+') do openDurations[#openDurations + 1] = tonumber(v) end
local maxProbes = tonumber(ARGV[9])
local leaseMs = tonumber(ARGV[10])
local successThreshold = tonumber(ARGV[11])
local ttlMs = tonumber(ARGV[12])
local channel = ARGV[13]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', key, 'gen', 'st', 'ep', 'until', 'ok', 'b', 'pf', 'pr', 'np', 'n')
local gen = f[1]
local fresh = false
if not gen then
  gen = tostring(now) .. '-' .. owner
  fresh = true
end
local st = f[2] or 'c'
local ep = tonumber(f[3] or '0')
local untilMs = tonumber(f[4] or '0')
local ok = tonumber(f[5] or '0')
local buckets = cjson.decode(f[6] or '{}')
local pids = cjson.decode(f[7] or '{}')
local probes = cjson.decode(f[8] or '{}')
local granted = tonumber(f[9] or '0')
local streak = tonumber(f[10] or '0')
local bucketMs = math.ceil(windowMs / bucketCount)
local current = math.floor(now / bucketMs)

local function prune()
  local kept = {}
  for k, v in pairs(buckets) do
    if tonumber(k) > current - bucketCount then kept[k] = v end
  end
  buckets = kept
  local keptPids = {}
  for k, v in pairs(pids) do
    if v > now - windowMs then keptPids[k] = v end
  end
  pids = keptPids
end

local function save()
  redis.call('HSET', key, 'gen', gen, 'st', st, 'ep', ep, 'until', untilMs, 'ok', ok,
    'b', cjson.encode(buckets), 'pf', cjson.encode(pids), 'pr', cjson.encode(probes), 'np', granted, 'n', streak)
  redis.call('PEXPIRE', key, ttlMs + math.max(0, untilMs - now))
end

local function openNow()
  streak = streak + 1
  local openMs = openDurations[math.min(streak, #openDurations)]
  st = 'o'
  ep = ep + 1
  untilMs = now + openMs
  ok = 0
  probes = {}
  granted = 0
  redis.call('HINCRBY', key, 'opens', 1)
  redis.call('HSET', key, 'at', now)
  redis.call('PUBLISH', channel, 'open ' .. gen .. ' ' .. ep .. ' ' .. openMs)
end

local function closeNow()
  streak = 0
  st = 'c'
  ep = ep + 1
  untilMs = 0
  ok = 0
  probes = {}
  granted = 0
  buckets = {}
  pids = {}
  redis.call('PUBLISH', channel, 'close ' .. gen .. ' ' .. ep .. ' 0')
end

local function status()
  if st == 'c' then return 'closed', 0 end
  if now < untilMs then return 'open', untilMs - now end
  return 'half', 0
end

local function reply(extra, value)
  local s, remaining = status()
  return {s, gen, ep, remaining, extra or '', value or 0, granted}
end

if op == 'read' then
  if fresh then return {'closed', '', 0, 0, '', 0, 0} end
  return reply()
end

if op == 'report' then
  local successes = tonumber(ARGV[14])
  local failures = tonumber(ARGV[15])
  prune()
  local tripped = 0
  if st == 'c' then
    local k = tostring(current)
    local b = buckets[k] or {0, 0}
    b[1] = b[1] + successes + failures
    b[2] = b[2] + failures
    buckets[k] = b
    if failures > 0 then pids[owner] = now end
    local calls, fails, processes = 0, 0, 0
    for _, v in pairs(buckets) do
      calls = calls + v[1]
      fails = fails + v[2]
    end
    for _ in pairs(pids) do processes = processes + 1 end
    if calls >= minimumCalls and fails >= rate * calls then
      if processes >= quorum then
        openNow()
      else
        tripped = processes
      end
    end
  end
  save()
  return reply(tripped > 0 and 'noquorum' or '', tripped)
end

if op == 'acquire' then
  local s = status()
  if s ~= 'half' then return reply() end
  local earliest = nil
  for i = 1, maxProbes do
    local slot = 's' .. i
    local p = probes[slot]
    if (not p) or p[2] <= now then
      probes[slot] = {owner, now + leaseMs}
      granted = granted + 1
      save()
      return reply('probe', i)
    end
    if earliest == nil or p[2] < earliest then earliest = p[2] end
  end
  return reply('full', earliest - now)
end

if op == 'result' then
  local e = tonumber(ARGV[14])
  local slot = 's' .. ARGV[15]
  local outcome = ARGV[16]
  local g = ARGV[17]
  local p = probes[slot]
  if fresh or g ~= gen or st ~= 'o' or e ~= ep or (not p) or p[1] ~= owner then
    return reply('late')
  end
  if outcome == 'f' then
    openNow()
  elseif outcome == 's' then
    probes[slot] = nil
    ok = ok + 1
    if ok >= successThreshold then closeNow() end
  else
    probes[slot] = nil
  end
  save()
  return reply()
end

if op == 'halfopen' then
  if (not fresh) and st == 'o' and now < untilMs then
    untilMs = now
    save()
    redis.call('PUBLISH', channel, 'open ' .. gen .. ' ' .. ep .. ' 0')
  end
  if fresh then return {'closed', '', 0, 0, '', 0, 0} end
  return reply()
end

if op == 'reset' then
  redis.call('DEL', key)
  redis.call('PUBLISH', channel, 'reset - 0 0')
  return {'closed', '', 0, 0, '', 0, 0}
end

return redis.error_reply('unknown operation ' .. tostring(op))
`

/**
 * The shared state as a process sees it.
 *
 * @internal
 */
export type Status = "Closed" | "Open" | "HalfOpen"

/**
 * One reply of the script, read.
 *
 * @internal
 */
export interface Reply {
  readonly status: Status
  /** The key's generation; empty when the key does not exist. */
  readonly generation: string
  readonly epoch: number
  /** What remains of the open period, in milliseconds (Open only). */
  readonly remainingMillis: number
  /** `probe` (a lease was granted), `full` (every lease is held), `late`, `noquorum` or empty. */
  readonly extra: string
  /**
   * The slot granted (`probe`), the time until the earliest lease expires (`full`), the failing
   * processes (`noquorum`).
   */
  readonly value: number
  /** Probes granted in this epoch. */
  readonly granted: number
}

const statusOf = (text: unknown): Status => text === "open" ? "Open" : text === "half" ? "HalfOpen" : "Closed"

/**
 * Reads a reply of the script; anything malformed reads as an error.
 *
 * @internal
 */
export const decodeReply = (raw: unknown): Reply | undefined => {
  if (!Array.isArray(raw) || raw.length < 7) return undefined
  const [status, generation, epoch, remaining, extra, value, granted] = raw as Array<unknown>
  const toNumber = (u: unknown) => typeof u === "number" ? u : Number(u)
  const reply: Reply = {
    status: statusOf(status),
    generation: String(generation ?? ""),
    epoch: toNumber(epoch),
    remainingMillis: toNumber(remaining),
    extra: String(extra ?? ""),
    value: toNumber(value),
    granted: toNumber(granted)
  }
  return Number.isFinite(reply.epoch) && Number.isFinite(reply.remainingMillis) ? reply : undefined
}

/**
 * One message of a breaker's channel: `open <gen> <epoch> <openMillis>`, `close <gen> <epoch> 0`
 * or `reset - 0 0`.
 *
 * @internal
 */
export interface Message {
  readonly kind: "open" | "close" | "reset"
  readonly generation: string
  readonly epoch: number
  readonly openMillis: number
}

/** @internal */
export const decodeMessage = (text: string): Message | undefined => {
  const [kind, generation, epoch, openMillis] = text.split(" ")
  if (kind !== "open" && kind !== "close" && kind !== "reset") return undefined
  const message: Message = {
    kind,
    generation: generation ?? "",
    epoch: Number(epoch),
    openMillis: Number(openMillis)
  }
  return Number.isFinite(message.epoch) && Number.isFinite(message.openMillis) ? message : undefined
}

/**
 * The snapshot a process keeps of the shared state. `openUntil` and `fullUntil` are in the
 * process's own clock: the remaining durations of the replies are added to the local time
 * they arrived at, so no two clocks need to agree.
 *
 * @internal
 */
export interface Snapshot {
  readonly generation: string
  readonly epoch: number
  readonly status: Status
  readonly openUntil: number
  /** Until when every probe lease is known to be held (half-open only). */
  readonly fullUntil: number
}

/** @internal */
export const initialSnapshot: Snapshot = { generation: "", epoch: -1, status: "Closed", openUntil: 0, fullUntil: 0 }

/**
 * Whether news about the shared state replaces what a process knows: a newer epoch of the
 * same generation, the same epoch (a fresher reading of it), or any other generation (the
 * key was lost and made again). An older epoch is news that arrived late and is dropped.
 *
 * @internal
 */
export const isNewer = (known: Snapshot, generation: string, epoch: number): boolean =>
  generation !== known.generation || epoch >= known.epoch

/**
 * The snapshot after a reply that arrived at local time `now`.
 *
 * @internal
 */
export const applyReply = (known: Snapshot, reply: Reply, now: number): Snapshot => {
  if (!isNewer(known, reply.generation, reply.epoch)) return known
  const status = reply.status
  return {
    generation: reply.generation,
    epoch: reply.epoch,
    status,
    openUntil: status === "Open" ? now + reply.remainingMillis : status === "HalfOpen" ? now : 0,
    fullUntil: reply.extra === "full" ? now + Math.max(0, reply.value) : 0
  }
}

/**
 * The snapshot after a message of the channel that arrived at local time `now`.
 *
 * @internal
 */
export const applyMessage = (known: Snapshot, message: Message, now: number): Snapshot => {
  if (message.kind === "reset") return { ...initialSnapshot }
  if (!isNewer(known, message.generation, message.epoch)) return known
  return message.kind === "open"
    ? {
      generation: message.generation,
      epoch: message.epoch,
      status: "Open",
      openUntil: now + message.openMillis,
      fullUntil: 0
    }
    : { generation: message.generation, epoch: message.epoch, status: "Closed", openUntil: 0, fullUntil: 0 }
}

/**
 * What a call does given the snapshot: reject (open), try for a probe lease (the open period
 * is over), or run through the local breaker (closed, or the shared store is not healthy and
 * no known open period holds).
 *
 * @internal
 */
export type Route =
  | { readonly _tag: "Reject"; readonly reason: "Open" | "HalfOpenFull"; readonly retryAfterMillis: number }
  | { readonly _tag: "Acquire" }
  | { readonly _tag: "Local" }

/** @internal */
export const route = (snapshot: Snapshot, healthy: boolean, now: number): Route => {
  if (snapshot.status === "Closed") return { _tag: "Local" }
  // A known open period is honoured to its end even when Redis stopped answering.
  if (snapshot.status === "Open" && now < snapshot.openUntil) {
    return { _tag: "Reject", reason: "Open", retryAfterMillis: snapshot.openUntil - now }
  }
  if (!healthy) return { _tag: "Local" }
  if (now < snapshot.fullUntil) {
    return { _tag: "Reject", reason: "HalfOpenFull", retryAfterMillis: snapshot.fullUntil - now }
  }
  return { _tag: "Acquire" }
}
