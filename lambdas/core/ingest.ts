// The ingest use case: a batch of raw records in, device state written, transitions committed and published,
// rejects sent away, and the exact set of records that must be retried out. No AWS here: ports only.
import { mapLimit, mapSettled } from './concurrency.js';
import type { IngestConfig } from './config.js';
import { type DeviceState, keptForMuteUntil, policyOf } from './device.js';
import type { DeviceCache } from './device-cache.js';
import { deadlineOf, flapFieldsOf, recordTransition, startedFlapping, transitionEvents } from './flap.js';
import { type Parsed, parsePayload, type RejectReason } from './message.js';
import { relayOutboxes } from './outbox.js';
import { offlineAt, type Policy, samePolicy, typePolicies } from './policy.js';
import type {
  CommitRequest,
  DeviceStore,
  EventPublisher,
  RejectedRecord,
  RejectSink,
  SightingLog,
  TouchRequest,
} from './ports.js';
import { type EntryClaim, mayBeProbe, type ProbeKeyStore, readEntry, readProbe } from './probe.js';
import { shardOf } from './shard.js';
import { STATUS } from './table-schema.js';
import { sameTags, type Tags } from './tags.js';
import { seenAt } from './time-basis.js';

/** One source record: an SQS message or a Kinesis record. */
export interface IngestRecord {
  /** What the partial batch response names: the SQS messageId or the Kinesis sequence number. */
  id: string;
  body: string | Uint8Array;
  /** When the record entered the pipeline (epoch ms). */
  enteredAt: number;
  /** The partition it came from (queue ARN, stream shard): the watermark a probe in it raises. */
  partition: string;
  /** The queue or stream it was read from, which a probe's signature names. @default partition */
  source?: string;
  /** A redriven record's original entry time (probe.ts `readEntry`): used for `enteredAt` when it verifies. */
  claimedEntry?: EntryClaim;
  /** SQS: how to hand a failed record back sooner (progress.ts), and how often it was received. */
  receiptHandle?: string;
  receiveCount?: number;
}

export interface IngestDeps {
  config: IngestConfig;
  store: DeviceStore;
  publisher: EventPublisher;
  rejects: RejectSink;
  cache: DeviceCache;
  /** Wall clock, used only to stamp events and outbox entries, never to judge a device. */
  now: () => number;
  /** The key that tells the dispatcher's probes from everything else; without it no record is a probe. */
  probeKey?: Pick<ProbeKeyStore, 'get'>;
  /** The batched engine: the batch's sightings go to the shards' logs instead of the device items (batched.ts). */
  sightings?: { log: Pick<SightingLog, 'append'>; shardCount: number };
}

/** What writing device updates needs. */
export type WriteDeps = Pick<IngestDeps, 'config' | 'store' | 'publisher' | 'cache' | 'now'>;

/** A probe that may raise its partition's watermark: every record before it (or, in an unordered source, every
 * record of the batch) was committed. */
export interface CreditableProbe {
  probeAt: number;
  partition: string;
  recordId: string;
}

export interface IngestStats {
  records: number;
  messages: number;
  rejected: Partial<Record<RejectReason, number>>;
  rejectedTotal: number;
  /** Device updates after coalescing the batch by device. */
  updates: number;
  written: number;
  /** Skipped because the stored state already keeps the device online long enough (precision > 0). */
  coalesced: number;
  stale: number;
  failedWrites: number;
  onlineTransitions: number;
  /** Online transitions that started a device's flapping (published device.flapping instead). */
  flapStarted: number;
  newDevices: number;
  deadlineMoves: number;
  writeUnits: number;
  published: number;
  publishFailures: number;
  probes: number;
}

export interface IngestResult {
  /** Ids of the records that must be retried; every other record is committed or in the rejects destination. */
  failedRecordIds: Set<string>;
  probes: CreditableProbe[];
  stats: IngestStats;
  /** Ordered sources only: rejections the rejects destination refused, for the handler to log (see below). */
  undeliveredRejections?: RejectedRecord[];
}

export interface DeviceUpdate {
  deviceId: string;
  lastSeen: number;
  deviceType?: string;
  /** The tags of the newest message that carried any. */
  tags?: Tags;
  recordIds: string[];
}

type UpdateOutcome =
  | { kind: 'written' | 'coalesced' | 'stale' | 'unregistered'; units: number; deadlineMoved?: boolean }
  | { kind: 'transition'; after: DeviceState; units: number; isNew: boolean }
  | { kind: 'failed'; error: unknown; units: number };

