// The sweep use case: for one shard of the deadline index, find the devices whose deadline passed by the cutoff,
// re-arm those still alive and commit the offline transition of the others, then publish through the outbox. The
// cutoff comes from the ingest watermarks, never the wall clock alone, so our own lag never makes a device look
// silent. No AWS here: ports only.
import { mapLimit } from './concurrency.js';
import { type DeviceState, policyOf, presumedLastSeen, transitionEvent } from './device.js';
import { deadlineOf, flapFieldsOf, recordTransition, settlesAt, startedFlapping, transitionEvents } from './flap.js';
import { DEFAULT_RECHECK_MS, heldUntil, type MaintenanceStore, type MaintenanceWindow } from './maintenance.js';
import { hasPendingEvents, relayOutboxes } from './outbox.js';
import { type FlapDamping, offlineAt, type Policy } from './policy.js';
import type { Billed, CommitRequest, DeviceStore, EventPublisher, ExpiredEntry } from './ports.js';
import { STATUS } from './table-schema.js';
import { oldestWatermarkAge, sweepCutoff, type WatermarkStore } from './watermark.js';

/** One unit of sweep work on the sweep queue. The dispatcher enqueues `{shard}`; a job that runs out of budget
 * enqueues its continuation with the cutoff it judged by and where it stopped. */
export interface SweepJob {
  shard: string;
  /** Set on continuations: judge by the same cutoff as the job they continue. */
  cutoff?: number;
  /** Set on continuations: the deadline-index position to resume after. */
  cursor?: string;
  /** How many jobs precede this one in its chain of continuations (for logs). */
  continuation?: number;
}

/** Where sweep jobs go: the sweep queue. Tick jobs are delayed to spread them over the minute. */
export interface SweepJobQueue {
  enqueue(jobs: SweepJob[], delaySeconds?: number): Promise<void>;
}

export interface SweepSettings {
  /** Added to the slowest watermark (see `sweepCutoff`). */
  toleranceMs: number;
  /** How long one job may work before it hands the rest of its shard to a continuation. */
  budgetMs: number;
  /** Deadline-index entries per query page. */
  pageSize: number;
  /** Devices settled in parallel within a page. */
  concurrency: number;
  /** Outbox entries older than this are re-published (their committer crashed or could not publish). */
  republishAfterMs: number;
  /** Flap damping of the device types that have it (flap.ts). @default none */
  flapDamping?: Readonly<Record<string, FlapDamping>>;
  /** How often a device held by a maintenance window, or reported behind an offline parent, is looked at again.
   * @default DEFAULT_RECHECK_MS */
  maintenanceRecheckMs?: number;
  /** The tag that names a device's parent (gateway): see `parentVerdict`. @default none */
  parentTag?: string;
  /** How long after a device went silent its parent may go offline and still be the cause. @default 60 s */
  parentGraceMs?: number;
}

export interface SweepDeps {
  settings: SweepSettings;
  store: DeviceStore;
  publisher: EventPublisher;
  watermarks: Pick<WatermarkStore, 'read'>;
  queue: SweepJobQueue;
  /** Stamps events and measures the budget. Judging uses the cutoff, which never exceeds it. */
  now: () => number;
  /** The outbox-index shards a job of `shard` re-publishes. @default the job's shard (the batched engine's shards
   * are not the indexes' shards: batched.ts) */
  outboxShards?: (shard: string) => string[];
  /** The maintenance windows, read once per job and only by a job that finds a device to report. @default none */
  maintenance?: Pick<MaintenanceStore, 'read'>;
}

export interface SweepOptions {
  /** Time the runtime still grants (Lambda's `getRemainingTimeInMillis`): the budget never exceeds it. */
  remainingMs?: () => number;
}

