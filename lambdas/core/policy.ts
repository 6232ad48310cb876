import { ConfigError } from './errors.js';

/** How a device type is watched. */
export interface Policy {
  /** Silence after which a device is offline. */
  timeoutMs: number;
  /** Extra lateness allowed so that writes can be skipped (write coalescing); 0 = detect exactly at the timeout. */
  precisionMs: number;
}

/** Flap damping: after `transitions` transitions within `windowMs`, one `device.flapping` event replaces the
 * transition events until the device has been stable for `windowMs` (see flap.ts). */
export interface FlapDamping {
  transitions: number;
  windowMs: number;
}

export interface DeviceTypeConfig extends Policy {
  /** The devices' usual interval between messages, if known: lets configuration check the watermark tolerance. */
  heartbeatMs?: number;
  /** Off when absent. */
  flap?: FlapDamping;
}

export interface DeviceTypes {
  defaultType: string;
  types: Readonly<Record<string, DeviceTypeConfig>>;
}

export const DEVICE_TYPE_PATTERN = /^[A-Za-z0-9._:@/-]{1,64}$/;
const MAX_TIMEOUT_MS = 30 * 24 * 3600_000;
/** A message that names no type, for a device the ingest container does not know, is written on condition that the
 * stored policy is the configured one of the stored type: one term per device type (see `typePolicies`). 32 terms
 * make that condition about 2.3 KB with 200 operators, within DynamoDB's 4 KB and 300 per expression. */
export const MAX_DEVICE_TYPES = 32;

export function parseDeviceTypes(raw: unknown, defaultType: string): DeviceTypes {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError('DEVICE_TYPES', 'must be a JSON object {"<type>": {"timeoutMs": n, "precisionMs": n}}');
  }
  const count = Object.keys(raw).length;
  if (count > MAX_DEVICE_TYPES) {
    throw new ConfigError(
      'DEVICE_TYPES',
      `has ${count} device types, at most ${MAX_DEVICE_TYPES} are supported: a message that names no type is ` +
        'written on condition that the stored policy is the one configured for the stored type, one term per type, ' +
        "and that condition must stay within DynamoDB's expression limits",
    );
  }
  const types: Record<string, DeviceTypeConfig> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (!DEVICE_TYPE_PATTERN.test(name)) throw new ConfigError('DEVICE_TYPES', `invalid device type name "${name}"`);
    const v = value as Partial<DeviceTypeConfig> | null;
    const timeoutMs = v?.timeoutMs;
    const precisionMs = v?.precisionMs ?? 0;
    if (!Number.isInteger(timeoutMs) || (timeoutMs as number) <= 0 || (timeoutMs as number) > MAX_TIMEOUT_MS) {
      throw new ConfigError('DEVICE_TYPES', `${name}.timeoutMs must be a whole number of ms in 1..${MAX_TIMEOUT_MS}`);
    }
    if (!Number.isInteger(precisionMs) || precisionMs < 0 || precisionMs > MAX_TIMEOUT_MS) {
      throw new ConfigError('DEVICE_TYPES', `${name}.precisionMs must be a whole number of ms >= 0`);
    }
    const heartbeatMs = v?.heartbeatMs;
    if (heartbeatMs !== undefined && (!Number.isInteger(heartbeatMs) || heartbeatMs <= 0)) {
      throw new ConfigError('DEVICE_TYPES', `${name}.heartbeatMs must be a positive whole number of ms`);
    }
    const flap = v?.flap === undefined ? undefined : parseFlap(name, v.flap);
    types[name] = {
      timeoutMs: timeoutMs as number,
      precisionMs,
      ...(heartbeatMs ? { heartbeatMs } : {}),
      ...(flap ? { flap } : {}),
    };
  }
  if (!types[defaultType]) throw new ConfigError('DEFAULT_DEVICE_TYPE', `"${defaultType}" is not in DEVICE_TYPES`);
  return { defaultType, types };
}

const MAX_FLAP_TRANSITIONS = 100;

function parseFlap(name: string, raw: unknown): FlapDamping {
  const flap = raw as Partial<FlapDamping> | null;
  const { transitions, windowMs } = flap ?? {};
  const keys = typeof raw === 'object' && raw !== null ? Object.keys(raw) : [];
  if (
    !Number.isInteger(transitions) ||
    (transitions as number) < 2 ||
    (transitions as number) > MAX_FLAP_TRANSITIONS ||
    !Number.isInteger(windowMs) ||
    (windowMs as number) <= 0 ||
    (windowMs as number) > MAX_TIMEOUT_MS ||
    keys.some((key) => key !== 'transitions' && key !== 'windowMs')
  ) {
    throw new ConfigError(
      'DEVICE_TYPES',
      `${name}.flap must be {"transitions": 2..${MAX_FLAP_TRANSITIONS}, "windowMs": 1..${MAX_TIMEOUT_MS}}`,
    );
  }
  return { transitions: transitions as number, windowMs: windowMs as number };
}

/** The latest time a device last seen at `lastSeen` may still be considered online. Detection happens at or
 * after it, never before: `precisionMs` is the lateness we accept in exchange for skipped writes. */
export function offlineAt(lastSeen: number, policy: Policy): number {
  return lastSeen + policy.timeoutMs + policy.precisionMs;
}

const policiesByTypes = new WeakMap<DeviceTypes, Readonly<Record<string, Policy>>>();

/** The configured policy of every device type, by name (computed once per configuration). */
export function typePolicies(types: DeviceTypes): Readonly<Record<string, Policy>> {
  let policies = policiesByTypes.get(types);
  if (!policies) {
    policies = Object.fromEntries(
      Object.entries(types.types).map(([name, { timeoutMs, precisionMs }]) => [name, { timeoutMs, precisionMs }]),
    );
    policiesByTypes.set(types, policies);
  }
  return policies;
}

export function samePolicy(a: Policy, b: Policy): boolean {
  return a.timeoutMs === b.timeoutMs && a.precisionMs === b.precisionMs;
}