const MAX_ATTEMPTS = 5;
/** Shards one batch appends to at once. */
const APPEND_CONCURRENCY = 16;

export async function ingestBatch(
  records: readonly IngestRecord[],
  deps: IngestDeps,
  options: { ordered: boolean },
): Promise<IngestResult> {
  const { config } = deps;
  const knownDeviceTypes = new Set(Object.keys(config.deviceTypes.types));
  const stats = emptyStats(records.length);
  const failed = new Set<string>();
  const updates = new Map<string, DeviceUpdate>();
  const rejections: RejectedRecord[] = [];
  const probes: Array<CreditableProbe & { index: number }> = [];

  // The key is read only when a record has a probe's shape or claims an entry time, so a batch of device messages
  // costs no lookup.
  const needsKey = records.some((r) => r.claimedEntry !== undefined || mayBeProbe(r.body));
  const probeKey = deps.probeKey && needsKey ? await deps.probeKey.get() : undefined;

  records.forEach((record, index) => {
    const source = record.source ?? record.partition;
    const probeAt = probeKey && readProbe(record.body, source, probeKey);
    if (probeAt !== undefined) {
      // Credit the partition the probe was read from: a shard split can race the dispatcher and land it in a child.
      // In a shard, order proves only what arrived before the probe did: never credit past its own arrival. (An SQS
      // probe is stamped with when it turns visible, after its delay; the backlog rule covers it.)
      const credit = options.ordered ? Math.min(probeAt, record.enteredAt) : probeAt;
      probes.push({ probeAt: credit, partition: record.partition, recordId: record.id, index });
      return;
    }
    const parsed: Parsed[] = parsePayload(record.body, {
      fieldMap: config.fieldMap,
      maxPayloadBytes: config.maxPayloadBytes,
      maxArrayElements: config.maxArrayElements,
      knownDeviceTypes,
      enteredAt: record.enteredAt,
      maxFutureMs: config.maxFutureMs,
    });
    for (const item of parsed) {
      if (item.kind === 'reject') {
        rejections.push({ ...item, source: record.partition, recordId: record.id });
      } else {
        stats.messages++;
        // A redrive keeps the time the message first entered; an unverified claim is ignored, never trusted.
        const claimed =
          record.claimedEntry && probeKey && readEntry(record.claimedEntry, { ...record, source }, probeKey);
        const lastSeen = seenAt(claimed || record.enteredAt, item.deviceTs, config.deviceTsSkewMs);
        const update = updates.get(item.deviceId);
        if (!update) {
          updates.set(item.deviceId, {
            deviceId: item.deviceId,
            lastSeen,
            deviceType: item.deviceType,
            ...(item.tags ? { tags: item.tags } : {}),
            recordIds: [record.id],
          });
        } else {
          update.recordIds.push(record.id);
          absorb(update, { ...item, lastSeen });
        }
      }
    }
  });
  stats.probes = probes.length;
  stats.updates = updates.size;

  const [rejectResult, written] = await Promise.all([
    rejections.length > 0 ? deps.rejects.send(rejections) : { failed: [] },
    deps.sightings
      ? appendSightings([...updates.values()], deps.sightings.log, deps.sightings.shardCount, stats)
      : writeUpdates([...updates.values()], deps, stats),
  ]);
  for (const id of written.failedRecordIds) failed.add(id);
  // Allow-list mode: that a device is not registered shows only once its item was tried. Rejected like any other
  // record (not retried: it is no failure), with its own body, so that an operator sees what was sent.
  const unregistered = rejectUnregistered(written.unregistered, records);
  const refused = [...rejectResult.failed];
  if (unregistered.length > 0) {
    rejections.push(...unregistered);
    refused.push(...(await deps.rejects.send(unregistered)).failed);
  }

  for (const rejection of rejections) {
    stats.rejected[rejection.reason] = (stats.rejected[rejection.reason] ?? 0) + 1;
  }
  stats.rejectedTotal = rejections.length;
  // A rejection that could not be delivered: from SQS its record is retried (and at worst dead-lettered, kept).
  // A Kinesis shard retried for it would stop, and with it the watermark of every device behind it: the record goes
  // on, and the rejection is logged, excerpt included, and counted (RejectsNotDelivered) instead.
  const undeliveredRejections = options.ordered ? refused : [];
  if (!options.ordered) for (const rejection of refused) failed.add(rejection.recordId);

  const firstFailure = options.ordered
    ? records.findIndex((record) => failed.has(record.id))
    : failed.size > 0
      ? -2
      : -1;
  const creditable = probes
    .filter((probe) => firstFailure === -1 || (firstFailure >= 0 && probe.index < firstFailure))
    .map(({ index: _index, ...probe }) => probe);
  return {
    failedRecordIds: failed,
    probes: creditable,
    stats,
    ...(undeliveredRejections.length > 0 ? { undeliveredRejections } : {}),
  };
}