export interface SweepStats {
  shard: string;
  /** Undefined when nothing could be judged: a live ingest partition has no watermark yet. */
  cutoff?: number;
  /** `now - cutoff` when the job started: how far behind the wall clock the sweep judges. */
  lagMs?: number;
  /** Age of the slowest live ingest partition's watermark when the job started (Infinity: one has none yet). */
  watermarkAgeMs?: number;
  pages: number;
  scanned: number;
  /** Offline transitions committed (those of a flapping device publish nothing). */
  offline: number;
  /** Offline transitions that started a device's flapping (published device.flapping instead). */
  flapStarted: number;
  /** Flapping devices found stable for their window: their settled state was published. */
  settled: number;
  rearmed: number;
  /** Index entries whose device had already left the index (index lag, a duplicate job). */
  skipped: number;
  /** A continuation job was enqueued for the rest of the shard. */
  continued: boolean;
  /** Events published by the outbox re-publish (older outbox entries), part of `published`. */
  republished: number;
  published: number;
  /** Devices whose events could not all be published: they stay in the outbox for the re-publish. */
  publishFailures: number;
  writeUnits: number;
  /** Per offline transition: `detectedAt - (lastSeen + timeout)`. */
  latenessMs: number[];
  /** Devices that could not be settled (store errors); the next sweep finds them again. */
  errors: unknown[];
}

/** How long after a device went silent its parent may still go offline and be the cause (`parentVerdict`). */
export const DEFAULT_PARENT_GRACE_MS = 60_000;

/** How many times one device is re-decided when its state keeps changing under the sweep (a busy device). */
const MAX_ATTEMPTS = 4;
/** Left of the runtime's remaining time for the last page to finish and the job to report. */
const RUNTIME_MARGIN_MS = 5_000;

export class InvalidSweepJob extends Error {
  constructor(readonly body: string) {
    super(`not a sweep job: ${body.slice(0, 200)}`);
    this.name = 'InvalidSweepJob';
  }
}

export function parseSweepJob(body: string): SweepJob {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    throw new InvalidSweepJob(body);
  }
  const job = raw as Partial<Record<keyof SweepJob, unknown>> | null;
  const valid =
    typeof job === 'object' &&
    job !== null &&
    typeof job.shard === 'string' &&
    job.shard !== '' &&
    (job.cutoff === undefined || Number.isSafeInteger(job.cutoff)) &&
    (job.cursor === undefined || typeof job.cursor === 'string') &&
    (job.continuation === undefined || Number.isSafeInteger(job.continuation));
  if (!valid) throw new InvalidSweepJob(body);
  return job as SweepJob;
}

/** Runs one sweep job: the expired part of the shard (or its continuation), then the outbox re-publish. */
export async function sweepShard(job: SweepJob, deps: SweepDeps, options: SweepOptions = {}): Promise<SweepStats> {
  const { settings } = deps;
  const startedAt = deps.now();
  const stats = emptyStats(job.shard);
  const budgetEnd = startedAt + settings.budgetMs;
  const { remainingMs } = options;
  const hasTime = (t: number) => t < budgetEnd && (!remainingMs || remainingMs() > RUNTIME_MARGIN_MS);

  // A continuation keeps its cutoff: an older cutoff is only more cautious, and its cursor is only meaningful for
  // the range it was taken from. Newer expiries are the next tick's work.
  const snapshot = await deps.watermarks.read();
  stats.watermarkAgeMs = oldestWatermarkAge(startedAt, snapshot);
  const cutoff = job.cutoff ?? sweepCutoff(startedAt, snapshot, settings.toleranceMs);
  if (cutoff !== undefined) {
    stats.cutoff = cutoff;
    stats.lagMs = startedAt - cutoff;
    await sweepExpired(job, cutoff, { ...deps, context: offlineContext(deps, cutoff) }, stats, hasTime);
  }
  await republish(job.shard, deps, stats, hasTime);
  return stats;
}

/** What an offline decision consults beyond the device's own item, each read at most once per job. */
interface OfflineContext {
  /** Until when a maintenance window holds the offline event of `device`, offline since `since` (maintenance.ts
   * `heldUntil`); undefined when none does. */
  held(device: DeviceState, since: number): Promise<number | undefined>;
  /** A device's item, cached for the job: parents are shared by many devices. */
  parent(parentId: string): Promise<DeviceState | undefined>;
}

