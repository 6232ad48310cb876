// One incident for a mass outage (docs/design.md §8.11). When, within a window W, at least `minDevices` devices of
// one group (a device type, or the value of a tag such as `site`) have gone offline, the dispatcher's evaluation opens
// an incident and publishes one `fleet.outage`; the individual offline events of the group are published a short
// hold after they were committed, by when the incident is known, and carry `cause: "outage"` and the incident id, so a
// pager subscription can drop them with a filter policy while dashboards still see every device. `fleet.recovered`
// follows once fewer than `minDevices` of the outage's devices are still offline.
//
// Counted from committed state, never from a counter: the evaluation reads the offline index's newest entries
// (`byOffline` is sorted by `since`), so a device counts once however often its transition was retried, duplicated
// or crashed around, and no key is written per transition (only the one incidents item, per incident change). An
// outage of our own pipeline commits no offline transition (the watermark holds the sweep), so it never opens one.
// No AWS here: ports only.
import { randomUUID } from 'node:crypto';
import { mapLimit } from './concurrency.js';
import type { DeviceEvent } from './device.js';
import { ConfigError } from './errors.js';
import type { EventPublisher, OfflineEntry, Page } from './ports.js';
import { offlinePartitions } from './table-schema.js';
import { TAG_NAME_PATTERN, type Tags } from './tags.js';

export interface OutageConfig {
  /** `deviceType`, or the name of a tag (of the field map) whose value makes the group. */
  groupBy: string;
  /** Devices of one group offline within `windowMs` that make an outage. */
  minDevices: number;
  windowMs: number;
  /** How long after its commit a device's offline event waits before it is published, so that it can carry the
   * incident its outage opens: at least one evaluation period (the dispatcher's minute) plus its run time. */
  holdMs: number;
}

export interface Incident {
  id: string;
  /** The group's value (a device type or a tag value). */
  group: string;
  openedAt: number;
  /** Since when the outage's devices are offline: the earliest and the latest counted. */
  firstSince: number;
  lastSince: number;
  /** Devices of the outage still offline at the last evaluation. */
  count: number;
  announced: boolean;
  /** Set when fewer than `minDevices` are still offline; kept while held events of the outage may still go out. */
  recoveredAt?: number;
  recoveryAnnounced?: boolean;
}

export type FleetEventType = 'fleet.outage' | 'fleet.recovered';

export interface FleetEvent {
  /** Deterministic: `<type>#<incidentId>`, so a duplicate is recognisable. */
  eventId: string;
  type: FleetEventType;
  incidentId: string;
  groupBy: string;
  group: string;
  /** Devices of the outage offline (fleet.outage) or still offline (fleet.recovered). */
  count: number;
  firstSince: number;
  lastSince: number;
  detectedAt: number;
}

export interface OutageStore {
  read(): Promise<{ incidents: Incident[]; version: number }>;
  /** False when another writer changed them since `version` was read. */
  write(incidents: Incident[], version: number): Promise<boolean>;
}

export interface FleetEventPublisher {
  publishFleet(events: FleetEvent[]): Promise<{ failed: FleetEvent[] }>;
}

export interface OutageDeps {
  config: OutageConfig;
  deviceTypes: readonly string[];
  store: OutageStore;
  /** The offline index, newest first (DeviceStore/AdminStore `queryOffline`). */
  offline: { queryOffline(partition: string, limit: number, before?: string): Promise<Page<OfflineEntry>> };
  publisher: FleetEventPublisher;
  now: () => number;
  newId?: () => string;
}

export interface OutageEvaluation {
  /** Devices offline within the window, by group. */
  recent: Record<string, number>;
  opened: number;
  recovered: number;
  announced: number;
  failed: number;
  /** Offline-index entries read. */
  read: number;
}

const PAGE = 1000;
/** A recovered incident is kept this long beyond the hold, so that the outage's last held events still carry it. */
const KEEP_RECOVERED_MS = 60_000;

