import { describe, expect, it } from 'vitest';
import {
  checkInvariants,
  loadDeviceTypes,
  loadIngestConfig,
  loadSweepConfig,
  toleranceWarnings,
} from '../../lambdas/core/config.js';
import { ConfigError } from '../../lambdas/core/errors.js';
import { offlineAt, parseDeviceTypes } from '../../lambdas/core/policy.js';
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

const DAY = 24 * 3600_000;

/** The message of the ConfigError `load` throws (fails the test when it throws nothing or something else). */
function refusal(load: () => unknown): string {
  try {
    load();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

describe('refused configuration (issue 10 item 9)', () => {
  const types = (json: object) => JSON.stringify(json);

  it.each([
    ['a timeout longer than the TTL', { meter: { timeoutMs: 2 * DAY } }, 1, 'meter', [String(2 * DAY)]],
    [
      'timeout + precision longer than the TTL',
      { tracker: { timeoutMs: 90_000 }, meter: { timeoutMs: 20 * 3600_000, precisionMs: 5 * 3600_000 } },
      1,
      'meter',
      [String(20 * 3600_000), String(5 * 3600_000), String(25 * 3600_000)],
    ],
    [
      'timeout + precision + flap window longer than the TTL',
      { door: { timeoutMs: 12 * 3600_000, flap: { transitions: 4, windowMs: 13 * 3600_000 } } },
      1,
      'door',
      [String(13 * 3600_000), 'flap', String(25 * 3600_000)],
    ],
    // Deletion may come as soon as the item expires, and the sweep reports after the deadline: equal is too short.
    ['a timeout equal to the TTL', { meter: { timeoutMs: 30 * DAY } }, undefined, 'meter', [String(30 * DAY)]],
  ])(
    'refuses a housekeeping TTL shorter than %s, naming the type and the numbers',
    (_, deviceTypes, days, type, numbers) => {
      const env = {
        ...base,
        DEVICE_TYPES: types(deviceTypes),
        ...(days === undefined ? {} : { HOUSEKEEPING_TTL_DAYS: String(days) }),
      };
      for (const load of [() => loadIngestConfig(env), () => loadSweepConfig(env)]) {
        const message = refusal(load);
        expect(message).toContain('HOUSEKEEPING_TTL_DAYS');
        expect(message).toContain('housekeepingTtl');
        expect(message).toContain(`"${type}"`);
        expect(message).toContain(`${days ?? 30} day`);
        for (const n of numbers) expect(message).toContain(n);
      }
    },
  );

  it('accepts a TTL that outlasts every type, flap window included', () => {
    const env = {
      ...base,
      HOUSEKEEPING_TTL_DAYS: '2',
      DEVICE_TYPES: types({
        meter: { timeoutMs: DAY, precisionMs: DAY - 1 },
        door: { timeoutMs: DAY, flap: { transitions: 3, windowMs: DAY - 1 } },
      }),
    };
    expect(loadIngestConfig(env).housekeepingTtlMs).toBe(2 * DAY);
    expect(loadSweepConfig(env).deviceTypes.types.door!.flap).toEqual({ transitions: 3, windowMs: DAY - 1 });
  });

  it('is one pure function the construct calls too', () => {
    const deviceTypes = parseDeviceTypes({ meter: { timeoutMs: 2 * DAY } }, 'meter');
    expect(() => checkInvariants({ deviceTypes, housekeepingTtlMs: 3 * DAY })).not.toThrow();
    expect(refusal(() => checkInvariants({ deviceTypes, housekeepingTtlMs: DAY }))).toContain('"meter"');
    expect(() =>
      checkInvariants({ deviceTypes, housekeepingTtlMs: 3 * DAY, kinesisParallelizationFactor: 1 }),
    ).not.toThrow();
  });

  it.each(['2', '10'])('refuses KINESIS_PARALLELIZATION_FACTOR %s: probes then prove nothing', (factor) => {
    const message = refusal(() => loadIngestConfig({ ...base, KINESIS_PARALLELIZATION_FACTOR: factor }));
    expect(message).toContain('KINESIS_PARALLELIZATION_FACTOR');
    expect(message).toContain('parallelizationFactor');
    expect(message).toContain(`got ${factor}`);
    expect(message).toContain('must be 1');
    expect(message).toMatch(/partition key/);
    expect(message).toMatch(/event source mapping/);
  });

  it("accepts a parallelization factor of 1 or none, and refuses one out of Lambda's range", () => {
    expect(() => loadIngestConfig({ ...base, KINESIS_PARALLELIZATION_FACTOR: '1' })).not.toThrow();
    expect(() => loadIngestConfig(base)).not.toThrow();
    expect(refusal(() => loadIngestConfig({ ...base, KINESIS_PARALLELIZATION_FACTOR: '0' }))).toContain(
      'KINESIS_PARALLELIZATION_FACTOR',
    );
  });
});

describe('toleranceWarnings (the dispatcher logs them, cdk synth annotates them)', () => {
  const types = loadDeviceTypes({
    DEVICE_TYPES: JSON.stringify({
      tracker: { timeoutMs: 90_000, heartbeatMs: 60_000 },
      meter: { timeoutMs: 900_000, precisionMs: 60_000, heartbeatMs: 60_000 },
      battery: { timeoutMs: 90_000_000 },
    }),
  });

  it('is silent when tolerance < timeout − heartbeat for every type, and at least one tick', () => {
    expect(toleranceWarnings(types, 25_000, 10)).toEqual([]);
    expect(toleranceWarnings(types, 29_999, 10)).toEqual([]);
    expect(toleranceWarnings(types, 10_000, 10)).toEqual([]);
  });

  it('names each device type whose bound fails', () => {
    const warnings = toleranceWarnings(types, 30_000, 10);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ deviceType: 'tracker' });
    expect(warnings[0]?.message).toContain('90000 − 60000 = 30000 ms');
    expect(toleranceWarnings(types, 900_000, 10).map((w) => w.deviceType)).toEqual(['tracker', 'meter']);
  });

  it('checks a type without a heartbeat against its timeout alone', () => {
    const noHeartbeat = loadDeviceTypes({ DEVICE_TYPES: JSON.stringify({ sensor: { timeoutMs: 40_000 } }) });
    expect(toleranceWarnings(noHeartbeat, 39_999, 10)).toEqual([]);
    const warnings = toleranceWarnings(noHeartbeat, 40_000, 10);
    expect(warnings).toEqual([{ deviceType: 'sensor', message: expect.stringContaining('its timeout (40000 ms') }]);
    expect(toleranceWarnings(types, 90_000_000, 10).map((w) => w.deviceType)).toEqual(['tracker', 'meter', 'battery']);
  });

  it('warns when the tolerance does not even cover one probe interval', () => {
    const warnings = toleranceWarnings(types, 5_000, 10);
    expect(warnings).toEqual([{ message: expect.stringContaining('below one probe interval') }]);
    expect(toleranceWarnings(types, 9_999, 10)).toHaveLength(1);
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