function offlineContext(deps: SweepDeps, cutoff: number): OfflineContext {
  const { maintenance } = deps;
  let windows: Promise<readonly MaintenanceWindow[]> | undefined;
  const parents = new Map<string, Promise<DeviceState | undefined>>();
  const recheckMs = deps.settings.maintenanceRecheckMs ?? DEFAULT_RECHECK_MS;
  return {
    async held(device, since) {
      if (!maintenance) return undefined;
      windows ??= maintenance.read().then((read) => read.windows);
      return heldUntil(await windows, device, since, cutoff, recheckMs);
    },
    parent(parentId) {
      let parent = parents.get(parentId);
      if (!parent) {
        parent = deps.store.get(parentId);
        parents.set(parentId, parent);
      }
      return parent;
    },
  };
}

async function sweepExpired(
  job: SweepJob,
  cutoff: number,
  deps: SweepDeps & { context: OfflineContext },
  stats: SweepStats,
  hasTime: (t: number) => boolean,
): Promise<void> {
  const { settings, store } = deps;
  let cursor = job.cursor;
  do {
    const t = deps.now();
    // The first page always runs, so that every job makes progress however small its budget.
    if (stats.pages > 0 && !hasTime(t)) {
      await deps.queue.enqueue([{ shard: job.shard, cutoff, cursor, continuation: (job.continuation ?? 0) + 1 }]);
      stats.continued = true;
      return;
    }
    const page = await store.queryExpired(job.shard, cutoff, settings.pageSize, cursor);
    stats.pages++;
    stats.scanned += page.items.length;
    // In a storm most entries found are expired: a read (1 RCU) then beats a re-arm whose failure costs a write.
    const readFirst = stats.offline > stats.rearmed;
    const outcomes = await mapLimit(page.items, settings.concurrency, (entry) =>
      settle(entry, cutoff, job.shard, t, deps, readFirst).catch((error: unknown) => ({
        kind: 'error' as const,
        error,
        units: 0,
      })),
    );
    const transitions: DeviceState[] = [];
    for (const outcome of outcomes) {
      stats.writeUnits += outcome.units;
      if (outcome.kind === 'offline') {
        stats.offline++;
        if (startedFlapping(outcome.after)) stats.flapStarted++;
        transitions.push(outcome.after);
        stats.latenessMs.push(t - (outcome.after.lastSeen + outcome.after.timeoutMs));
      } else if (outcome.kind === 'settled') {
        stats.settled++;
        transitions.push(outcome.after);
      } else if (outcome.kind === 'rearmed') stats.rearmed++;
      else if (outcome.kind === 'skipped') stats.skipped++;
      else stats.errors.push(outcome.error);
    }
    if (transitions.length > 0) {
      const relay = await relayOutboxes(transitions, store, deps.publisher, {
        handover: { now: t, liveForMs: settings.republishAfterMs },
      });
      stats.published += relay.published;
      stats.publishFailures += relay.failed;
    }
    cursor = page.next;
  } while (cursor);
}

type Settled =
  | { kind: 'rearmed' | 'skipped'; units: number }
  | { kind: 'offline' | 'settled'; after: DeviceState; units: number }
  | { kind: 'error'; error: unknown; units: number };

/** What the stored state calls for at `cutoff`. */
type Judgement =
  | { kind: 'skip' }
  | { kind: 'rearm'; policy: Policy }
  | { kind: 'park'; deadline: number; mutedUntil?: number }
  | { kind: 'offline' }
  | { kind: 'settle' }
  /** Reported offline behind its parent: is the parent back (`parentVerdict`)? */
  | { kind: 'orphan' };