export function parseOutageConfig(raw: unknown, setting: string): OutageConfig | undefined {
  if (raw === undefined) return undefined;
  const shape = '{"groupBy": "deviceType" | "<tag>", "minDevices": n, "windowSeconds"?: n, "holdSeconds"?: n}';
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(setting, `must be ${shape}`);
  const { groupBy, minDevices, windowSeconds = 300, holdSeconds = 120, ...rest } = raw as Record<string, unknown>;
  if (Object.keys(rest).length > 0) throw new ConfigError(setting, `unknown field ${Object.keys(rest)[0]}: ${shape}`);
  if (typeof groupBy !== 'string' || !(groupBy === 'deviceType' || TAG_NAME_PATTERN.test(groupBy))) {
    throw new ConfigError(setting, 'groupBy must be "deviceType" or a tag name');
  }
  const int = (value: unknown, name: string, min: number, max: number) => {
    if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
      throw new ConfigError(setting, `${name} must be a whole number in ${min}..${max}`);
    }
    return value as number;
  };
  return {
    groupBy,
    minDevices: int(minDevices, 'minDevices', 2, 10_000_000),
    windowMs: int(windowSeconds, 'windowSeconds', 60, 86_400) * 1000,
    holdMs: int(holdSeconds, 'holdSeconds', 90, 3600) * 1000,
  };
}

/** The group a device belongs to, undefined when it has none (no such tag). */
export function groupOf(
  config: Pick<OutageConfig, 'groupBy'>,
  device: { deviceType: string; tags?: Tags },
): string | undefined {
  return config.groupBy === 'deviceType' ? device.deviceType : device.tags?.[config.groupBy];
}

/** The dispatcher's evaluation, once a minute: count, open, update, recover, announce. A crash anywhere leaves the
 * incidents item as last written; the next evaluation counts again from the index and announces what is not yet
 * announced (at least once, with deterministic event ids). */
export async function evaluateOutages(deps: OutageDeps): Promise<OutageEvaluation> {
  const { config } = deps;
  const now = deps.now();
  const read = await deps.store.read();
  const result: OutageEvaluation = { recent: {}, opened: 0, recovered: 0, announced: 0, failed: 0, read: 0 };
  // What an earlier evaluation wrote but could not announce goes out first, whatever happens to this one's writes.
  const incidents = await announce(read.incidents, deps, now, result);
  const { version } = read;
  const open = incidents.filter((i) => i.recoveredAt === undefined);
  const windowStart = now - config.windowMs;
  const from = Math.min(windowStart, ...open.map((i) => i.firstSince));
  const entries = await offlineSince(deps, from);
  result.read = entries.length;

  const byGroup = new Map<string, OfflineEntry[]>();
  for (const entry of entries) {
    const group = groupOf(config, entry);
    if (group === undefined) continue;
    const list = byGroup.get(group);
    if (list) list.push(entry);
    else byGroup.set(group, [entry]);
  }
  const next: Incident[] = [];
  for (const incident of incidents) {
    if (incident.recoveredAt !== undefined) {
      // Gone once announced and past the time its held events could still go out.
      const keep = !incident.recoveryAnnounced || now < incident.recoveredAt + config.holdMs + KEEP_RECOVERED_MS;
      if (keep) next.push(incident);
      continue;
    }
    const still = (byGroup.get(incident.group) ?? []).filter((e) => e.since >= incident.firstSince);
    const lastSince = Math.max(incident.lastSince, ...still.map((e) => e.since));
    if (still.length < config.minDevices) {
      next.push({ ...incident, count: still.length, lastSince, recoveredAt: now, recoveryAnnounced: false });
      result.recovered++;
    } else next.push({ ...incident, count: still.length, lastSince });
  }
  for (const [group, list] of byGroup) {
    const recent = list.filter((e) => e.since >= windowStart);
    result.recent[group] = recent.length;
    if (recent.length < config.minDevices || open.some((i) => i.group === group)) continue;
    const sinces = recent.map((e) => e.since);
    next.push({
      id: (deps.newId ?? randomUUID)(),
      group,
      openedAt: now,
      firstSince: Math.min(...sinces),
      lastSince: Math.max(...sinces),
      count: recent.length,
      announced: false,
    });
    result.opened++;
  }
  // Another evaluation wrote meanwhile (a retried tick): it counted the same index, so this one stops here.
  if (!(await deps.store.write(next, version))) return result;
  const announced = await announce(next, deps, now, result);
  // A lost race or a crash here only means the next evaluation announces again: a duplicate with the same event id.
  if (announced !== next) await deps.store.write(announced, version + 1);
  return result;
}

/** Publishes the fleet events the incidents still owe (an opening, a recovery) and returns them marked announced
 * where that succeeded (the same array when there was nothing to publish). */
