// npm run bench:batched — one shard of the batched engine at its largest (DEVICES_PER_SHARD devices): what its state
// weighs (in memory, and as checkpoint chunks), what a tick's sightings cost to write as log records and to merge,
// and how long finding the due devices takes. A 10,000,000-device fleet is 80 such shards (batchedSizing), each
// swept by its own job, so these are also its per-sweep figures. Prints JSON.
import { performance } from 'node:perf_hooks';
import { decodeSightings, encodeEntries, encodeSightings } from '../lambdas/adapters/shard-log.js';
import { ShardState } from '../lambdas/core/batched.js';
import { loadIngestConfig } from '../lambdas/core/config.js';
import type { DeviceState } from '../lambdas/core/device.js';
import type { Sighting } from '../lambdas/core/ports.js';
import { batchedSizing, DEVICES_PER_SHARD, SIGHTINGS_PER_APPEND } from '../lambdas/core/sizing.js';

const MIN = 60_000;
const T0 = Date.UTC(2030, 0, 1);
const TIMEOUT = 5 * MIN;
const config = loadIngestConfig({
  TABLE_NAME: 'bench',
  DEVICE_TYPES: JSON.stringify({ meter: { timeoutMs: TIMEOUT, precisionMs: 0 } }),
  DEFAULT_DEVICE_TYPE: 'meter',
});
const settings = { shardCount: 1, lookbackMs: 15_000, checkpointEveryMs: 300_000, refreshAfterMs: 15 * 24 * 60 * MIN };
const units = (parts: Uint8Array[]) => parts.reduce((n, p) => n + Math.ceil((p.byteLength + 80) / 1024), 0);
const bytes = (parts: Uint8Array[]) => parts.reduce((n, p) => n + p.byteLength, 0);
const ms = (from: number) => Math.round((performance.now() - from) * 10) / 10;

function run(idOf: (i: number) => string) {
  const heapBefore = process.memoryUsage().heapUsed;
  const state = new ShardState('0', 1, new Map(), T0, 0);
  for (let i = 0; i < DEVICES_PER_SHARD; i++) {
    const lastSeen = T0 + Math.floor(Math.random() * MIN);
    const item: DeviceState = {
      deviceId: idOf(i),
      deviceType: 'meter',
      timeoutMs: TIMEOUT,
      precisionMs: 0,
      lastSeen,
      status: 'ONLINE',
      since: T0 - 3_600_000,
      seq: 1,
      shard: '0',
      deadline: lastSeen + TIMEOUT,
      outbox: [],
    };
    state.observe(item.deviceId, item);
  }
  const heapMb = Math.round((process.memoryUsage().heapUsed - heapBefore) / 1e5) / 10;

  let t = performance.now();
  const chunks = encodeEntries(state.entries);
  const checkpointEncodeMs = ms(t);

  // One tick (10 s) of sightings at one message a minute per device: a sixth of the shard.
  const tick: Sighting[] = [];
  for (let i = 0; i < DEVICES_PER_SHARD / 6; i++) {
    tick.push({ deviceId: idOf(Math.floor(Math.random() * DEVICES_PER_SHARD)), lastSeen: T0 + MIN + i });
  }
  const records: Uint8Array[][] = [];
  for (let i = 0; i < tick.length; i += SIGHTINGS_PER_APPEND)
    records.push(encodeSightings(tick.slice(i, i + SIGHTINGS_PER_APPEND)));
  t = performance.now();
  const decoded = records.flatMap((parts) => parts.flatMap((p) => decodeSightings(p).sightings));
  const decodeMs = ms(t);
  t = performance.now();
  let merged = 0;
  for (const sighting of decoded) if (state.merge(sighting, config, settings) === 'merged') merged++;
  const mergeMs = ms(t);
  t = performance.now();
  const due = state.expired(T0 + TIMEOUT + 30_000, 100);
  const expiredMs = ms(t);

  const logParts = records.flat();
  return {
    devices: DEVICES_PER_SHARD,
    exampleId: idOf(12_345),
    stateHeapMb: heapMb,
    checkpoint: {
      chunks: chunks.length,
      bytes: bytes(chunks),
      bytesPerDevice: Math.round((bytes(chunks) / DEVICES_PER_SHARD) * 10) / 10,
      writeUnits: units(chunks),
      encodeMs: checkpointEncodeMs,
    },
    tick: {
      sightings: tick.length,
      records: logParts.length,
      bytesPerSighting: Math.round((bytes(logParts) / tick.length) * 10) / 10,
      writeUnitsPerSighting: Math.round((units(logParts) / tick.length) * 10_000) / 10_000,
      decodeMs,
      mergeMs,
      merged,
      firstDuePageMs: expiredMs,
      due: due.items.length,
    },
  };
}

const pad = (i: number) => String(i).padStart(7, '0');
const result = {
  command: 'npm run bench:batched',
  shardOf10M: batchedSizing({ devices: 10_000_000, messagesPerSecond: 10_000_000 / 60 }),
  shardOf1M: batchedSizing({ devices: 1_000_000, messagesPerSecond: 1_000_000 / 60 }),
  shortIds: run((i) => `sensor-${pad(i)}`),
  uuidIds: run((i) => `${pad(i)}a3-5c1e-4f7b-9d2e-6b8f0c4a1d${pad(i).slice(0, 2)}`),
};
console.log(JSON.stringify(result, null, 2));