export function judge(current: DeviceState | undefined, cutoff: number): Judgement {
  if (!current) return { kind: 'skip' };
  const settles = settlesAt(current);
  // Silent but muted: stay where it is, parked in the deadline index at the mute's end, where the sweep finds it
  // again and reports it then if it is still silent. Nothing is committed, so nothing is published during the mute.
  const { mutedUntil } = current;
  const hold =
    mutedUntil !== undefined && mutedUntil > cutoff
      ? ({ kind: 'park', deadline: mutedUntil, mutedUntil } as const)
      : undefined;
  if (current.status === STATUS.offline) {
    // Reported behind its offline parent: looked at again until the parent is back. A report is an offline event, so
    // a mute holds it.
    if (current.parentOffline !== undefined && settles === undefined) return hold ?? { kind: 'orphan' };
    // In the index only while it flaps (else the entry lags behind the item, or a duplicate job got there first):
    // stable offline for the window, it settles offline, which is an offline event and so waits for a mute's end.
    if (settles === undefined || settles > cutoff) return { kind: 'skip' };
    return hold ?? { kind: 'settle' };
  }
  if (current.status !== STATUS.online) return { kind: 'skip' };
  const policy = policyOf(current);
  const offline = offlineAt(presumedLastSeen(current), policy);
  // Stable online for the window before it could fall silent: it settles online (online events are never muted).
  if (settles !== undefined && settles <= cutoff && settles < offline) return { kind: 'settle' };
  if (offline > cutoff) {
    if (settles !== undefined) return { kind: 'park', deadline: Math.min(offline, settles) };
    // Alive by its skip horizon only (a message up to it may have been skipped unwritten): parked there, like a mute,
    // since a re-arm counts from `lastSeen`.
    return offlineAt(current.lastSeen, policy) > cutoff
      ? { kind: 'rearm', policy }
      : { kind: 'park', deadline: offline };
  }
  return hold ?? { kind: 'offline' };
}

/** Settles one index entry. In steady state the re-arm comes first, because most entries found are alive devices
 * (the ingest moves deadlines rarely) and it costs one write; when its condition fails the item comes back with the
 * failure, so the offline decision needs no read. When the job has mostly found expired devices (a mass disconnect,
 * a catch-up), it reads the item first instead: the decision is the same, from a strongly consistent read, and every
 * write stays conditional. */
async function settle(
  entry: ExpiredEntry,
  cutoff: number,
  shard: string,
  now: number,
  deps: Pick<SweepDeps, 'store' | 'settings'> & { context: OfflineContext },
  readFirst: boolean,
) {
  const { store } = deps;
  let units = 0;
  let current: DeviceState | undefined;
  if (readFirst || entry.flapping) {
    current = await store.get(entry.deviceId);
  } else {
    const first = await store.rearm(entry.deviceId, policyOf(entry), cutoff);
    units = billed(first);
    if (first.applied) return { kind: 'rearmed', units } satisfies Settled;
    current = first.current;
  }
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const state = current!;
    const judgement = await heldByWindow(judge(current, cutoff), state, deps.context);
    if (judgement.kind === 'skip') return { kind: 'skipped', units } satisfies Settled;
    if (judgement.kind === 'park') {
      const out = await store.park({
        deviceId: entry.deviceId,
        deadline: judgement.deadline,
        expect: { seq: state.seq, status: state.status, policy: policyOf(state), mutedUntil: judgement.mutedUntil },
      });
      units += billed(out);
      if (out.applied) return { kind: 'rearmed', units } satisfies Settled;
      current = out.current;
    } else if (judgement.kind === 'settle') {
      const out = await store.commit(settleCommit(state, shard, now, cutoff));
      units += billed(out);
      if (out.applied) return { kind: 'settled', after: out.after, units } satisfies Settled;
      current = out.current;
    } else if (judgement.kind === 'rearm') {
      // Alive (found by a read, or under another policy than the index entry's): re-arm by the stored policy.
      // Conditional on that policy and on being alive, so a concurrent change sends us round again.
      const out = await store.rearm(entry.deviceId, judgement.policy, cutoff);
      units += billed(out);
      if (out.applied) return { kind: 'rearmed', units } satisfies Settled;
      current = out.current;
    } else {
      const since = judgement.kind === 'orphan' ? state.since : offlineAt(presumedLastSeen(state), policyOf(state));
      const verdict = await parentVerdict(state, since, cutoff, deps.settings, deps.context);
      if (verdict.kind === 'wait') {
        const out = await store.park({
          deviceId: entry.deviceId,
          deadline: verdict.until,
          expect: { seq: state.seq, status: state.status, policy: policyOf(state) },
        });
        units += billed(out);
        if (out.applied) return { kind: 'rearmed', units } satisfies Settled;
        current = out.current;
        continue;
      }
      if (judgement.kind === 'orphan') {
        const out = await store.commit(orphanReport(state, now, cutoff));
        units += billed(out);
        if (out.applied) return { kind: 'settled', after: out.after, units } satisfies Settled;
        current = out.current;
        continue;
      }
      const damping = deps.settings.flapDamping?.[state.deviceType];
      const behind =
        verdict.kind === 'cause'
          ? {
              parentId: verdict.parentId,
              recheckAt: cutoff + (deps.settings.maintenanceRecheckMs ?? DEFAULT_RECHECK_MS),
            }
          : undefined;
      const out = await store.commit(offlineCommit(state, shard, now, cutoff, damping, behind));
      units += billed(out);
      if (out.applied) return { kind: 'offline', after: out.after, units } satisfies Settled;
      current = out.current;
    }
  }
  throw new Error(`device ${entry.deviceId}: state kept changing under ${MAX_ATTEMPTS} attempts`);
}

