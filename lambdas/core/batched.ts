// The batched engine (docs/design.md, "The batched engine"). The ingest writes no device item on the heartbeat path:
// it appends one sighting record per shard and batch to the shard's log. The sweep job of a shard keeps the shard's
// deadline index in memory (persisted as a checkpoint plus journals), merges the log into it, and then runs the very
// sweep of the per-device engine over it: an in-memory re-arm for a device still alive, and for every other decision
// the device item, read and written with the same conditional writes, outbox and events. A device the state cannot
// settle in memory (new, back from offline, a changed type or policy, an operator's note) takes the per-device
// engine's write path against its item. No AWS here: ports only.
import type { IngestConfig } from './config.js';
import { type DeviceState, presumedLastSeen } from './device.js';
import { DeviceCache } from './device-cache.js';
import { deadlineOf } from './flap.js';
import { absorb, type DeviceUpdate, emptyStats, type IngestStats, unregisteredDetail, writeUpdates } from './ingest.js';
import { offlineAt, type Policy, samePolicy } from './policy.js';
import type {
  AdminStore,
  CommitOutcome,
  DeviceStore,
  ExpiredEntry,
  Page,
  ParkRequest,
  RejectedRecord,
  RejectSink,
  ShardStateStore,
  Sighting,
  SightingLog,
  TouchOutcome,
} from './ports.js';
import { shardOf } from './shard.js';
import { type SweepDeps, type SweepJob, type SweepOptions, type SweepStats, sweepShard } from './sweep.js';
import { SHARD_TABLE, STATUS, type Status } from './table-schema.js';
import { sameTags } from './tags.js';
import { sweepCutoff, type WatermarkSnapshot } from './watermark.js';

/** The device item as the shard state keeps it: everything but the outbox. */
export type IndexedItem = Omit<DeviceState, 'outbox' | 'outboxSpills'>;

/** A device in the shard's deadline index: its item as last read or written, the newest sighting merged since, and
 * where it sits in the index (never later than its true deadline, as in the per-device engine). */
export interface IndexedEntry {
  item: IndexedItem;
  lastSeen: number;
  deadline: number;
}

/** A device that left the index (offline, decommissioned): enough to tell a late sighting from a return without
 * touching its item. */
export interface GoneEntry {
  gone: { seq: number; status: Status; lastSeen: number; since: number };
}

export type ShardEntry = IndexedEntry | GoneEntry;

/** Shard states one container keeps warm: at their largest (125,000 devices, ~55 MB each) four fit the sweep
 * function's 1,024 MB with room to work; a job for another shard loads its own (a cold load reads its checkpoint). */
const WARM_STATES = 4;

/** How long the state remembers a device that left the index (see `forgetGone`). */
const GONE_KEPT_MS = 3_600_000;

const isIndexed = (entry: ShardEntry | undefined): entry is IndexedEntry => entry !== undefined && 'item' in entry;

export interface BatchedSettings {
  /** Shards of the logs and states (and sweep jobs); the device items' index keys keep the indexes' own shards, so
   * that a storm's index writes spread over them (ingest config `shardCount`). */
  shardCount: number;
  /** How far back each read of the log reaches before the previous one: longer than an append can take to land
   * (the ingest's answer budget) and an operator's write (the API's timeout), plus clock skew. */
  lookbackMs: number;
  /** A checkpoint of the whole state at most this long after the last one; journals in between. */
  checkpointEveryMs: number;
  /** A device whose item's `lastSeen` is older than this is written once through its item (refreshing its expiry). */
  refreshAfterMs: number;
}

