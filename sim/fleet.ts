// The simulated fleet both local modes drive: device types, heartbeats with jitter, tags (sites, gateways), devices
// that go silent and come back (churn), mass disconnects, gateway outages, our own ingest stalls and the operator's
// maintenance windows, all from one seeded generator so a run can be repeated. It only says who sends what when; the
// live runtime sends through real queues, the virtual simulator builds Lambda events itself.
import { type Selector, selects } from '../lambdas/core/maintenance.js';
import { groupOf, type OutageConfig } from '../lambdas/core/outage.js';
import { random } from './random.js';
import {
  gatewayName,
  gatewayTypeOf,
  MESSAGE_TAG_FIELDS,
  PARENT_TAG,
  parseDuration,
  type Scenario,
  type SimDeviceType,
  siteName,
} from './scenario.js';

export interface SimDevice {
  index: number;
  id: string;
  type: string;
  policy: SimDeviceType;
  tags?: Record<string, string>;
  /** The message it sends: its id, type and tags (at MESSAGE_TAG_FIELDS). */
  body: string;
  /** Next time (ms from the run's start) it sends. */
  next: number;
  /** Silences [from, to) in ms from the start, sorted; the device sends again at `to`. */
  silences: Array<[number, number]>;
}

export interface DueMessage {
  device: SimDevice;
  /** ms from the run's start. */
  at: number;
}

export interface StallWindow {
  from: number;
  to: number;
}

/** A maintenance window of the scenario, opened at `from` (ms from the start) through the API until `to`. */
export interface PlannedWindow {
  from: number;
  to: number;
  selector: Selector;
  /** What it covers, in words: "site-1", "type meter", "the whole fleet". */
  group: string;
}

export interface GatewayOutage {
  gateway: string;
  from: number;
  to: number;
  /** Devices behind it, silent with it. */
  devices: number;
  /** Of those, the ones that stay silent longer. */
  stragglers: number;
}

/** A seeded fleet of devices and the run's stalls, for a run of `durationMs` (plus `tailMs` in which it keeps
 * sending so that detections due before the end can still land). */
export class Fleet {
  readonly devices: SimDevice[];
  readonly stalls: StallWindow[];
  readonly disconnects: Array<{ from: number; to: number; devices: number; site?: string }> = [];
  readonly windows: PlannedWindow[] = [];
  readonly gatewayOutages: GatewayOutage[] = [];
  private readonly heap: SimDevice[] = [];
  private readonly rand: () => number;

  constructor(
    readonly scenario: Scenario,
    readonly durationMs: number,
    seed: number,
    tailMs = 0,
  ) {
    this.rand = random(seed);
    const rand = this.rand;
    // A type of share 0 takes no part in the mix (a gateways-only type).
    const types = Object.entries(scenario.deviceTypes).filter(([, t]) => t.share > 0);
    const totalShare = types.reduce((n, [, t]) => n + t.share, 0);
    const endMs = durationMs + tailMs;
    const width = String(scenario.devices - 1).length;
    const { sites = 0, gateways = 0 } = scenario;
    const members = Array.from({ length: scenario.devices }, (_, index) => {
      // Types interleave by share, so any prefix of the fleet has the same mix.
      let pick = ((index * 0.618033988749895) % 1) * totalShare;
      let chosen = types[0]!;
      for (const entry of types) {
        chosen = entry;
        pick -= entry[1].share;
        if (pick < 0) break;
      }
      const [type, policy] = chosen;
      return this.device(index, `${type}-${String(index).padStart(width, '0')}`, type, policy, {
        ...(sites > 0 ? { site: siteName(index % sites) } : {}),
        ...(gateways > 0 ? { [PARENT_TAG]: gatewayName(index % gateways) } : {}),
      });
    });
    const gatewayType = gatewayTypeOf(scenario);
    const gatewayDevices = Array.from({ length: gateways }, (_, k) =>
      this.device(
        scenario.devices + k,
        gatewayName(k),
        gatewayType,
        scenario.deviceTypes[gatewayType]!,
        sites > 0 ? { site: siteName(k % sites) } : {},
      ),
    );
    this.devices = [...members, ...gatewayDevices];
    if (scenario.churn && scenario.churn.perMinute > 0) {
      const [min, max] = scenario.churn.silence.map((t) => parseDuration(t, durationMs)) as [number, number];
      for (const device of members) {
        for (let minute = 0; minute < endMs; minute += 60_000) {
          if (rand() >= scenario.churn.perMinute) continue;
          const from = minute + rand() * 60_000;
          device.silences.push([from, from + min + rand() * (max - min)]);
        }
      }
    }
    this.stalls = [];
    // A mass reconnect is a burst, not a single instant: spread over two seconds.
    const reconnect = () => rand() * 2_000;
    for (const event of scenario.events) {
      const from = parseDuration(event.at, durationMs);
      const to = from + parseDuration(event.for, durationMs);
      if (event.type === 'stall') {
        this.stalls.push({ from, to });
      } else if (event.type === 'maintenance') {
        const { site, deviceType } = event;
        this.windows.push({
          from,
          to,
          ...(site !== undefined
            ? { selector: { tags: { site } }, group: site }
            : deviceType !== undefined
              ? { selector: { deviceTypes: [deviceType] }, group: `type ${deviceType}` }
              : { selector: { all: true }, group: 'the whole fleet' }),
        });
      } else if (event.type === 'gateway-down') {
        const gateway = gatewayDevices[event.gateway ?? 0]!;
        gateway.silences.push([from, to]);
        const straggleMs = event.stragglers ? parseDuration(event.stragglers.for, durationMs) : 0;
        const behind = members.filter((d) => d.tags?.[PARENT_TAG] === gateway.id);
        let stragglers = 0;
        for (const device of behind) {
          const straggles = event.stragglers !== undefined && rand() < event.stragglers.fraction;
          if (straggles) stragglers++;
          device.silences.push([from, to + (straggles ? straggleMs : 0) + reconnect()]);
        }
        this.gatewayOutages.push({ gateway: gateway.id, from, to, devices: behind.length, stragglers });
      } else {
        const eligible = members.filter(
          (d) =>
            (!event.deviceType || d.type === event.deviceType) &&
            (event.site === undefined || d.tags?.site === event.site),
        );
        let count = 0;
        for (const device of eligible) {
          if (rand() >= event.fraction) continue;
          device.silences.push([from, to + reconnect()]);
          count++;
        }
        this.disconnects.push({ from, to, devices: count, ...(event.site !== undefined ? { site: event.site } : {}) });
      }
    }
    for (const device of this.devices) {
      device.silences.sort((a, b) => a[0] - b[0]);
      this.push(device);
    }
  }