/** Why a message of a device that is not registered is rejected in allow-list mode (both engines). */
export function unregisteredDetail(deviceId: string): string {
  return `device "${deviceId}" is not registered (allow-list mode): PUT /devices/{id} registers it`;
}

/** One UNREGISTERED rejection per record of each such device, with the record's body (an array's whole body: the
 * rejects queue keeps an excerpt of it). */
function rejectUnregistered(updates: readonly DeviceUpdate[], records: readonly IngestRecord[]): RejectedRecord[] {
  if (updates.length === 0) return [];
  const byId = new Map(records.map((record) => [record.id, record]));
  return updates.flatMap((update) =>
    [...new Set(update.recordIds)].map((id): RejectedRecord => {
      const record = byId.get(id)!;
      return {
        kind: 'reject',
        reason: 'UNREGISTERED',
        detail: unregisteredDetail(update.deviceId),
        // It parsed, so it is text.
        body: typeof record.body === 'string' ? record.body : Buffer.from(record.body).toString('utf8'),
        encoding: 'utf8',
        source: record.partition,
        recordId: record.id,
      };
    }),
  );
}

/** Folds a newer (or as new) message of the same device into its update: the newest time, type and tags win. */
export function absorb(update: DeviceUpdate, message: Pick<DeviceUpdate, 'lastSeen' | 'deviceType' | 'tags'>): void {
  if (message.lastSeen < update.lastSeen) return;
  update.lastSeen = message.lastSeen;
  update.deviceType = message.deviceType ?? update.deviceType;
  if (message.tags) update.tags = message.tags;
}

/** The per-device engine's write path: each device's update written to its item (the happy-path touch, or a
 * transition), then the transitions published through their outboxes. Also the batched engine's sweep, for the few
 * devices its shard state cannot settle in memory (batched.ts). In allow-list mode the updates of devices that are
 * not registered are written nowhere and returned (`unregistered`), for the caller to reject. */
export async function writeUpdates(
  updates: readonly DeviceUpdate[],
  deps: WriteDeps,
  stats: IngestStats,
): Promise<{ failedRecordIds: Set<string>; errors: unknown[]; unregistered: DeviceUpdate[] }> {
  const { config } = deps;
  const failed = new Set<string>();
  const errors: unknown[] = [];
  const unregistered: DeviceUpdate[] = [];
  const outcomes = await mapLimit(updates, config.writeConcurrency, (update) => applyUpdate(update, deps));
  const transitions: DeviceState[] = [];
  updates.forEach((update, i) => {
    const outcome = outcomes[i]!;
    stats.writeUnits += outcome.units;
    switch (outcome.kind) {
      case 'written':
        stats.written++;
        if (outcome.deadlineMoved) stats.deadlineMoves++;
        break;
      case 'coalesced':
        stats.coalesced++;
        break;
      case 'stale':
        stats.stale++;
        break;
      case 'unregistered':
        unregistered.push(update);
        break;
      case 'transition':
        stats.written++;
        if (outcome.isNew) stats.newDevices++;
        // Published or held by flap damping; an unannounced registration is not one.
        if (!outcome.isNew || config.announceNewDevices) stats.onlineTransitions++;
        if (startedFlapping(outcome.after)) stats.flapStarted++;
        transitions.push(outcome.after);
        break;
      case 'failed':
        stats.failedWrites++;
        errors.push(outcome.error);
        for (const id of update.recordIds) failed.add(id);
        break;
    }
  });
  if (transitions.length > 0) {
    const relay = await relayOutboxes(transitions, deps.store, deps.publisher, {
      handover: { now: deps.now(), liveForMs: config.outboxRepublishAfterMs },
    });
    stats.published += relay.published;
    stats.publishFailures += relay.failed;
  }
  return { failedRecordIds: failed, errors, unregistered };
}