/** The shard's deadline index and what it learned since it was last saved. */
export class ShardState {
  /** Entries changed since the last save: the next journal. */
  readonly changed = new Map<string, ShardEntry | undefined>();
  /** The log is read from here (minus the lookback) next time. */
  readThrough: number;
  /** A job is using it: another job of the same process (a local runtime running jobs side by side) loads its own. */
  busy = false;
  private due?: { cutoff: number; list: IndexedEntry[] };
  /** Devices allow-list mode rejected: the newest sighting rejected, and when the log it came from was read. A
   * sighting read again (the look back reads some twice) is not rejected twice. In memory only, as long as a read
   * can reach it again: a state loaded cold may reject one again (a rejection is delivered at least once). */
  private readonly rejected = new Map<string, { through: number; readAt: number }>();

  constructor(
    readonly shard: string,
    public version: number,
    readonly entries: Map<string, ShardEntry>,
    /** Sightings stamped up to this are in the checkpoint. */
    public position: number,
    public journals: number,
  ) {
    this.readThrough = position;
  }

  /** Learns a device's item from a read or a write (undefined: it has none). */
  observe(deviceId: string, state: DeviceState | IndexedItem | undefined): void {
    const previous = this.entries.get(deviceId);
    let next: ShardEntry | undefined;
    if (state === undefined) next = undefined;
    else if (state.deadline === undefined) {
      next = { gone: { seq: state.seq, status: state.status, lastSeen: state.lastSeen, since: state.since } };
    } else {
      const { outbox: _outbox, outboxSpills: _spills, ...item } = state as DeviceState;
      const lastSeen = isIndexed(previous) ? Math.max(previous.lastSeen, item.lastSeen) : item.lastSeen;
      next = { item, lastSeen, deadline: Math.max(item.deadline!, followed(item, lastSeen)) };
    }
    this.set(deviceId, next);
  }

  set(deviceId: string, entry: ShardEntry | undefined): void {
    if (entry) this.entries.set(deviceId, entry);
    else this.entries.delete(deviceId);
    this.changed.set(deviceId, entry);
    this.due = undefined;
  }

  /** Merges a sighting in memory when the state can settle it: `stale` (nothing to do), `merged`, or `slow` (the
   * device's item must be written: new, back, a changed type or policy, or its item due for a refresh). */
  merge(sighting: Sighting, config: IngestConfig, settings: BatchedSettings): 'stale' | 'merged' | 'slow' {
    const entry = this.entries.get(sighting.deviceId);
    const t = sighting.lastSeen;
    if (!entry) return 'slow';
    if (!isIndexed(entry)) {
      const { gone } = entry;
      // As the item would answer: history up to what it last recorded (and, offline, up to when the silence began).
      return t <= gone.lastSeen || (gone.status === STATUS.offline && t <= gone.since) ? 'stale' : 'slow';
    }
    if (t <= entry.lastSeen) return 'stale';
    const { item } = entry;
    if (item.status !== STATUS.online || item.flapping) return 'slow';
    if (sighting.deviceType && sighting.deviceType !== item.deviceType) return 'slow';
    // Changed tags go to the item once; the same tags again cost nothing.
    if (sighting.tags && !sameTags(sighting.tags, item.tags)) return 'slow';
    const configured = config.deviceTypes.types[item.deviceType];
    if (!item.override && !(configured && samePolicy(item, configured))) return 'slow';
    // Silent long enough to have been declared offline: a job that did so may have crashed before saving, so only
    // the item can tell a return from a heartbeat.
    if (t >= offlineAt(presumedLastSeen({ ...item, lastSeen: entry.lastSeen }), item)) return 'slow';
    if (t - item.lastSeen >= settings.refreshAfterMs) return 'slow';
    entry.lastSeen = t;
    entry.deadline = Math.max(entry.deadline, followed(item, t));
    this.due = undefined;
    return 'merged';
  }

  /** Whether allow-list mode rejected this sighting already (an operator's note since changes nothing: a registration
   * takes only messages after it). */
  rejectedAlready(sighting: Sighting): boolean {
    return sighting.lastSeen <= (this.rejected.get(sighting.deviceId)?.through ?? Number.NEGATIVE_INFINITY);
  }

