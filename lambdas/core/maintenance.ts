// Maintenance windows for a group of devices: while a window covers a device, its offline transition waits, parked
// in the deadline index, and a device still silent at the window's end is reported then, with `since` = when it
// really went silent (the per-device mute's semantics, admin.ts `mute`, for a whole group and with no write per
// device). The sweep judges by the window's times, read from one control item once per job; the one-time schedules
// at its start and end (EventBridge Scheduler in AWS) only move it along its life (scheduled → active → gone), so a
// late or lost schedule can neither leak an alert nor prolong a window. No AWS here: ports only.
import { randomUUID } from 'node:crypto';
import type { DeviceState } from './device.js';
import { ApiError } from './errors.js';
import { DEVICE_ID_PATTERN } from './message.js';
import { MAX_TAGS, TAG_NAME_PATTERN, TAG_VALUE_PATTERN, type Tags } from './tags.js';

/** Which devices a window covers: every device, devices of some types, devices carrying all of some tags, or a list. */
export type Selector = { all: true } | { deviceTypes: string[] } | { tags: Tags } | { deviceIds: string[] };

export interface MaintenanceWindow {
  id: string;
  selector: Selector;
  /** Epoch ms: devices that go offline from here on are held. */
  from: number;
  /** Epoch ms: held devices still silent are reported once the sweep's cutoff passes it. Absent: until cancelled. */
  until?: number;
  reason: string;
  createdAt: number;
  /** `scheduled` until its start schedule fired (or it was created already started), then `active`. */
  state: 'scheduled' | 'active';
}

export interface MaintenanceStore {
  /** Every window not yet ended, strongly consistent, with the version a write must name. */
  read(): Promise<{ windows: MaintenanceWindow[]; version: number }>;
  /** Replaces the windows while the version is still `version`; false when another writer got there first. */
  write(windows: MaintenanceWindow[], version: number): Promise<boolean>;
}

/** The one-time schedules of a window's start and end. */
export interface WindowSchedules {
  /** One-time schedules at the window's edges (`windowEdges`). */
  create(window: MaintenanceWindow, now: number): Promise<void>;
  /** Deletes the window's schedules; ones already gone are fine. */
  remove(windowId: string): Promise<void>;
}

/** What a schedule (or its local stand-in) delivers to the detector at a window's start or end. */
export interface WindowEdge {
  windowId: string;
  edge: 'start' | 'end';
}

/** The schedules a window needs: its start when still to come (else it was created active), its end when it has one. */
export function windowEdges(window: MaintenanceWindow, now: number): Array<{ at: number; edge: WindowEdge }> {
  const edges: Array<{ at: number; edge: WindowEdge }> = [];
  if (window.from > now) edges.push({ at: window.from, edge: { windowId: window.id, edge: 'start' } });
  if (window.until !== undefined) edges.push({ at: window.until, edge: { windowId: window.id, edge: 'end' } });
  return edges;
}

export interface MaintenanceDeps {
  maintenance: MaintenanceStore;
  schedules: WindowSchedules;
  now: () => number;
  /** @default randomUUID */
  newId?: () => string;
}

/** Windows kept at once: the sweep reads them all with every job, from one item. */
export const MAX_WINDOWS = 100;
export const MAX_SELECTED_DEVICES = 100;
const MAX_REASON_CHARS = 200;
const MAX_WINDOW_MS = 366 * 24 * 3600_000;
const MAX_AHEAD_MS = 365 * 24 * 3600_000;
/** How often the sweep looks again at a device held by a window: how late a device silent through a window that ends
 * early (cancelled, or open-ended) can be reported after the end, at one parking write per look. */
export const DEFAULT_RECHECK_MS = 300_000;
const MAX_WRITE_ATTEMPTS = 5;

export type WindowRequest = Pick<MaintenanceWindow, 'selector' | 'from' | 'until' | 'reason'>;