/** The batched engine's write path: one sighting record per shard for the whole batch, no device item written. A
 * shard whose record could not be appended fails every record that named one of its devices. */
async function appendSightings(
  updates: readonly DeviceUpdate[],
  log: Pick<SightingLog, 'append'>,
  shardCount: number,
  stats: IngestStats,
): Promise<{ failedRecordIds: Set<string>; unregistered: DeviceUpdate[] }> {
  const byShard = new Map<string, DeviceUpdate[]>();
  for (const update of updates) {
    const shard = shardOf(update.deviceId, shardCount);
    const batch = byShard.get(shard);
    if (batch) batch.push(update);
    else byShard.set(shard, [update]);
  }
  const batches = [...byShard];
  const failed = new Set<string>();
  const appended = await mapSettled(batches, APPEND_CONCURRENCY, ([shard, batch]) =>
    log.append(shard, {
      sightings: batch.map(({ deviceId, lastSeen, deviceType, tags }) => ({
        deviceId,
        lastSeen,
        ...(deviceType ? { deviceType } : {}),
        ...(tags ? { tags } : {}),
      })),
    }),
  );
  appended.forEach((result, i) => {
    const [, batch] = batches[i]!;
    if (result.status === 'fulfilled') {
      stats.written += batch.length;
      stats.writeUnits += result.value.units ?? 0;
    } else {
      stats.failedWrites += batch.length;
      for (const update of batch) for (const id of update.recordIds) failed.add(id);
    }
  });
  // No item is read here: the sweep tells a device that is not registered, and rejects it (batched.ts).
  return { failedRecordIds: failed, unregistered: [] };
}

async function applyUpdate(update: DeviceUpdate, deps: WriteDeps): Promise<UpdateOutcome> {
  const { config, cache } = deps;
  const cached = cache.get(update.deviceId);
  const knownType = update.deviceType ?? cached?.deviceType;
  const typePolicy = policyFor(config, knownType);
  let units = 0;
  try {
    if (cached?.online && update.lastSeen <= cached.lastSeen) {
      cached.lastMessageAt = Math.max(cached.lastMessageAt, update.lastSeen);
      return { kind: 'stale', units };
    }
    if (cached && canSkipWrite(cached, update, typePolicy)) {
      cached.lastMessageAt = Math.max(cached.lastMessageAt, update.lastSeen);
      return { kind: 'coalesced', units };
    }

    const request: TouchRequest = {
      deviceId: update.deviceId,
      lastSeen: update.lastSeen,
      // Never short of what a mute known here needs (see `keptWhileMuted` in admin.ts).
      expiresAt: Math.max(update.lastSeen + config.housekeepingTtlMs, cached?.keepUntil ?? 0),
      typePolicy,
      // Nobody here knows the stored type: the stored policy must be the one configured for whichever type is stored
      // (not the default type's, which would send every such message of another type down the slow path).
      ...(knownType === undefined ? { typePolicies: typePolicies(config.deviceTypes) } : {}),
      ...(update.deviceType ? { deviceType: update.deviceType } : {}),
      // Written only when they may differ from the stored ones: the same write, so no extra unit.
      ...(update.tags && !sameTags(update.tags, cached?.tags) ? { tags: update.tags } : {}),
    };
    const moveTo = cached?.online ? deadlineToMove(cached, update.lastSeen) : undefined;
    if (moveTo !== undefined && cached) {
      request.moveDeadline = { deadline: moveTo, policy: cached.policy, flapping: cached.settlesAt !== undefined };
    }

    const touched = await deps.store.touch(request);
    units += touched.units ?? 0;
    if (touched.applied) {
      const deadline = request.moveDeadline?.deadline ?? touched.before.deadline;
      const written = {
        ...touched.before,
        lastSeen: update.lastSeen,
        deadline,
        tags: request.tags ?? touched.before.tags,
      };
      cache.remember(written, update.lastSeen);
      // A mute this container did not know of needs the item longer than this write left it: one more write, only for
      // mutes that reach past the housekeeping TTL, and once per container (the cache knows the mute now). Should its
      // condition fail, the item changed meanwhile, and whatever changed it wrote its own expiry.
      const keep = keptForMuteUntil(written);
      if (keep !== undefined && keep > request.expiresAt) {
        units += (await deps.store.commit(keepForMute(written, keep, deps))).units ?? 0;
      }
      return { kind: 'written', units, deadlineMoved: moveTo !== undefined };
    }

    // The failed condition returned the stored item: decide from it, without a read.
    let current = touched.current;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const commit = planCommit(current, update, deps);
      if (commit === undefined || commit === UNREGISTERED) {
        if (current) cache.remember(current, update.lastSeen);
        return { kind: commit === undefined ? 'stale' : 'unregistered', units };
      }
      const result = await deps.store.commit(commit.request);
      units += result.units ?? 0;
      if (result.applied) {
        cache.remember(result.after, update.lastSeen);
        // Online already: the commit only rewrote its type, policy and deadline.
        if (current?.status === STATUS.online) return { kind: 'written', units, deadlineMoved: true };
        const isNew = current === undefined || current.status === STATUS.registered;
        return { kind: 'transition', after: result.after, units, isNew };
      }
      current = result.current;
    }
    throw new Error(`device ${update.deviceId}: state kept changing under ${MAX_ATTEMPTS} attempts`);
  } catch (error) {
    return { kind: 'failed', error, units };
  }
}

