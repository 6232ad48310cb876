// The batched engine's log records keep what a sighting carries: the device's type and tags (the sweep merges them
// into its shard state, and maintenance windows and gateways select devices by them).
import { expect, it } from 'vitest';
import { decodeSightings, encodeSightings } from '../../lambdas/adapters/shard-log.js';
import type { Sighting } from '../../lambdas/core/ports.js';

it('a log record decodes to the sightings and notes encoded, types and tags included', () => {
  const sightings: Sighting[] = [
    { deviceId: 'meter-1', lastSeen: 1_800_000_000_500 },
    { deviceId: 'meter-2', lastSeen: 1_800_000_000_000, deviceType: 'meter' },
    { deviceId: 'meter-3', lastSeen: 1_800_000_001_000, tags: { site: 'berlin' } },
    {
      deviceId: 'meter-4',
      lastSeen: 1_800_000_002_000,
      deviceType: 'meter',
      tags: { site: 'oslo', gatewayId: 'gw-1' },
    },
  ];
  const [record, ...more] = encodeSightings(sightings, ['meter-9']);
  expect(more).toEqual([]);
  expect(decodeSightings(record!)).toEqual({ sightings, notes: ['meter-9'] });
});