/** Checks a POST /maintenance body; every refusal is an ApiError (4xx), before anything is read or written. */
export function parseWindowRequest(
  body: Record<string, unknown>,
  now: number,
  knownTypes: ReadonlySet<string>,
): WindowRequest {
  const selector = parseSelector(body.selector, knownTypes);
  const from = body.from === undefined ? now : parseTime(body.from, 'from');
  const until = body.until === undefined ? undefined : parseTime(body.until, 'until');
  if (from > now + MAX_AHEAD_MS) throw new ApiError('bad-time', 'from must be within a year from now');
  if (until !== undefined) {
    if (until <= from) throw new ApiError('bad-time', 'until must be after from');
    if (until <= now) throw new ApiError('bad-time', 'until must be in the future');
    if (until - from > MAX_WINDOW_MS) throw new ApiError('bad-time', 'a window lasts at most a year (366 days)');
  }
  const reason = body.reason ?? '';
  if (typeof reason !== 'string' || reason.length > MAX_REASON_CHARS) {
    throw new ApiError('bad-selector', `reason must be a string of at most ${MAX_REASON_CHARS} characters`);
  }
  return { selector, from, ...(until !== undefined ? { until } : {}), reason };
}

function parseSelector(raw: unknown, knownTypes: ReadonlySet<string>): Selector {
  const fail = (why: string): never => {
    throw new ApiError(
      'bad-selector',
      `selector ${why}: one of {"all": true}, {"deviceTypes": [..]}, {"tags": {name: value}}, {"deviceIds": [..]}`,
    );
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('must be an object');
  const entries = Object.entries(raw);
  if (entries.length !== 1) return fail('must have exactly one field');
  const [kind, value] = entries[0]!;
  switch (kind) {
    case 'all':
      return value === true ? { all: true } : fail('all must be true');
    case 'deviceTypes': {
      const types = stringList(value, 1, 50) ?? fail('deviceTypes must be a list of 1..50 names');
      const unknown = types.find((type) => !knownTypes.has(type));
      if (unknown !== undefined) throw new ApiError('unknown-device-type', `unknown device type "${unknown}"`);
      return { deviceTypes: types };
    }
    case 'tags': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('tags must be an object');
      const tags = Object.entries(value);
      if (tags.length === 0 || tags.length > MAX_TAGS) return fail(`tags must name 1..${MAX_TAGS} tags`);
      for (const [name, tag] of tags) {
        if (!TAG_NAME_PATTERN.test(name) || typeof tag !== 'string' || !TAG_VALUE_PATTERN.test(tag)) {
          return fail(`tag ${name.slice(0, 40)}: names are identifiers, values 1..64 chars of [A-Za-z0-9._:@/-]`);
        }
      }
      return { tags: Object.fromEntries(tags) as Tags };
    }
    case 'deviceIds': {
      const ids =
        stringList(value, 1, MAX_SELECTED_DEVICES) ?? fail(`deviceIds must be a list of 1..${MAX_SELECTED_DEVICES}`);
      if (!ids.every((id) => DEVICE_ID_PATTERN.test(id))) return fail('deviceIds must be valid device ids');
      return { deviceIds: ids };
    }
    default:
      return fail(`has an unknown field "${kind.slice(0, 40)}"`);
  }
}

function stringList(value: unknown, min: number, max: number): string[] | undefined {
  if (!Array.isArray(value) || value.length < min || value.length > max) return undefined;
  return value.every((v) => typeof v === 'string') ? [...new Set(value as string[])] : undefined;
}

/** A time an operator gives: whole epoch ms or an ISO-8601 time; NaN for anything else. */
export function instantOf(value: unknown): number {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : Number.NaN;
  return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(value) ? Date.parse(value) : Number.NaN;
}

function parseTime(value: unknown, field: string): number {
  const t = instantOf(value);
  if (!Number.isFinite(t) || t < 0) throw new ApiError('bad-time', `${field} must be an ISO-8601 time or epoch ms`);
  return t;
}

export function selects(selector: Selector, device: Pick<DeviceState, 'deviceId' | 'deviceType' | 'tags'>): boolean {
  if ('all' in selector) return true;
  if ('deviceTypes' in selector) return selector.deviceTypes.includes(device.deviceType);
  if ('deviceIds' in selector) return selector.deviceIds.includes(device.deviceId);
  return Object.entries(selector.tags).every(([name, value]) => device.tags?.[name] === value);
}

