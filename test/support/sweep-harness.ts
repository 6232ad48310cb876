// A whole detector in memory for sweep tests: the real ingest and sweep cores over MemoryDeviceStore, with a
// settable clock, an event log as the publisher, an in-memory sweep queue and watermarks.
import { type IngestConfig, loadIngestConfig } from '../../lambdas/core/config.js';
import type { DeviceEvent } from '../../lambdas/core/device.js';
import { DeviceCache } from '../../lambdas/core/device-cache.js';
import { flapDampingByType } from '../../lambdas/core/flap.js';
import { type IngestDeps, type IngestRecord, ingestBatch } from '../../lambdas/core/ingest.js';
import type { DeviceTypeConfig } from '../../lambdas/core/policy.js';
import type { EventPublisher, RejectSink } from '../../lambdas/core/ports.js';
import {
  type SweepDeps,
  type SweepJob,
  type SweepJobQueue,
  type SweepSettings,
  type SweepStats,
  sweepShard,
} from '../../lambdas/core/sweep.js';
import { VirtualClock } from '../../sim/clock.js';
import { MemoryDeviceStore } from '../../sim/memory/device-store.js';
import { MemoryWatermarks } from '../../sim/memory/watermark-store.js';

export const TYPES = {
  tracker: { timeoutMs: 90_000, precisionMs: 0 },
  meter: { timeoutMs: 300_000, precisionMs: 60_000 },
};
export const T0 = 1_700_000_000_000;

export class EventLog implements EventPublisher {
  readonly events: DeviceEvent[] = [];
  async publish(events: DeviceEvent[]) {
    this.events.push(...structuredClone(events));
    return { failed: [] };
  }
  of(deviceId: string, type?: DeviceEvent['type']) {
    return this.events.filter((e) => e.deviceId === deviceId && (type === undefined || e.type === type));
  }
}

export class MemoryJobQueue implements SweepJobQueue {
  readonly jobs: Array<{ job: SweepJob; delaySeconds: number }> = [];
  async enqueue(jobs: SweepJob[], delaySeconds = 0) {
    for (const job of jobs) this.jobs.push({ job: structuredClone(job), delaySeconds });
  }
}

const noRejects: RejectSink = { send: async () => ({ failed: [] }) };

export interface HarnessOptions {
  shardCount?: number;
  settings?: Partial<SweepSettings>;
  config?: Partial<IngestConfig>;
  /** Device types (the first is the default); TYPES unless given. */
  types?: Record<string, DeviceTypeConfig>;
}

export function harness(options: HarnessOptions = {}) {
  const shardCount = options.shardCount ?? 2;
  const config: IngestConfig = {
    ...loadIngestConfig({ TABLE_NAME: 'memory', DEVICE_TYPES: JSON.stringify(options.types ?? TYPES) }),
    shardCount,
    ...options.config,
  };
  const clock = new VirtualClock(T0);
  const now = clock.now;
  const store = new MemoryDeviceStore();
  const events = new EventLog();
  const watermarks = new MemoryWatermarks();
  const queue = new MemoryJobQueue();
  const settings: SweepSettings = {
    toleranceMs: 0,
    budgetMs: 60_000,
    pageSize: 50,
    concurrency: 8,
    republishAfterMs: 10_000,
    flapDamping: flapDampingByType(config.deviceTypes),
    ...options.settings,
  };
  let cache = new DeviceCache(config.cacheSize);
  let recordId = 0;

  const ingestDeps = (overrides: Partial<IngestDeps> = {}): IngestDeps => ({
    config,
    store,
    publisher: events,
    rejects: noRejects,
    cache,
    now,
    ...overrides,
  });
  const sweepDeps = (overrides: Partial<SweepDeps> = {}): SweepDeps => ({
    settings,
    store,
    publisher: events,
    watermarks,
    queue,
    now,
    ...overrides,
  });

  return {
    config,
    clock,
    store,
    events,
    watermarks,
    queue,
    settings,
    shards: Array.from({ length: shardCount }, (_, i) => String(i)),
    ingestDeps,
    sweepDeps,
    /** A new ingest container: its coalescing cache knows nothing. */
    freshCache() {
      cache = new DeviceCache(config.cacheSize);
    },
    record(deviceId: string, enteredAt: number, deviceType?: string): IngestRecord {
      return {
        id: `r-${++recordId}`,
        body: JSON.stringify({ deviceId, ...(deviceType ? { deviceType } : {}) }),
        enteredAt,
        partition: 'p',
      };
    },
    /** Ingests one message per device, all entered at `at`. */
    async send(deviceIds: string[], at: number, deviceType?: string) {
      const records = deviceIds.map((id) => this.record(id, at, deviceType));
      return ingestBatch(records, ingestDeps(), { ordered: false });
    },
    async sweep(shard: string, overrides: Partial<SweepDeps> = {}): Promise<SweepStats> {
      return sweepShard({ shard }, sweepDeps(overrides));
    },
    /** One job per shard, then every continuation they enqueue, until the queue is empty. */
    async sweepAll(overrides: Partial<SweepDeps> = {}): Promise<SweepStats[]> {
      const stats: SweepStats[] = [];
      for (const shard of this.shards) stats.push(await this.sweep(shard, overrides));
      for (let next = queue.jobs.shift(); next; next = queue.jobs.shift()) {
        stats.push(await sweepShard(next.job, sweepDeps(overrides)));
      }
      return stats;
    },
  };
}
export type Harness = ReturnType<typeof harness>;

export function total(
  stats: SweepStats[],
  key: 'offline' | 'rearmed' | 'skipped' | 'scanned' | 'republished' | 'flapStarted' | 'settled',
) {
  return stats.reduce((sum, s) => sum + s[key], 0);
}
