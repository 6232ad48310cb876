// The detector's own control data in the ingest: watermark probes, and the entry time a redrive preserves. Whoever can
// write to the ingest queue or stream must not be able to forge either (a probe raises a watermark, and with it the
// cutoff by which devices are judged; an entry time says when a device was last heard of), and no device payload
// may ever be taken for one. So both count only with a valid HMAC under the deployment's key, over what they claim
// and the source they were read from. The key lives in the device table, which producers cannot read; message
// attributes or a marker field alone would not do, since a producer sets those freely.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export interface ProbeKeyStore {
  /** The deployment's key, once the dispatcher has created it. */
  get(): Promise<Uint8Array | undefined>;
  /** The key, created at random on first use (the dispatcher's side). */
  getOrCreate(): Promise<Uint8Array>;
}

/** A probe is a few dozen bytes: anything longer is not worth parsing as one. */
const MAX_PROBE_BYTES = 512;
const PREFIX = '{"probe":';

/** Binds the stamp to the queue or stream the probe was sent into, so a probe copied into another source is void. */
export function signProbe(key: Uint8Array, probeAt: number, source: string): string {
  return createHmac('sha256', key).update(`${probeAt}|${source}`).digest('base64url');
}

/** The probe record the dispatcher sends. `partition` names the queue or shard it was meant for, for people. */
export function probeBody(key: Uint8Array, probeAt: number, partition: string, source: string): string {
  return JSON.stringify({ probe: probeAt, partition, sig: signProbe(key, probeAt, source) });
}

const PREFIX_BYTES = Buffer.from(PREFIX);

/** Cheap test before the key is even looked up, run on every record: only a body shaped like `probeBody` can be a
 * probe, and bytes are compared without decoding them. */
export function mayBeProbe(body: string | Uint8Array): boolean {
  if (body.length > MAX_PROBE_BYTES) return false;
  if (typeof body === 'string') return body.startsWith(PREFIX);
  return body.length >= PREFIX_BYTES.length && PREFIX_BYTES.every((byte, i) => body[i] === byte);
}

/** The stamp of a genuine probe read from `source`, or undefined: then the record is a device payload like any other. */
export function readProbe(body: string | Uint8Array, source: string, key: Uint8Array): number | undefined {
  if (!mayBeProbe(body)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(typeof body === 'string' ? body : Buffer.from(body).toString('utf8'));
  } catch {
    return undefined;
  }
  const { probe, sig } = (json ?? {}) as { probe?: unknown; sig?: unknown };
  if (typeof probe !== 'number' || !Number.isSafeInteger(probe) || probe <= 0 || typeof sig !== 'string') {
    return undefined;
  }
  const expected = Buffer.from(signProbe(key, probe, source));
  const given = Buffer.from(sig);
  return given.length === expected.length && timingSafeEqual(given, expected) ? probe : undefined;
}

/** SQS message attributes of a redriven message: its original entry time, and the signature over it. */
export const ENTRY_ATTRIBUTES = { at: 'od-entered-at', sig: 'od-entered-sig' } as const;

/** An entry time claimed by a redriven record. */
export interface EntryClaim {
  at: number;
  sig: string;
}

/** Binds the original entry time to the body and the queue it is redriven into, so it cannot be lent to another. */
export function signEntry(key: Uint8Array, at: number, source: string, body: string): string {
  const digest = createHash('sha256').update(body).digest('base64url');
  return createHmac('sha256', key).update(`entered|${at}|${source}|${digest}`).digest('base64url');
}

/** The claimed entry time when its signature holds and it is no later than the record's own entry time. */
export function readEntry(
  claim: EntryClaim,
  record: { body: string | Uint8Array; enteredAt: number; source: string },
  key: Uint8Array,
): number | undefined {
  if (!Number.isSafeInteger(claim.at) || claim.at <= 0 || claim.at > record.enteredAt) return undefined;
  const body = typeof record.body === 'string' ? record.body : Buffer.from(record.body).toString('utf8');
  const expected = Buffer.from(signEntry(key, claim.at, record.source, body));
  const given = Buffer.from(claim.sig);
  return given.length === expected.length && timingSafeEqual(given, expected) ? claim.at : undefined;
}