async function announce(
  incidents: Incident[],
  deps: OutageDeps,
  now: number,
  result: OutageEvaluation,
): Promise<Incident[]> {
  const due = incidents.flatMap((incident) => [
    ...(incident.announced ? [] : [fleetEvent('fleet.outage', incident, deps.config, now)]),
    ...(incident.recoveredAt !== undefined && !incident.recoveryAnnounced
      ? [fleetEvent('fleet.recovered', incident, deps.config, now)]
      : []),
  ]);
  if (due.length === 0) return incidents;
  const { failed } = await deps.publisher.publishFleet(due);
  result.failed += failed.length;
  result.announced += due.length - failed.length;
  const failedIds = new Set(failed.map((e) => e.eventId));
  return incidents.map((incident) => ({
    ...incident,
    announced: incident.announced || !failedIds.has(`fleet.outage#${incident.id}`),
    ...(incident.recoveredAt !== undefined
      ? { recoveryAnnounced: incident.recoveryAnnounced || !failedIds.has(`fleet.recovered#${incident.id}`) }
      : {}),
  }));
}

function fleetEvent(type: FleetEventType, incident: Incident, config: OutageConfig, now: number): FleetEvent {
  return {
    eventId: `${type}#${incident.id}`,
    type,
    incidentId: incident.id,
    groupBy: config.groupBy,
    group: incident.group,
    count: incident.count,
    firstSince: incident.firstSince,
    lastSince: incident.lastSince,
    detectedAt: now,
  };
}

/** Every offline-index entry with `since >= from`, each partition read newest first until older. */
async function offlineSince(deps: OutageDeps, from: number): Promise<OfflineEntry[]> {
  const partitions = deps.deviceTypes.flatMap(offlinePartitions);
  const pages = await mapLimit(partitions, 16, async (partition) => {
    const found: OfflineEntry[] = [];
    let before: string | undefined;
    for (;;) {
      const page = await deps.offline.queryOffline(partition, PAGE, before);
      const fresh = page.items.filter((e) => e.since >= from);
      found.push(...fresh);
      if (!page.next || fresh.length < page.items.length) return found;
      before = page.next;
    }
  });
  return pages.flat();
}

/** Wraps the event publisher of the functions that publish device events (sweep, ingest): a device's offline event
 * of a watched group waits in its outbox until `holdMs` after its commit (reported as held, not failed: the relay
 * keeps it, in order, for the re-publish); once due, it carries `cause: "outage"` and the incident id when an
 * incident of its group covers its `since`. The incidents are read at most every `cacheMs`. */
export class OutageAwarePublisher implements EventPublisher {
  private cached?: { at: number; incidents: Promise<Incident[]> };

  constructor(
    private readonly inner: EventPublisher,
    private readonly config: OutageConfig,
    private readonly incidents: Pick<OutageStore, 'read'>,
    private readonly now: () => number,
    private readonly cacheMs = 10_000,
  ) {}

  async publish(events: DeviceEvent[]): Promise<{ failed: DeviceEvent[]; held?: DeviceEvent[] }> {
    const now = this.now();
    const held: DeviceEvent[] = [];
    const due: DeviceEvent[] = [];
    for (const event of events) {
      const watched = event.type === 'device.offline' && !event.cause && groupOf(this.config, event) !== undefined;
      if (watched && event.detectedAt + this.config.holdMs > now) held.push(event);
      else due.push(event);
    }
    if (due.length === 0) return { failed: [], held };
    const incidents = due.some((e) => e.type === 'device.offline') ? await this.openIncidents(now) : [];
    const marked = due.map((event) => {
      const incident =
        event.type === 'device.offline' && !event.cause ? covering(incidents, this.config, event) : undefined;
      return incident ? { ...event, cause: 'outage' as const, incidentId: incident.id } : event;
    });
    const { failed } = await this.inner.publish(marked);
    const failedIds = new Set(failed.map((e) => e.eventId));
    return { failed: due.filter((e) => failedIds.has(e.eventId)), held };
  }

  private openIncidents(now: number): Promise<Incident[]> {
    if (!this.cached || now - this.cached.at >= this.cacheMs) {
      const incidents = this.incidents.read().then((read) => read.incidents);
      // A failed read is not kept: the next publish reads again (its events go out unmarked, the safe side).
      this.cached = { at: now, incidents: incidents.catch(() => []) };
    }
    return this.cached.incidents;
  }
}

function covering(incidents: readonly Incident[], config: OutageConfig, event: DeviceEvent): Incident | undefined {
  const group = groupOf(config, event);
  return incidents.find(
    (i) =>
      i.group === group && event.since >= i.firstSince && (i.recoveredAt === undefined || event.since <= i.recoveredAt),
  );
}
