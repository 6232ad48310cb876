// Flap damping: a device whose transitions come too fast to act on is reported once as flapping instead of at every
// transition, and once more, with the state it settled in, when it has been stable for the window. The bookkeeping
// rides on the transition's own conditional write (the last K transition times and the flapping mark live on the
// device item), and the settling is found by the sweep through the deadline index, where a flapping device stays
// (offline ones too) at the time it would settle. No timer, no extra write per message.
import { type DeviceEvent, type DeviceState, policyOf, presumedLastSeen, transitionEvent } from './device.js';
import { type DeviceTypes, type FlapDamping, offlineAt } from './policy.js';
import { STATUS } from './table-schema.js';

export type FlapFields = Pick<DeviceState, 'transitions' | 'flapping'>;

export interface FlapRecord {
  fields: FlapFields;
  /** This transition made the device flap: it publishes `device.flapping` instead of its own event. */
  starts: boolean;
}

/** The damping of each device type that has it. */
export function flapDampingByType(types: DeviceTypes): Record<string, FlapDamping> {
  return Object.fromEntries(
    Object.entries(types.types).flatMap(([name, type]) => (type.flap ? [[name, type.flap] as const] : [])),
  );
}

/** The flap bookkeeping after a transition at `at` (the new `since`). A flapping device stays flapping until the
 * sweep settles it, even when its type's damping was switched off meanwhile: its held state must still go out. */
export function recordTransition(previous: FlapFields | undefined, at: number, damping?: FlapDamping): FlapRecord {
  const flapping = previous?.flapping;
  if (!damping) return { fields: flapping ? { flapping } : {}, starts: false };
  const transitions = [...(previous?.transitions ?? []), at].slice(-damping.transitions);
  if (flapping) return { fields: { transitions, flapping }, starts: false };
  const starts = transitions.length === damping.transitions && at - transitions[0]! <= damping.windowMs;
  return {
    fields: { transitions, ...(starts ? { flapping: { since: at, windowMs: damping.windowMs } } : {}) },
    starts,
  };
}

/** The flap fields a commit that is not a transition carries over unchanged. */
export function flapFieldsOf(state: FlapFields): FlapFields {
  return {
    ...(state.transitions ? { transitions: state.transitions } : {}),
    ...(state.flapping ? { flapping: state.flapping } : {}),
  };
}

type Transitioned = Pick<
  DeviceState,
  'deviceId' | 'deviceType' | 'seq' | 'since' | 'lastSeen' | 'timeoutMs' | 'status' | 'flapping' | 'tags'
>;

/** What a committed transition publishes: its own event; `device.flapping` instead when it starts the flapping;
 * nothing while the device flaps (the settled event reports where it ended up). */
export function transitionEvents(state: Transitioned, starts: boolean, detectedAt: number): DeviceEvent[] {
  if (starts && state.flapping) {
    return [
      {
        ...transitionEvent('device.flapping', state, detectedAt),
        status: state.status === STATUS.online ? 'ONLINE' : 'OFFLINE',
        windowMs: state.flapping.windowMs,
      },
    ];
  }
  if (state.flapping) return [];
  return [transitionEvent(state.status === STATUS.online ? 'device.online' : 'device.offline', state, detectedAt)];
}

/** The commit that produced `after` started the device's flapping (its own seq carries the flapping event). */
export function startedFlapping(after: Pick<DeviceState, 'seq' | 'outbox'>): boolean {
  return after.outbox.some((event) => event.type === 'device.flapping' && event.seq === after.seq);
}

/** When a flapping device settles if nothing changes: `windowMs` after its last transition. */
export function settlesAt(state: Pick<DeviceState, 'since' | 'flapping'>): number | undefined {
  return state.flapping ? state.since + state.flapping.windowMs : undefined;
}

/** Where a device sits in the deadline index: an online device at the time it would be offline (counted from its
 * skip horizon when that is later than `lastSeen`), brought forward to when it would settle if it flaps; an offline
 * device only while it flaps, at when it would settle. */
export function deadlineOf(
  state: Pick<DeviceState, 'status' | 'lastSeen' | 'since' | 'timeoutMs' | 'precisionMs' | 'flapping' | 'skipHorizon'>,
): number | undefined {
  const settles = settlesAt(state);
  if (state.status !== STATUS.online) return settles;
  const offline = offlineAt(presumedLastSeen(state), policyOf(state));
  return settles === undefined ? offline : Math.min(offline, settles);
}
