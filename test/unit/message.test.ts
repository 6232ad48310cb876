import { describe, expect, it } from 'vitest';
import { DEFAULT_FIELD_MAP } from '../../lambdas/core/config.js';
import { type ParseOptions, parsePayload } from '../../lambdas/core/message.js';

const T0 = Date.UTC(2026, 10, 23, 12);
const options: ParseOptions = {
  fieldMap: DEFAULT_FIELD_MAP,
  maxPayloadBytes: 1024,
  maxArrayElements: 3,
  knownDeviceTypes: new Set(['meter', 'tracker']),
  enteredAt: T0,
  maxFutureMs: 3600_000,
};
const one = (raw: string | Uint8Array, opts = options) => {
  const parsed = parsePayload(raw, opts);
  expect(parsed).toHaveLength(1);
  return parsed[0]!;
};

describe('parsePayload', () => {
  it('reads a device message with optional type and timestamp', () => {
    expect(one('{"deviceId":"a-1"}')).toEqual({ kind: 'message', deviceId: 'a-1' });
    expect(one(`{"deviceId":"a:1@x/y.z_-","deviceType":"meter","ts":${T0 - 5}}`)).toEqual({
      kind: 'message',
      deviceId: 'a:1@x/y.z_-',
      deviceType: 'meter',
      deviceTs: T0 - 5,
    });
  });

  it('accepts epoch seconds and ISO-8601 timestamps', () => {
    expect(one(`{"deviceId":"a","ts":${T0 / 1000}}`)).toMatchObject({ deviceTs: T0 });
    expect(one(`{"deviceId":"a","ts":"${new Date(T0).toISOString()}"}`)).toMatchObject({ deviceTs: T0 });
    expect(one(`{"deviceId":"a","ts":"${T0}"}`)).toMatchObject({ deviceTs: T0 });
  });

  it('maps fields from the users payload, including nested paths', () => {
    const mapped = { ...options, fieldMap: { deviceId: 'thingName', ts: 'state.reported.ts', deviceType: 'kind' } };
    expect(one(`{"thingName":"t-9","kind":"tracker","state":{"reported":{"ts":${T0}}}}`, mapped)).toEqual({
      kind: 'message',
      deviceId: 't-9',
      deviceType: 'tracker',
      deviceTs: T0,
    });
  });

  it('reads every message of an aggregated record on its own', () => {
    const parsed = parsePayload('[{"deviceId":"a"},{"deviceId":""},{"deviceId":"b"}]', options);
    expect(parsed.map((p) => (p.kind === 'reject' ? p.reason : p.kind))).toEqual([
      'message',
      'INVALID_DEVICE_ID',
      'message',
    ]);
    expect(parsed[1]).toMatchObject({ body: '{"deviceId":""}' });
  });

  it('rejects an array of more messages than allowed whole, so one record cannot fan out into thousands', () => {
    expect(parsePayload('[{"deviceId":"a"},{"deviceId":"b"},{"deviceId":"c"}]', options)).toHaveLength(3);
    expect(one('[{"deviceId":"a"},{"deviceId":"b"},{"deviceId":"c"},{"deviceId":"d"}]')).toMatchObject({
      kind: 'reject',
      reason: 'TOO_MANY_ELEMENTS',
      detail: '4 elements > 3',
    });
  });

  it('takes a payload with a "probe" field for what it is: a device payload (probes are told by signature)', () => {
    expect(one('{"deviceId":"a","probe":1700000000000}')).toEqual({ kind: 'message', deviceId: 'a' });
    expect(one('{"probe":1700000000000,"partition":"q"}')).toMatchObject({
      kind: 'reject',
      reason: 'MISSING_DEVICE_ID',
    });
  });

  it.each([
    ['not json', 'NOT_JSON'],
    ['42', 'NOT_AN_OBJECT'],
    ['null', 'NOT_AN_OBJECT'],
    ['[]', 'EMPTY_ARRAY'],
    ['{}', 'MISSING_DEVICE_ID'],
    ['{"deviceId":12}', 'INVALID_DEVICE_ID'],
    ['{"deviceId":"has space"}', 'INVALID_DEVICE_ID'],
    ['{"deviceId":"has#hash"}', 'INVALID_DEVICE_ID'],
    [`{"deviceId":"${'x'.repeat(129)}"}`, 'INVALID_DEVICE_ID'],
    ['{"deviceId":"a","deviceType":7}', 'INVALID_DEVICE_TYPE'],
    ['{"deviceId":"a","deviceType":"fridge"}', 'UNKNOWN_DEVICE_TYPE'],
    ['{"deviceId":"a","ts":-5}', 'INVALID_TIMESTAMP'],
    ['{"deviceId":"a","ts":"yesterday"}', 'INVALID_TIMESTAMP'],
    ['{"deviceId":"a","ts":true}', 'INVALID_TIMESTAMP'],
    ['{"deviceId":"a","ts":1e400}', 'INVALID_TIMESTAMP'],
    [`{"deviceId":"a","ts":${T0 + 2 * 3600_000}}`, 'TIMESTAMP_IN_FUTURE'],
    [`{"deviceId":"a","pad":"${'x'.repeat(2000)}"}`, 'PAYLOAD_TOO_LARGE'],
  ])('rejects %s as %s, keeping the body', (raw, reason) => {
    const parsed = one(raw);
    expect(parsed).toMatchObject({ kind: 'reject', reason, body: raw, encoding: 'utf8' });
  });

  it('rejects bytes that are not UTF-8, keeping them as base64', () => {
    const bytes = new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]);
    expect(one(bytes)).toMatchObject({ kind: 'reject', reason: 'NOT_UTF8', encoding: 'base64', body: 'e//+fQ==' });
  });
});