  /** Remembers that allow-list mode rejected the device's sightings up to `through`, read from the log at `readAt`. */
  rejectedThrough(deviceId: string, through: number, readAt: number): void {
    const previous = this.rejected.get(deviceId)?.through ?? Number.NEGATIVE_INFINITY;
    this.rejected.set(deviceId, { through: Math.max(previous, through), readAt });
  }

  /** Forgets the rejections of log reads before `before`, which no read reaches again. */
  forgetRejected(before: number): void {
    for (const [deviceId, { readAt }] of this.rejected) if (readAt < before) this.rejected.delete(deviceId);
  }

  /** Drops the devices that left the index before `before`: a sighting of theirs that late is rare (a redrive, a
   * long redelivery), and their item still tells it from a return, at the cost of a write. Keeps the state to the
   * devices of the index, however many come and go. */
  forgetGone(before: number): void {
    for (const [deviceId, entry] of this.entries) {
      if (!isIndexed(entry) && Math.max(entry.gone.lastSeen, entry.gone.since) < before) this.entries.delete(deviceId);
    }
  }

  /** The entries due by `cutoff`, by deadline then id, a page after `cursor`. */
  expired(cutoff: number, limit: number, cursor?: string): Page<ExpiredEntry> {
    if (this.due?.cutoff !== cutoff) {
      const list = [...this.entries.values()].filter(
        (entry): entry is IndexedEntry => isIndexed(entry) && entry.deadline <= cutoff,
      );
      list.sort((a, b) => a.deadline - b.deadline || compare(a.item.deviceId, b.item.deviceId));
      this.due = { cutoff, list };
    }
    const { list } = this.due;
    let start = 0;
    if (cursor !== undefined) {
      const [deadline, deviceId] = parseCursor(cursor);
      start = list.findIndex((e) => e.deadline > deadline || (e.deadline === deadline && e.item.deviceId > deviceId));
      if (start === -1) start = list.length;
    }
    const page = list.slice(start, start + limit);
    const last = page.at(-1);
    return {
      items: page.map(({ item, deadline }) => ({
        deviceId: item.deviceId,
        deadline,
        timeoutMs: item.timeoutMs,
        precisionMs: item.precisionMs,
        flapping: item.flapping !== undefined,
      })),
      ...(last && start + limit < list.length ? { next: `${last.deadline}:${last.item.deviceId}` } : {}),
    };
  }
}