/** An offline event a maintenance window holds: the device is parked where the sweep looks at it again. */
async function heldByWindow(judgement: Judgement, state: DeviceState, context: OfflineContext): Promise<Judgement> {
  const offlineSince =
    judgement.kind === 'offline'
      ? offlineAt(presumedLastSeen(state), policyOf(state))
      : judgement.kind === 'orphan' || (judgement.kind === 'settle' && state.status === STATUS.offline)
        ? state.since
        : undefined;
  if (offlineSince === undefined) return judgement;
  const until = await context.held(state, offlineSince);
  return until === undefined ? judgement : { kind: 'park', deadline: until };
}

type ParentVerdict = { kind: 'none' } | { kind: 'cause'; parentId: string } | { kind: 'wait'; until: number };

/** Whether a device about to be reported offline since `since` is unreachable only because its parent (named by the
 * `parentTag` tag) is offline. One read of the parent per job, and only for a device with a parent.
 * - The parent is OFFLINE since a time within the grace of the device's silence (the device was not heard after the
 *   parent went silent): the cause. The device is reported with it and stays in the index, to be looked at again.
 * - The parent is ONLINE but may go offline within the grace (its item does not keep it alive past it; the batched
 *   engine's items are as of their last transition, so there it often cannot): the device waits until the grace is
 *   over, then the parent's item tells.
 * - Reported behind its parent already (`orphan`): the parent back online since P, the device is reported again,
 *   without the cause, once it has been silent for its own timeout after P; until then it waits.
 * A parent's own silence is judged by its own sweep job, which may run a little later in the same tick than the
 * child's: a parent that goes offline in the very last moment of the grace can miss its children (they are then
 * reported without the cause, which is the safe side). */
