import { describe, expect, it } from 'vitest';
import { loadIngestConfig } from '../../lambdas/core/config.js';
import { ConfigError } from '../../lambdas/core/errors.js';
import { offlineAt } from '../../lambdas/core/policy.js';
import { shardOf } from '../../lambdas/core/shard.js';
import { seenAt } from '../../lambdas/core/time-basis.js';

const base = { TABLE_NAME: 'devices' };

describe('loadIngestConfig', () => {
  it('has working defaults', () => {
    const config = loadIngestConfig(base);
    expect(config.deviceTypes).toEqual({
      defaultType: 'default',
      types: { default: { timeoutMs: 300_000, precisionMs: 0 } },
    });
    expect(config).toMatchObject({ shardCount: 64, deviceTsSkewMs: 0, announceNewDevices: true });
  });

  it('reads device types, the default type and the field map', () => {
    const config = loadIngestConfig({
      ...base,
      DEVICE_TYPES:
        '{"tracker":{"timeoutMs":90000},"meter":{"timeoutMs":900000,"precisionMs":60000,"heartbeatMs":60000,' +
        '"flap":{"transitions":4,"windowMs":600000}}}',
      DEFAULT_DEVICE_TYPE: 'meter',
      FIELD_MAP: '{"deviceId":"thingName"}',
      ANNOUNCE_NEW_DEVICES: 'false',
    });
    expect(config.deviceTypes.defaultType).toBe('meter');
    expect(config.deviceTypes.types.tracker).toEqual({ timeoutMs: 90_000, precisionMs: 0 });
    expect(config.deviceTypes.types.meter!.flap).toEqual({ transitions: 4, windowMs: 600_000 });
    expect(config.fieldMap).toEqual({ deviceId: 'thingName', ts: 'ts', deviceType: 'deviceType' });
    expect(config.announceNewDevices).toBe(false);
  });

  it.each([
    [{}, 'TABLE_NAME'],
    [{ DEVICE_TYPES: 'nope' }, 'DEVICE_TYPES'],
    [{ DEVICE_TYPES: '{"a":{"timeoutMs":0}}' }, 'DEVICE_TYPES'],
    [{ DEVICE_TYPES: '{"a":{"timeoutMs":1000,"precisionMs":-1}}' }, 'DEVICE_TYPES'],
    [{ DEVICE_TYPES: '{"a b":{"timeoutMs":1000}}' }, 'DEVICE_TYPES'],
    [{ DEVICE_TYPES: '{"a":{"timeoutMs":1000,"flap":{"transitions":1,"windowMs":60000}}}' }, 'DEVICE_TYPES'],
    [{ DEVICE_TYPES: '{"a":{"timeoutMs":1000,"flap":{"transitions":3}}}' }, 'DEVICE_TYPES'],
    [{ DEVICE_TYPES: '{"a":{"timeoutMs":1000,"flap":{"transitions":3,"windowMs":1,"k":1}}}' }, 'DEVICE_TYPES'],
    [{ DEVICE_TYPES: '{"a":{"timeoutMs":1000,"flap":true}}' }, 'DEVICE_TYPES'],
    [{ DEVICE_TYPES: '{"a":{"timeoutMs":1000}}', DEFAULT_DEVICE_TYPE: 'b' }, 'DEFAULT_DEVICE_TYPE'],
    [{ FIELD_MAP: '{"serial":"x"}' }, 'FIELD_MAP'],
    [{ SHARD_COUNT: '0' }, 'SHARD_COUNT'],
    [{ ANNOUNCE_NEW_DEVICES: 'maybe' }, 'ANNOUNCE_NEW_DEVICES'],
  ])('refuses %j naming %s', (env, setting) => {
    const load = () => loadIngestConfig(setting === 'TABLE_NAME' ? env : { ...base, ...env });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(setting);
  });
});

describe('time basis', () => {
  it('uses the pipeline entry time, or the device time within the skew', () => {
    expect(seenAt(1_000_000, undefined, 5_000)).toBe(1_000_000);
    expect(seenAt(1_000_000, 997_000, 0)).toBe(1_000_000);
    expect(seenAt(1_000_000, 997_000, 5_000)).toBe(997_000);
    expect(seenAt(1_000_000, 1_004_000, 5_000)).toBe(1_004_000);
    expect(seenAt(1_000_000, 990_000, 5_000)).toBe(1_000_000);
  });
});

describe('policy and shards', () => {
  it('detects no earlier than timeout + precision', () => {
    expect(offlineAt(1_000, { timeoutMs: 300, precisionMs: 60 })).toBe(1_360);
  });

  it('spreads devices evenly and stably over shards', () => {
    const counts = new Array(16).fill(0);
    for (let i = 0; i < 16_000; i++) counts[Number(shardOf(`device-${i}`, 16))]++;
    expect(Math.min(...counts)).toBeGreaterThan(800);
    expect(Math.max(...counts)).toBeLessThan(1200);
    expect(shardOf('device-1', 64)).toBe(shardOf('device-1', 64));
  });
});