function policyFor(config: IngestConfig, deviceType: string | undefined): Policy {
  const types = config.deviceTypes.types;
  const type = (deviceType && types[deviceType]) || types[config.deviceTypes.defaultType]!;
  return { timeoutMs: type.timeoutMs, precisionMs: type.precisionMs };
}

function typeNameFor(config: IngestConfig, deviceType: string | undefined): string {
  return deviceType && config.deviceTypes.types[deviceType] ? deviceType : config.deviceTypes.defaultType;
}

/** Write coalescing: the stored `lastSeen` keeps the device online until `lastSeen + timeout + precision`, which
 * is no earlier than this message's true deadline when the message is at most `precision` newer. */
function canSkipWrite(cached: NonNullable<ReturnType<DeviceCache['get']>>, update: DeviceUpdate, typePolicy: Policy) {
  if (!cached.online || cached.policy.precisionMs === 0) return false;
  if (update.deviceType && update.deviceType !== cached.deviceType) return false;
  if (update.tags && !sameTags(update.tags, cached.tags)) return false;
  if (!cached.hasOverride && !samePolicy(cached.policy, typePolicy)) return false;
  return update.lastSeen <= cached.lastSeen + cached.policy.precisionMs;
}

/** Moving the deadline costs the index a delete and a put, so it moves only when it would otherwise expire before
 * the device's next message is expected. The cache can tell only when this container saw the device's previous
 * message (Kinesis keeps a device on one container; SQS rarely does): an entry older than half the timeout is not
 * the previous message, and its deadline may be stale. Otherwise the sweep re-arms the deadline when it finds it. */
function deadlineToMove(cached: NonNullable<ReturnType<DeviceCache['get']>>, lastSeen: number): number | undefined {
  if (cached.deadline === undefined) return undefined;
  const interval = lastSeen - cached.lastMessageAt;
  if (interval <= 0 || interval > cached.policy.timeoutMs / 2) return undefined;
  // A flapping device's deadline is bounded by when it settles. Its `since` only grows, so a bound from a cached
  // state is never later than the stored one allows.
  const target = Math.min(offlineAt(lastSeen, cached.policy), cached.settlesAt ?? Number.POSITIVE_INFINITY);
  if (cached.deadline >= lastSeen + interval || target <= cached.deadline) return undefined;
  return target;
}

/** What `planCommit` answers for a device allow-list mode does not track. */
const UNREGISTERED = 'unregistered';

/** The state change a message causes when the happy-path write did not apply, undefined when it is stale, or
 * UNREGISTERED when allow-list mode rejects it. */