  /** The ids of the devices a window's selector covers (maintenance.ts `selects`). */
  group(selector: Selector): Set<string> {
    return new Set(
      this.devices
        .filter((d) => selects(selector, { deviceId: d.id, deviceType: d.type, tags: d.tags }))
        .map((d) => d.id),
    );
  }

  /** Device id → its group under outage detection's `groupBy` (a device type, or a tag's value), for those with one. */
  groups(config: Pick<OutageConfig, 'groupBy'>): Map<string, string> {
    const groups = new Map<string, string>();
    for (const device of this.devices) {
      const group = groupOf(config, { deviceType: device.type, tags: device.tags });
      if (group !== undefined) groups.set(device.id, group);
    }
    return groups;
  }

  /** Device id → the gateway it is behind. */
  parents(): Map<string, string> {
    const parents = new Map<string, string>();
    for (const device of this.devices) {
      const parent = device.tags?.[PARENT_TAG];
      if (parent !== undefined) parents.set(device.id, parent);
    }
    return parents;
  }

  private device(
    index: number,
    id: string,
    type: string,
    policy: SimDeviceType,
    tags: Record<string, string>,
  ): SimDevice {
    const fields = Object.fromEntries(
      Object.entries(tags).map(([name, value]) => [MESSAGE_TAG_FIELDS[name as keyof typeof MESSAGE_TAG_FIELDS], value]),
    );
    return {
      index,
      id,
      type,
      policy,
      ...(Object.keys(tags).length > 0 ? { tags } : {}),
      body: JSON.stringify({ deviceId: id, deviceType: type, ...fields }),
      next: this.rand() * policy.heartbeatMs,
      silences: [],
    };
  }

  /** Every message due before `untilMs` (ms from the start), in time order, advancing each device's schedule. */
  due(untilMs: number): DueMessage[] {
    const out: DueMessage[] = [];
    for (let top = this.heap[0]; top && top.next < untilMs; top = this.heap[0]) {
      const device = this.pop()!;
      const at = device.next;
      // Silent: nothing until the silence ends, then the device speaks at once (its reconnect message).
      for (let s = device.silences[0]; s && device.next >= s[0]; s = device.silences[0]) {
        device.silences.shift();
        device.next = Math.max(device.next, s[1]);
      }
      if (device.next > at) {
        this.push(device);
        continue;
      }
      out.push({ device, at });
      const jitter = this.scenario.jitter * (2 * this.rand() - 1);
      device.next = at + device.policy.heartbeatMs * (1 + jitter);
      this.push(device);
    }
    return out;
  }

  stalledAt(ms: number): boolean {
    return this.stalls.some((s) => ms >= s.from && ms < s.to);
  }

  private push(device: SimDevice) {
    const heap = this.heap;
    heap.push(device);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.next <= device.next) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = device;
  }

  private pop(): SimDevice | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (!top || !last || heap.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = last;
      let at = -1;
      if (l < heap.length && heap[l]!.next < smallest.next) {
        smallest = heap[l]!;
        at = l;
      }
      if (r < heap.length && heap[r]!.next < smallest.next) {
        smallest = heap[r]!;
        at = r;
      }
      if (at < 0) break;
      heap[i] = smallest;
      i = at;
    }
    heap[i] = last;
    return top;
  }
}