/** Where an indexed device sits given its newest sighting: an online, non-flapping one at its true deadline. */
function followed(item: IndexedItem, lastSeen: number): number {
  if (item.status !== STATUS.online || item.flapping) return item.deadline!;
  return deadlineOf({ ...item, lastSeen }) ?? item.deadline!;
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function parseCursor(cursor: string): [number, string] {
  const at = cursor.indexOf(':');
  return [Number(cursor.slice(0, at)), cursor.slice(at + 1)];
}

/** The per-device engine's store, seen through the shard state: the index is the state, a re-arm or park of a
 * device is in memory, and every read or write of an item teaches the state what the item now holds. */
export class ShardStore implements DeviceStore {
  constructor(
    private readonly table: DeviceStore,
    readonly state: ShardState,
    /** Whether a device is this shard's: the re-publish also reads other shards' devices (their outboxes share
     * index shards with this one's), which the state must not take in. */
    private readonly owns: (deviceId: string) => boolean,
  ) {}

  private observe(deviceId: string, state: DeviceState | undefined): void {
    if (this.owns(deviceId)) this.state.observe(deviceId, state);
  }

  async touch(request: Parameters<DeviceStore['touch']>[0]): Promise<TouchOutcome> {
    const out = await this.table.touch(request);
    if (out.applied) {
      const deadline = request.moveDeadline?.deadline ?? out.before.deadline;
      // The item as written: tags the touch replaced included, or the next sighting would find them changed again.
      this.observe(request.deviceId, {
        ...out.before,
        lastSeen: request.lastSeen,
        deadline,
        ...(request.tags ? { tags: request.tags } : {}),
      });
    } else this.observe(request.deviceId, out.current);
    return out;
  }

  async commit(request: Parameters<DeviceStore['commit']>[0]): Promise<CommitOutcome> {
    const out = await this.table.commit(request);
    this.observe(request.deviceId, out.applied ? out.after : out.current);
    return this.merged(out);
  }

  async rearm(deviceId: string, policy: Policy, cutoff: number): Promise<TouchOutcome> {
    const entry = this.state.entries.get(deviceId);
    if (isIndexed(entry)) {
      const { item } = entry;
      const window = policy.timeoutMs + policy.precisionMs;
      const seen = presumedLastSeen({ ...item, lastSeen: entry.lastSeen });
      if (item.status === STATUS.online && !item.flapping && samePolicy(item, policy) && seen > cutoff - window) {
        const before = this.view(entry);
        this.state.set(deviceId, { ...entry, deadline: offlineAt(seen, policy) });
        return { applied: true, before };
      }
    }
    return { applied: false, current: await this.get(deviceId) };
  }

  async park(request: ParkRequest): Promise<TouchOutcome> {
    const entry = this.state.entries.get(request.deviceId);
    const { expect } = request;
    if (
      isIndexed(entry) &&
      entry.item.seq === expect.seq &&
      entry.item.status === expect.status &&
      samePolicy(entry.item, expect.policy) &&
      (expect.mutedUntil === undefined || entry.item.mutedUntil === expect.mutedUntil)
    ) {
      const before = this.view(entry);
      this.state.set(request.deviceId, { ...entry, deadline: request.deadline });
      return { applied: true, before };
    }
    return { applied: false, current: await this.get(request.deviceId) };
  }

  async get(deviceId: string): Promise<DeviceState | undefined> {
    const item = await this.table.get(deviceId);
    this.observe(deviceId, item);
    return this.withSighting(item);
  }

  clearOutbox(...args: Parameters<DeviceStore['clearOutbox']>): Promise<boolean> {
    return this.table.clearOutbox(...args);
  }

  async queryExpired(_shard: string, cutoff: number, limit: number, cursor?: string): Promise<Page<ExpiredEntry>> {
    return this.state.expired(cutoff, limit, cursor);
  }

  queryOutbox(...args: Parameters<DeviceStore['queryOutbox']>): ReturnType<DeviceStore['queryOutbox']> {
    return this.table.queryOutbox(...args);
  }

  /** The item with the newest sighting merged: what every decision of the sweep is taken from. */
  private withSighting(item: DeviceState | undefined): DeviceState | undefined {
    const entry = item && this.state.entries.get(item.deviceId);
    return item && isIndexed(entry) && entry.item.seq === item.seq ? { ...item, lastSeen: entry.lastSeen } : item;
  }

  private merged(out: CommitOutcome): CommitOutcome {
    return out.applied ? out : { ...out, current: this.withSighting(out.current) };
  }

  private view(entry: IndexedEntry): DeviceState {
    return { ...entry.item, lastSeen: entry.lastSeen, outbox: [] };
  }
}

/** Where the batched sweep keeps warm states between jobs of one container (a cache: a job checks its version). */
export type StateCache = Map<string, ShardState>;

export interface BatchedSweepDeps extends Omit<SweepDeps, 'store'> {
  /** The device items (the per-device engine's store). */
  table: DeviceStore;
  log: SightingLog;
  states: ShardStateStore<ShardEntry>;
  /** What the slow path needs to write an item as the ingest would. */
  ingest: IngestConfig;
  batched: BatchedSettings;
  cache?: StateCache;
  /** Wraps the store the sweep sees (an observer's, in the local runtime). */
  observe?: (store: DeviceStore) => DeviceStore;
  /** Where allow-list mode's rejections go (`ingest.allowList`): the slow path is where a device that is not
   * registered shows. @default none: every rejection is reported undelivered */
  rejects?: RejectSink;
}

export interface BatchedSweepStats extends SweepStats {
  /** Sightings read from the log, and how they were settled. */
  sightings: number;
  merged: number;
  slow: number;
  notes: number;
  /** The state came from the container's cache (no load). */
  warm: boolean;
  saved: 'none' | 'journal' | 'checkpoint' | 'conflict';
  /** The slow path's write stats, and its rejections (allow-list mode) in `rejected`/`rejectedTotal`. */
  merge: IngestStats;
  /** Rejections the rejects destination refused: the handler logs and counts them (RejectsNotDelivered). */
  undeliveredRejections: RejectedRecord[];
}

/** Runs one sweep job of the batched engine: load the shard state, merge the log into it, sweep it, save it. */
export async function sweepBatchedShard(
  job: SweepJob,
  deps: BatchedSweepDeps,
  options: SweepOptions = {},
): Promise<BatchedSweepStats> {
  // The cutoff first: every sighting its watermarks vouch for (and every held record due back by now) was appended
  // before this, so the log read after it holds them all.
  const snapshot = await deps.watermarks.read();
  const cutoff = job.cutoff ?? sweepCutoff(deps.now(), snapshot, deps.settings.toleranceMs);
  const { state, warm } = await loadState(job.shard, deps);
  try {
    return { ...(await sweepState(state, job, cutoff, snapshot, deps, options)), warm };
  } finally {
    state.busy = false;
  }
}

async function sweepState(
  state: ShardState,
  job: SweepJob,
  cutoff: number | undefined,
  snapshot: WatermarkSnapshot,
  deps: BatchedSweepDeps,
  options: SweepOptions,
): Promise<Omit<BatchedSweepStats, 'warm'>> {
  const shardCount = deps.batched.shardCount;
  const store = new ShardStore(deps.table, state, (deviceId) => shardOf(deviceId, shardCount) === state.shard);
  const readAt = deps.now();
  const readFrom = state.readThrough - deps.batched.lookbackMs;
  const read = await deps.log.read(job.shard, readFrom);
  // A rejection recorded by a read a look back before this one's start covers sightings no read reaches again.
  state.forgetRejected(readFrom - deps.batched.lookbackMs);

  // An operator changed these devices: read their items again, and settle their sightings through them.
  const noted = new Set(read.notes);
  for (const deviceId of noted) await store.get(deviceId);
  const slow = new Map<string, DeviceUpdate>();
  let merged = 0;
  for (const sighting of read.sightings) {
    const outcome = state.rejectedAlready(sighting)
      ? 'stale'
      : noted.has(sighting.deviceId)
        ? 'slow'
        : state.merge(sighting, deps.ingest, deps.batched);
    if (outcome === 'merged') merged++;
    if (outcome !== 'slow') continue;
    const update = slow.get(sighting.deviceId);
    if (!update) slow.set(sighting.deviceId, { ...sighting, recordIds: [sighting.deviceId] });
    else absorb(update, sighting);
  }
  // Through the items, within the job's budget: a mass reconnect is paced by the sweeps (each job writes at most
  // the ingest's write concurrency at once), and what is left is read again by the next job.
  const merge = emptyStats(read.sightings.length);
  const updates = [...slow.values()];
  const errors: unknown[] = [];
  const unregistered: DeviceUpdate[] = [];
  const chunk = Math.max(1, deps.ingest.writeConcurrency * 4);
  const startedAt = deps.now();
  let done = 0;
  for (; done < updates.length; done += chunk) {
    if (done > 0 && !withinBudget(startedAt, deps, options)) break;
    const written = await writeUpdates(
      updates.slice(done, done + chunk),
      { config: deps.ingest, store, publisher: deps.publisher, cache: new DeviceCache(0), now: deps.now },
      merge,
    );
    errors.push(...written.errors);
    unregistered.push(...written.unregistered);
  }
  const undeliveredRejections = await rejectSightings(unregistered, state, readAt, deps, merge);
  // A device whose item could not be written (or was not reached) is read again next time: the log is read from
  // here only once all are.
  if (errors.length === 0 && done >= updates.length) state.readThrough = readAt;

  const swept = await sweepShard(
    cutoff === undefined ? job : { ...job, cutoff },
    {
      ...deps,
      store: deps.observe?.(store) ?? store,
      watermarks: { read: async () => snapshot },
      outboxShards: (shard) => outboxShardsOf(Number(shard), deps.batched.shardCount, deps.ingest.shardCount),
    },
    options,
  );
  const saved = await saveState(state, readAt, deps);
  return {
    ...swept,
    writeUnits: swept.writeUnits + merge.writeUnits,
    published: swept.published + merge.published,
    publishFailures: swept.publishFailures + merge.publishFailures,
    errors: [...errors, ...swept.errors],
    sightings: read.sightings.length,
    merged,
    slow: slow.size,
    notes: noted.size,
    saved,
    merge,
    undeliveredRejections,
  };
}

/** Allow-list mode: the sightings of devices that are not registered go to the rejects destination, one per device
 * and job, as a small JSON excerpt (the log keeps no payload). Like a Kinesis ingest's, a rejection that cannot be
 * delivered is handed back for the handler to log and count: failing the job for it would keep the log's read
 * position back, and every job would read more of the log. Returns the undelivered ones. */
async function rejectSightings(
  updates: readonly DeviceUpdate[],
  state: ShardState,
  readAt: number,
  deps: BatchedSweepDeps,
  stats: IngestStats,
): Promise<RejectedRecord[]> {
  if (updates.length === 0) return [];
  const rejections = updates.map(
    ({ deviceId, lastSeen, deviceType }): RejectedRecord => ({
      kind: 'reject',
      reason: 'UNREGISTERED',
      detail: unregisteredDetail(deviceId),
      body: JSON.stringify({ deviceId, lastSeen, ...(deviceType ? { deviceType } : {}) }),
      encoding: 'utf8',
      source: SHARD_TABLE.logKey(state.shard),
      recordId: deviceId,
    }),
  );
  for (const { deviceId, lastSeen } of updates) state.rejectedThrough(deviceId, lastSeen, readAt);
  stats.rejected.UNREGISTERED = (stats.rejected.UNREGISTERED ?? 0) + rejections.length;
  stats.rejectedTotal += rejections.length;
  return deps.rejects ? (await deps.rejects.send(rejections)).failed : rejections;
}

/** Half the sweep budget for the slow path, and never into the runtime's last seconds. */
function withinBudget(startedAt: number, deps: BatchedSweepDeps, options: SweepOptions): boolean {
  const remaining = options.remainingMs?.();
  return deps.now() - startedAt < deps.settings.budgetMs / 2 && (remaining === undefined || remaining > 10_000);
}

async function loadState(shard: string, deps: BatchedSweepDeps): Promise<{ state: ShardState; warm: boolean }> {
  const version = await deps.states.version(shard);
  const cached = deps.cache?.get(shard);
  if (cached && cached.version === version && !cached.busy) {
    cached.busy = true;
    return { state: cached, warm: true };
  }
  const stored = await deps.states.load(shard);
  const state = stored
    ? new ShardState(shard, stored.version, stored.entries, stored.position, stored.journals)
    : new ShardState(shard, 0, new Map(), Number.NEGATIVE_INFINITY, 0);
  state.busy = true;
  if (deps.cache && !cached?.busy) {
    deps.cache.delete(shard);
    deps.cache.set(shard, state);
    // The least recently loaded first (a Map keeps insertion order): a container keeps a few states warm, not
    // every shard it ever swept.
    for (const [key, old] of deps.cache) {
      if (deps.cache.size <= WARM_STATES) break;
      if (!old.busy) deps.cache.delete(key);
    }
  }
  return { state, warm: false };
}

/** Saves what the job learned: a journal of the changed entries, or a checkpoint when the last one is old. When
 * another job of the shard saved first, its state is loaded and this job's changes applied over it where they are
 * newer (by the item's seq), until one save wins. */
async function saveState(
  state: ShardState,
  readAt: number,
  deps: BatchedSweepDeps,
): Promise<BatchedSweepStats['saved']> {
  const settings = deps.batched;
  const through = state.readThrough - settings.lookbackMs;
  const checkpoint = through - state.position >= settings.checkpointEveryMs;
  if (!checkpoint && state.changed.size === 0) return 'none';
  if (checkpoint) state.forgetGone(through - GONE_KEPT_MS);
  const change = checkpoint ? { checkpoint: state.entries, position: through } : { journal: new Map(state.changed) };
  if (await deps.states.save(state.shard, state.version, change)) {
    state.version++;
    state.changed.clear();
    if (checkpoint) {
      state.position = through;
      state.journals = 0;
    } else state.journals++;
    return checkpoint ? 'checkpoint' : 'journal';
  }
  deps.cache?.delete(state.shard);
  for (let attempt = 0; attempt < 3; attempt++) {
    const stored = await deps.states.load(state.shard);
    if (!stored) break;
    const journal = new Map<string, ShardEntry | undefined>();
    for (const [deviceId, mine] of state.changed) {
      if (newer(mine, stored.entries.get(deviceId))) journal.set(deviceId, mine);
    }
    if (journal.size === 0 || (await deps.states.save(state.shard, stored.version, { journal }))) return 'conflict';
  }
  throw new Error(`shard ${state.shard}: the state kept changing under the save (${readAt})`);
}

/** The index shards whose outboxes a batched shard's job re-publishes: every index shard exactly one job's. */
export function outboxShardsOf(shard: number, shardCount: number, indexShards: number): string[] {
  const shards: string[] = [];
  for (let i = shard; i < indexShards; i += shardCount) shards.push(String(i));
  return shards;
}

/** Whether `mine` is a later observation of the device than `theirs`: by seq, and at one seq, a decommission
 * (which keeps the seq) after the life it ended. */
function newer(mine: ShardEntry | undefined, theirs: ShardEntry | undefined): boolean {
  const rank = (entry: ShardEntry | undefined) => {
    if (!entry) return [-1, 0];
    if (isIndexed(entry)) return [entry.item.seq, entry.item.status === STATUS.retired ? 1 : 0];
    return [entry.gone.seq, entry.gone.status === STATUS.retired ? 1 : 0];
  };
  const [a, b] = [rank(mine), rank(theirs)];
  return a[0]! > b[0]! || (a[0] === b[0] && a[1]! >= b[1]!);
}

/** The operator API's store on the batched engine: every change to a device also leaves a note in its shard's log,
 * before (should the write land while the note is still read) and after (should it land late), so that the sweep
 * reads the item again instead of trusting what its state holds. */
export function notingAdminStore(admin: AdminStore, log: Pick<SightingLog, 'append'>, shardCount: number): AdminStore {
  const noted = async <T>(deviceId: string, change: () => Promise<T>): Promise<T> => {
    const note = () => log.append(shardOf(deviceId, shardCount), { notes: [deviceId] });
    await note();
    const result = await change();
    await note();
    return result;
  };
  return {
    get: (deviceId) => admin.get(deviceId),
    update: (request) => noted(request.deviceId, () => admin.update(request)),
    retire: (request) => noted(request.deviceId, () => admin.retire(request)),
    register: (request) => noted(request.deviceId, () => admin.register(request)),
    queryOffline: (...args) => admin.queryOffline(...args),
    counts: (...args) => admin.counts(...args),
  };
}
