// Small fakes and builders for driving the ingest core in unit and property tests.
import { type IngestConfig, loadIngestConfig } from '../../lambdas/core/config.js';
import type { DeviceEvent } from '../../lambdas/core/device.js';
import { DeviceCache } from '../../lambdas/core/device-cache.js';
import type { IngestDeps, IngestRecord } from '../../lambdas/core/ingest.js';
import type { EventPublisher, RejectedRecord, RejectSink } from '../../lambdas/core/ports.js';
import { MemoryDeviceStore } from '../../sim/memory/device-store.js';

export class RecordingPublisher implements EventPublisher {
  readonly events: DeviceEvent[] = [];
  failNext = 0;
  async publish(events: DeviceEvent[]) {
    if (this.failNext > 0) {
      this.failNext--;
      return { failed: events };
    }
    this.events.push(...structuredClone(events));
    return { failed: [] };
  }
}

export class RecordingRejects implements RejectSink {
  readonly rejected: RejectedRecord[] = [];
  async send(rejections: RejectedRecord[]) {
    this.rejected.push(...rejections);
    return { failed: [] };
  }
}

export const TYPES = {
  tracker: { timeoutMs: 90_000, precisionMs: 0 },
  meter: { timeoutMs: 300_000, precisionMs: 60_000 },
};

export function testConfig(overrides: Partial<IngestConfig> = {}): IngestConfig {
  return {
    ...loadIngestConfig({ TABLE_NAME: 'memory', DEVICE_TYPES: JSON.stringify(TYPES), DEFAULT_DEVICE_TYPE: 'tracker' }),
    ...overrides,
  };
}

export function memoryDeps(overrides: Partial<IngestDeps> = {}, config = testConfig()) {
  const store = new MemoryDeviceStore();
  const publisher = new RecordingPublisher();
  const rejects = new RecordingRejects();
  const deps: IngestDeps = {
    config,
    store,
    publisher,
    rejects,
    cache: new DeviceCache(config.cacheSize),
    now: () => 0,
    ...overrides,
  };
  return { deps, store, publisher, rejects };
}

let n = 0;
export function record(body: unknown, enteredAt: number, partition = 'queue-1'): IngestRecord {
  return {
    id: `r-${++n}`,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    enteredAt,
    partition,
  };
}
