// A simulated fleet in virtual time, driven through the real ingest and sweep cores against any DeviceStore (the
// in-memory model, or DynamoDB Local through the real adapter). Counts write units as DynamoDB bills them.
import type { IngestConfig } from '../lambdas/core/config.js';
import { DeviceCache } from '../lambdas/core/device-cache.js';
import { type IngestRecord, ingestBatch } from '../lambdas/core/ingest.js';
import type { DeviceStore, EventPublisher, RejectSink, TouchOutcome, TouchRequest } from '../lambdas/core/ports.js';
import { shardOf } from '../lambdas/core/shard.js';
import { sweepShard } from '../lambdas/core/sweep.js';
import type { WatermarkStore } from '../lambdas/core/watermark.js';
import { random } from '../local/random.js';

export { random };

export interface FleetOptions {
  devices: number;
  heartbeatMs: number;
  /** Each interval is heartbeat × (1 ± jitter), uniformly. */
  jitter: number;
  durationMs: number;
  /** Counting starts after this much simulated time, so registration does not weigh on the steady state. */
  warmupMs: number;
  sweepTickMs: number;
  batchSize: number;
  /** How messages reach Lambda containers: 'kinesis' keeps a device on one container (its cache hits), 'sqs'
   * spreads every batch over `containers` containers at random. */
  affinity: 'kinesis' | 'sqs';
  containers: number;
  seed: number;
}

export interface FleetResult {
  messages: number;
  ingestWriteUnits: number;
  sweepWriteUnits: number;
  wruPerMessage: number;
  deadlineMoves: number;
  rearms: number;
  coalesced: number;
  offline: number;
  reads: number;
}

const noRejects: RejectSink = { send: async () => ({ failed: [] }) };
const noPublisher: EventPublisher = { publish: async () => ({ failed: [] }) };
const noWatermarks: Pick<WatermarkStore, 'read'> = { read: async () => ({ live: [], marks: {} }) };

/** The design everyone writes first: every message moves the deadline (and no write is ever skipped). */
export function naiveStore(store: DeviceStore): DeviceStore {
  const naive: DeviceStore = Object.create(store);
  naive.touch = (request: TouchRequest): Promise<TouchOutcome> =>
    store.touch({
      ...request,
      moveDeadline: {
        deadline: request.lastSeen + request.typePolicy.timeoutMs + request.typePolicy.precisionMs,
        policy: request.typePolicy,
        flapping: false,
      },
    });
  return naive;
}

export async function runFleet(
  store: DeviceStore,
  config: IngestConfig,
  options: FleetOptions,
  readsCounter: () => number = () => 0,
): Promise<FleetResult> {
  const rand = random(options.seed);
  const ids = Array.from({ length: options.devices }, (_, i) => `sim-${i}`);
  const interval = () => options.heartbeatMs * (1 + options.jitter * (2 * rand() - 1));
  const next = ids.map(() => rand() * options.heartbeatMs);
  const caches = Array.from({ length: options.containers }, () => new DeviceCache(config.cacheSize));
  const deps = (cache: DeviceCache) => ({
    config,
    store,
    publisher: noPublisher,
    rejects: noRejects,
    cache,
    now: () => 0,
  });
  const shards = Array.from({ length: config.shardCount }, (_, i) => String(i));
  const result: FleetResult = {
    messages: 0,
    ingestWriteUnits: 0,
    sweepWriteUnits: 0,
    wruPerMessage: 0,
    deadlineMoves: 0,
    rearms: 0,
    coalesced: 0,
    offline: 0,
    reads: 0,
  };
  const start = 1_800_000_000_000;
  for (let tick = 0; tick < options.warmupMs + options.durationMs; tick += options.sweepTickMs) {
    const counting = tick >= options.warmupMs;
    const due: Array<{ id: string; t: number; container: number }> = [];
    ids.forEach((id, i) => {
      while (next[i]! < tick + options.sweepTickMs) {
        const container =
          options.affinity === 'kinesis'
            ? Number(shardOf(id, options.containers))
            : Math.floor(rand() * options.containers);
        due.push({ id, t: start + Math.round(next[i]!), container });
        next[i]! += interval();
      }
    });
    due.sort((a, b) => a.t - b.t);
    for (let c = 0; c < options.containers; c++) {
      const mine = due.filter((d) => d.container === c);
      for (let i = 0; i < mine.length; i += options.batchSize) {
        const records: IngestRecord[] = mine.slice(i, i + options.batchSize).map((d, j) => ({
          id: `${tick}-${c}-${i + j}`,
          body: JSON.stringify({ deviceId: d.id }),
          enteredAt: d.t,
          partition: `p-${c}`,
        }));
        const { stats } = await ingestBatch(records, deps(caches[c]!), { ordered: options.affinity === 'kinesis' });
        if (!counting) continue;
        result.messages += stats.messages;
        result.ingestWriteUnits += stats.writeUnits;
        result.deadlineMoves += stats.deadlineMoves;
        result.coalesced += stats.coalesced;
      }
    }
    // Sweep every shard at the end of the tick, as the dispatcher's jobs would, with ingestion caught up.
    const now = start + tick + options.sweepTickMs;
    for (const shard of shards) {
      const stats = await sweepShard(
        { shard },
        {
          settings: { toleranceMs: 0, budgetMs: 60_000, pageSize: 500, concurrency: 32, republishAfterMs: 5_000 },
          store,
          publisher: noPublisher,
          watermarks: noWatermarks,
          queue: { enqueue: async () => undefined },
          now: () => now,
        },
      );
      if (!counting) continue;
      result.sweepWriteUnits += stats.writeUnits;
      result.rearms += stats.rearmed;
      result.offline += stats.offline;
    }
  }
  result.reads = readsCounter();
  result.wruPerMessage = (result.ingestWriteUnits + result.sweepWriteUnits) / result.messages;
  return result;
}