/** Until when the offline transition of `device`, offline since `since`, waits at `cutoff`: the next time the sweep
 * looks again (the end of the window that holds it, or the next recheck, whichever is first), or undefined when no
 * window holds it. A window holds a device of its group that went offline within it while the cutoff is inside it. */
export function heldUntil(
  windows: readonly MaintenanceWindow[],
  device: Pick<DeviceState, 'deviceId' | 'deviceType' | 'tags'>,
  since: number,
  cutoff: number,
  recheckMs: number,
): number | undefined {
  let until: number | undefined;
  for (const window of windows) {
    const end = window.until ?? Number.POSITIVE_INFINITY;
    if (since < window.from || since >= end || cutoff >= end || !selects(window.selector, device)) continue;
    until = Math.max(until ?? 0, end);
  }
  return until === undefined ? undefined : Math.min(until, cutoff + recheckMs);
}

/** POST /maintenance: the window, then its schedules; when they cannot be created the window is taken back, so that
 * no window is left that only an operator could end. */
export async function addWindow(deps: MaintenanceDeps, request: WindowRequest): Promise<MaintenanceWindow> {
  const now = deps.now();
  const window: MaintenanceWindow = {
    id: (deps.newId ?? randomUUID)(),
    ...request,
    createdAt: now,
    state: request.from <= now ? 'active' : 'scheduled',
  };
  await change(deps.maintenance, (windows) => {
    if (windows.length >= MAX_WINDOWS) {
      throw new ApiError('conflict', `at most ${MAX_WINDOWS} maintenance windows at once: end one first`);
    }
    return [...windows, window];
  });
  try {
    await deps.schedules.create(window, now);
  } catch (error) {
    await change(deps.maintenance, (windows) => windows.filter((w) => w.id !== window.id));
    throw error;
  }
  return window;
}

export async function listWindows(deps: Pick<MaintenanceDeps, 'maintenance'>): Promise<MaintenanceWindow[]> {
  return (await deps.maintenance.read()).windows;
}

/** DELETE /maintenance/{id}: cancels a window not yet started, ends one in force now. Its held devices still silent
 * are reported at the sweep's next look at them (within the recheck interval). */
export async function endWindow(deps: MaintenanceDeps, windowId: string): Promise<MaintenanceWindow> {
  let ended: MaintenanceWindow | undefined;
  await change(deps.maintenance, (windows) => {
    ended = windows.find((w) => w.id === windowId);
    if (!ended) throw new ApiError('not-found', `no maintenance window ${windowId}`);
    return windows.filter((w) => w.id !== windowId);
  });
  await deps.schedules.remove(windowId);
  return ended!;
}

/** A schedule fired: the window becomes active at its start and goes at its end. An edge for a window that is gone
 * (ended early, or never written) changes nothing. */
export async function applyEdge(store: MaintenanceStore, edge: WindowEdge): Promise<boolean> {
  let changed = false;
  await change(store, (windows) => {
    const window = windows.find((w) => w.id === edge.windowId);
    changed = window !== undefined && (edge.edge === 'end' || window.state !== 'active');
    if (!changed) return undefined;
    return edge.edge === 'end'
      ? windows.filter((w) => w.id !== edge.windowId)
      : windows.map((w) => (w.id === edge.windowId ? { ...w, state: 'active' as const } : w));
  });
  return changed;
}

/** What a schedule delivers, checked: anything else is not an edge. */
export function parseWindowEdge(event: unknown): WindowEdge | undefined {
  const raw = (event as { maintenance?: { windowId?: unknown; edge?: unknown } } | null)?.maintenance;
  if (typeof raw !== 'object' || raw === null) return undefined;
  const { windowId, edge } = raw;
  if (typeof windowId !== 'string' || windowId.length > 64 || (edge !== 'start' && edge !== 'end')) return undefined;
  return { windowId, edge };
}

/** Read, change, write conditional on the version read; again on a concurrent write. `decide` returns undefined for
 * no change. */
async function change(
  store: MaintenanceStore,
  decide: (windows: MaintenanceWindow[]) => MaintenanceWindow[] | undefined,
): Promise<void> {
  for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
    const { windows, version } = await store.read();
    const next = decide(windows);
    if (next === undefined || (await store.write(next, version))) return;
  }
  throw new ApiError('conflict', 'maintenance windows kept changing: try again');
}