function planCommit(
  current: DeviceState | undefined,
  update: DeviceUpdate,
  deps: WriteDeps,
): { request: CommitRequest } | typeof UNREGISTERED | undefined {
  const { config } = deps;
  const t = update.lastSeen;
  if (current && current.lastSeen >= t) return undefined;
  // Only a registered device is tracked: no item, or a decommission's tombstone (past its `lastSeen`, which keeps the
  // messages before the decommission stale), is no device of the fleet.
  if (config.allowList && (!current || current.status === STATUS.retired)) return UNREGISTERED;
  // A message that entered before the device went offline is history, not a return: the offline transition already
  // accounted for it (a write coalescing skipped, delivered again late). Bringing the device back with it would
  // publish an online event whose `since` goes back before the offline one.
  if (current?.status === STATUS.offline && t <= current.since) return undefined;

  const deviceType = typeNameFor(config, update.deviceType ?? current?.deviceType);
  const policy = current?.override ?? policyFor(config, deviceType);
  const damping = config.deviceTypes.types[deviceType]?.flap;
  const shard = shardOf(update.deviceId, config.shardCount);
  const tags = update.tags ?? current?.tags;
  const base = { deviceType, ...policy, lastSeen: t, status: STATUS.online, shard, ...(tags ? { tags } : {}) };
  const withDeadline = <S extends Parameters<typeof deadlineOf>[0]>(state: S) => ({
    ...state,
    deadline: deadlineOf(state)!,
  });
  const now = deps.now();
  const common = {
    deviceId: update.deviceId,
    // A mute stays on the item through the transition: the item is kept until it has been reported.
    expiresAt: Math.max(
      t + config.housekeepingTtlMs,
      keptForMuteUntil({ ...policy, mutedUntil: current?.mutedUntil }) ?? 0,
    ),
    outboxShard: shard,
    outboxAt: now,
    // The outbox as read: a commit that would fill it past its bound spills it first (outbox.ts).
    ...(current ? { read: { outbox: current.outbox, outboxSpills: current.outboxSpills } } : {}),
  };

  if (!current || current.status === STATUS.retired || current.status === STATUS.registered) {
    // A decommissioned device comes back as a new one, but continues the tombstone's seq: its event ids must not
    // repeat the ones its earlier life published. A registered one starts its life as a new one (with the seq a
    // tombstone it was registered over left).
    const seq = (current?.seq ?? 0) + (config.announceNewDevices ? 1 : 0);
    const flap = recordTransition(undefined, t, damping);
    const state = withDeadline({ ...base, since: t, seq, ...flap.fields });
    const append = config.announceNewDevices
      ? transitionEvents({ deviceId: update.deviceId, ...state }, false, now)
      : [];
    const expect = current
      ? {
          seq: current.seq,
          status: current.status,
          lastSeenAtMost: t - 1,
          deviceType: current.deviceType,
          // A registered device may have an override an operator set meanwhile: not overwritten unseen.
          policy: policyOf(current),
        }
      : { absent: true as const };
    return { request: { ...common, expect, state, append } };
  }
  const expect = {
    seq: current.seq,
    status: current.status,
    lastSeenAtMost: t - 1,
    deviceType: current.deviceType,
    policy: policyOf(current),
  };
  if (current.status === STATUS.offline) {
    const flap = recordTransition(current, t, damping);
    const state = withDeadline({ ...base, since: t, seq: current.seq + 1, ...flap.fields });
    const append = transitionEvents({ deviceId: update.deviceId, ...state }, flap.starts, now);
    return { request: { ...common, expect, state, append } };
  }
  // Online, older than this message, but the stored policy or type is not the one assumed (or a flapping device's
  // deadline could not move with the touch): rewrite them, and the deadline that follows from them.
  const state = withDeadline({ ...base, since: current.since, seq: current.seq, ...flapFieldsOf(current) });
  return { request: { ...common, expect, state, append: [] } };
}

/** Raises a just-written device's expiry to `keep` (a mute's need), changing nothing else: conditional on the item
 * being as written. */
function keepForMute(written: DeviceState, keep: number, deps: WriteDeps): CommitRequest {
  const { deviceId, outbox: _outbox, override: _override, skipHorizon: _skipHorizon, ...state } = written;
  return {
    deviceId,
    expect: {
      seq: state.seq,
      status: state.status,
      lastSeenAtMost: state.lastSeen,
      deviceType: state.deviceType,
      policy: policyOf(state),
    },
    state,
    expiresAt: keep,
    append: [],
    outboxShard: state.shard ?? shardOf(deviceId, deps.config.shardCount),
    outboxAt: deps.now(),
  };
}

export function emptyStats(records: number): IngestStats {
  return {
    records,
    messages: 0,
    rejected: {},
    rejectedTotal: 0,
    updates: 0,
    written: 0,
    coalesced: 0,
    stale: 0,
    failedWrites: 0,
    onlineTransitions: 0,
    flapStarted: 0,
    newDevices: 0,
    deadlineMoves: 0,
    writeUnits: 0,
    published: 0,
    publishFailures: 0,
    probes: 0,
  };
}