async function parentVerdict(
  state: DeviceState,
  since: number,
  cutoff: number,
  settings: SweepSettings,
  context: OfflineContext,
): Promise<ParentVerdict> {
  const parentId = state.parentOffline ?? (settings.parentTag && state.tags?.[settings.parentTag]);
  if (!parentId || parentId === state.deviceId) return { kind: 'none' };
  const parent = await context.parent(parentId);
  const graceMs = settings.parentGraceMs ?? DEFAULT_PARENT_GRACE_MS;
  const recheckAt = cutoff + (settings.maintenanceRecheckMs ?? DEFAULT_RECHECK_MS);
  if (state.parentOffline !== undefined) {
    if (parent?.status === STATUS.offline) return { kind: 'wait', until: recheckAt };
    if (parent?.status !== STATUS.online || parent.since <= since) return { kind: 'none' };
    const reportAt = parent.since + state.timeoutMs;
    return reportAt <= cutoff ? { kind: 'none' } : { kind: 'wait', until: Math.min(reportAt, recheckAt) };
  }
  if (parent?.status === STATUS.offline) {
    const related = parent.since <= since + graceMs && state.lastSeen <= parent.since + graceMs;
    return related ? { kind: 'cause', parentId } : { kind: 'none' };
  }
  if (parent?.status !== STATUS.online) return { kind: 'none' };
  const mayGoOfflineBy = offlineAt(presumedLastSeen(parent), policyOf(parent));
  const graceEnds = since + graceMs;
  return mayGoOfflineBy <= graceEnds && cutoff < graceEnds ? { kind: 'wait', until: graceEnds } : { kind: 'none' };
}

/** A device reported behind its parent, still silent a timeout after the parent came back: reported again, without
 * the cause, and out of the index. Its own seq, so its own event id; `since` stays when it went silent. */
function orphanReport(current: DeviceState, detectedAt: number, cutoff: number): CommitRequest {
  const state = { ...unchanged(current), status: STATUS.offline, since: current.since, seq: current.seq + 1 };
  return {
    deviceId: current.deviceId,
    expect: unchangedSince(current, cutoff),
    state,
    append: [transitionEvent('device.offline', { deviceId: current.deviceId, ...state }, detectedAt)],
    outboxShard: current.shard!,
    outboxAt: detectedAt,
  };
}

/** The offline transition of a device found expired at the cutoff. Everything comes from the stored item: the
 * device went offline at the deadline that expired, not when we noticed (counted from its skip horizon when that is
 * later than `lastSeen`; the event reports the stored `lastSeen`). Conditional on nothing having changed since the
 * item was read (same seq, still online, no newer `lastSeen` or skip horizon). */
export function offlineCommit(
  current: DeviceState,
  shard: string,
  detectedAt: number,
  cutoff?: number,
  damping?: FlapDamping,
  behind?: { parentId: string; recheckAt: number },
): CommitRequest {
  const since = offlineAt(presumedLastSeen(current), policyOf(current));
  const flap = recordTransition(current, since, damping);
  // The device leaves the deadline index (and enters the offline index) in the same write, unless it flaps: then it
  // stays, at the time it would settle; or unless it is reported behind its offline parent: then it stays until the
  // parent is back (a flapping device's events are held anyway: it carries no cause).
  const cause = behind && !flap.fields.flapping ? behind : undefined;
  const offline = { ...unchanged(current), status: STATUS.offline, since, seq: current.seq + 1, ...flap.fields };
  const state = cause
    ? { ...offline, parentOffline: cause.parentId, shard: current.shard ?? shard, deadline: cause.recheckAt }
    : located(offline, current.shard ?? shard);
  const events = transitionEvents({ deviceId: current.deviceId, ...state }, flap.starts, detectedAt);
  return {
    deviceId: current.deviceId,
    // A mute set since the item was read wins: the transition waits for its end.
    expect: unchangedSince(current, cutoff),
    state,
    append: cause ? events.map((e) => ({ ...e, cause: 'parent-offline', parentId: cause.parentId })) : events,
    outboxShard: current.shard ?? shard,
    outboxAt: detectedAt,
  };
}

/** A flapping device stable for its window: the flapping ends, and the state it settled in is published (as a
 * transition event to it, `settled: true`, `since` its last transition). Its own seq, so its own event id. */
