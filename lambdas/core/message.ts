// Turns one raw payload (an SQS body, a Kinesis record's data) into device messages or typed rejections. Pure: no
// clock, no I/O. Watermark probes never get here: a record is a probe only by its signature (probe.ts), so a device
// payload with any field at all, `probe` included, is a device payload.
import type { FieldMap } from './config.js';
import { tagValue } from './tags.js';

export const REJECT_REASONS = [
  'PAYLOAD_TOO_LARGE',
  'NOT_UTF8',
  'NOT_JSON',
  'NOT_AN_OBJECT',
  'EMPTY_ARRAY',
  'TOO_MANY_ELEMENTS',
  'MISSING_DEVICE_ID',
  'INVALID_DEVICE_ID',
  'INVALID_DEVICE_TYPE',
  'UNKNOWN_DEVICE_TYPE',
  'INVALID_TIMESTAMP',
  'TIMESTAMP_IN_FUTURE',
  'INVALID_TAG',
  // Not the parser's: a valid message of a device that is not registered, in allow-list mode (ingest.ts).
  'UNREGISTERED',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export interface Rejection {
  kind: 'reject';
  reason: RejectReason;
  detail: string;
  /** The payload (or, in an array, the element) that was rejected, as text; base64 when it was not UTF-8. */
  body: string;
  encoding: 'utf8' | 'base64';
}

export interface DeviceMessage {
  kind: 'message';
  deviceId: string;
  deviceType?: string;
  /** The device's own timestamp (epoch ms), when it sent one. */
  deviceTs?: number;
  /** The tags of the field map the message carries, when it carries any (tags.ts). */
  tags?: Record<string, string>;
}

export type Parsed = DeviceMessage | Rejection;

export interface ParseOptions {
  fieldMap: FieldMap;
  maxPayloadBytes: number;
  /** An array payload with more elements is rejected whole: one record must not fan out into thousands of writes. */
  maxArrayElements: number;
  knownDeviceTypes: ReadonlySet<string>;
  /** Pipeline entry time of the payload (epoch ms): device timestamps far after it are rejected. */
  enteredAt: number;
  maxFutureMs: number;
}

export const DEVICE_ID_PATTERN = /^[A-Za-z0-9._:@/-]{1,128}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });
/** Integers below this are taken as epoch seconds, not milliseconds (1e11 ms is 1973; 1e11 s is year 5138). */
const SECONDS_BELOW = 1e11;

export function parsePayload(raw: string | Uint8Array, options: ParseOptions): Parsed[] {
  const size = typeof raw === 'string' ? Buffer.byteLength(raw, 'utf8') : raw.byteLength;
  let text: string;
  if (typeof raw === 'string') {
    text = raw;
  } else {
    try {
      text = utf8.decode(raw);
    } catch {
      return [reject('NOT_UTF8', 'payload is not valid UTF-8', Buffer.from(raw).toString('base64'), 'base64')];
    }
  }
  if (size > options.maxPayloadBytes) {
    return [reject('PAYLOAD_TOO_LARGE', `${size} bytes > ${options.maxPayloadBytes}`, text)];
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return [reject('NOT_JSON', (error as Error).message, text)];
  }
  if (Array.isArray(json)) {
    // Aggregated record: each element stands on its own, so one bad element rejects only itself.
    if (json.length === 0) return [reject('EMPTY_ARRAY', 'an array payload must hold at least one message', text)];
    if (json.length > options.maxArrayElements) {
      return [reject('TOO_MANY_ELEMENTS', `${json.length} elements > ${options.maxArrayElements}`, text)];
    }
    return json.map((element) => parseObject(element, JSON.stringify(element) ?? String(element), options));
  }
  return [parseObject(json, text, options)];
}

function parseObject(json: unknown, text: string, options: ParseOptions): Parsed {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return reject('NOT_AN_OBJECT', `expected a JSON object, got ${json === null ? 'null' : typeof json}`, text);
  }
  const record = json as Record<string, unknown>;

  const { fieldMap } = options;
  const deviceId = readPath(record, fieldMap.deviceId);
  if (deviceId === undefined || deviceId === null) {
    return reject('MISSING_DEVICE_ID', `no "${fieldMap.deviceId}" field`, text);
  }
  if (typeof deviceId !== 'string' || !DEVICE_ID_PATTERN.test(deviceId)) {
    return reject('INVALID_DEVICE_ID', `"${fieldMap.deviceId}" must be 1..128 chars of [A-Za-z0-9._:@/-]`, text);
  }

  const message: DeviceMessage = { kind: 'message', deviceId };
  const deviceType = readPath(record, fieldMap.deviceType);
  if (deviceType !== undefined && deviceType !== null) {
    if (typeof deviceType !== 'string')
      return reject('INVALID_DEVICE_TYPE', `"${fieldMap.deviceType}" must be a string`, text);
    if (!options.knownDeviceTypes.has(deviceType)) {
      return reject('UNKNOWN_DEVICE_TYPE', `device type "${deviceType.slice(0, 64)}" is not configured`, text);
    }
    message.deviceType = deviceType;
  }

  const ts = readPath(record, fieldMap.ts);
  if (ts !== undefined && ts !== null) {
    const deviceTs = toEpochMs(ts);
    if (deviceTs === undefined) {
      return reject('INVALID_TIMESTAMP', `"${fieldMap.ts}" must be epoch ms/s or an ISO-8601 date`, text);
    }
    if (deviceTs > options.enteredAt + options.maxFutureMs) {
      return reject('TIMESTAMP_IN_FUTURE', `"${fieldMap.ts}" is more than ${options.maxFutureMs} ms ahead`, text);
    }
    message.deviceTs = deviceTs;
  }

  for (const [name, path] of Object.entries(fieldMap.tags ?? {})) {
    const raw = readPath(record, path);
    if (raw === undefined || raw === null) continue;
    const value = tagValue(raw);
    if (value === undefined) {
      return reject('INVALID_TAG', `tag "${name}" ("${path}") must be 1..64 chars of [A-Za-z0-9._:@/-]`, text);
    }
    message.tags = { ...message.tags, [name]: value };
  }
  return message;
}

function readPath(record: Record<string, unknown>, path: string): unknown {
  if (path in record) return record[path];
  let value: unknown = record;
  for (const key of path.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function toEpochMs(value: unknown): number | undefined {
  let ms: number;
  if (typeof value === 'number') {
    ms = value < SECONDS_BELOW ? value * 1000 : value;
  } else if (typeof value === 'string' && value.length <= 40) {
    ms = /^\d+(\.\d+)?$/.test(value) ? (toEpochMs(Number(value)) ?? Number.NaN) : Date.parse(value);
  } else {
    return undefined;
  }
  if (!Number.isFinite(ms) || ms < 0) return undefined;
  return Math.floor(ms);
}

function reject(reason: RejectReason, detail: string, body: string, encoding: 'utf8' | 'base64' = 'utf8'): Rejection {
  return { kind: 'reject', reason, detail, body, encoding };
}