export function settleCommit(current: DeviceState, shard: string, detectedAt: number, cutoff: number): CommitRequest {
  const { flapping: _flapping, ...flap } = flapFieldsOf(current);
  const state = located(
    { ...unchanged(current), status: current.status, since: current.since, seq: current.seq + 1, ...flap },
    current.shard ?? shard,
    current.skipHorizon,
  );
  const type = state.status === STATUS.online ? 'device.online' : 'device.offline';
  return {
    deviceId: current.deviceId,
    // The settled offline event is an offline event: a mute set since the item was read holds it.
    expect: unchangedSince(current, state.status === STATUS.offline ? cutoff : undefined),
    state,
    append: [{ ...transitionEvent(type, { deviceId: current.deviceId, ...state }, detectedAt), settled: true }],
    outboxShard: current.shard ?? shard,
    outboxAt: detectedAt,
  };
}

/** What a sweep commit keeps of the stored item. */
function unchanged(current: DeviceState) {
  return {
    deviceType: current.deviceType,
    timeoutMs: current.timeoutMs,
    precisionMs: current.precisionMs,
    lastSeen: current.lastSeen,
    ...(current.tags ? { tags: current.tags } : {}),
  };
}

/** The state with its deadline-index position (none when it has no deadline), counted from the stored skip horizon
 * too, which the commit leaves as it is. */
function located<S extends Parameters<typeof deadlineOf>[0]>(state: S, shard: string, skipHorizon?: number) {
  const deadline = deadlineOf({ ...state, skipHorizon });
  return deadline === undefined ? state : { ...state, shard, deadline };
}

/** Nothing changed since the item was read: same seq and status, no newer `lastSeen`, no skip horizon beyond what
 * the decision counted, same type and policy; with a cutoff, no mute set beyond it. */
function unchangedSince(current: DeviceState, notMutedAfter: number | undefined) {
  return {
    seq: current.seq,
    status: current.status,
    lastSeenAtMost: current.lastSeen,
    skipHorizonAtMost: presumedLastSeen(current),
    deviceType: current.deviceType,
    policy: policyOf(current),
    ...(notMutedAfter !== undefined ? { notMutedAfter } : {}),
  };
}

/** Write units of one conditional write. A failed condition is billed like a write of the item but the store
 * cannot report it; our items are under 1 KB, so it is one unit. */
function billed(outcome: Billed & { applied: boolean }): number {
  return outcome.units ?? (outcome.applied ? 0 : 1);
}

/** Re-publishes outbox entries that stayed longer than `republishAfterMs`: a committer crashed between commit and
 * publish or clear, or the publish failed. Events are deterministic, so a duplicate is harmless. Spilled events go
 * first (`get` reads the oldest spill items; the relay reads on while it publishes). Runs after the expiry sweep and
 * gets at least one page, so that neither starves the other. */
async function republish(
  shard: string,
  deps: SweepDeps,
  stats: SweepStats,
  hasTime: (t: number) => boolean,
): Promise<void> {
  const { settings, store } = deps;
  const before = deps.now() - settings.republishAfterMs;
  let pages = 0;
  for (const outboxShard of deps.outboxShards?.(shard) ?? [shard]) {
    let cursor: string | undefined;
    do {
      if (pages > 0 && !hasTime(deps.now())) return;
      const page = await store.queryOutbox(outboxShard, before, settings.pageSize, cursor);
      pages++;
      const states = await mapLimit(page.items, settings.concurrency, (deviceId) => store.get(deviceId));
      const pending = states.filter((state): state is DeviceState => state !== undefined && hasPendingEvents(state));
      if (pending.length > 0) {
        const relay = await relayOutboxes(pending, store, deps.publisher);
        stats.republished += relay.published;
        stats.published += relay.published;
        stats.publishFailures += relay.failed;
      }
      cursor = page.next;
    } while (cursor);
  }
}

function emptyStats(shard: string): SweepStats {
  return {
    shard,
    pages: 0,
    scanned: 0,
    offline: 0,
    flapStarted: 0,
    settled: 0,
    rearmed: 0,
    skipped: 0,
    continued: false,
    republished: 0,
    published: 0,
    publishFailures: 0,
    writeUnits: 0,
    latenessMs: [],
    errors: [],
  };
}
