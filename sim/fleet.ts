// The simulated fleet both local modes drive: device types, heartbeats with jitter, devices that go silent and come
// back (churn), mass disconnects, and our own ingest stalls, all from one seeded generator so a run can be repeated.
// It only says who sends when; the live runtime sends through real queues, the virtual simulator builds Lambda
// events itself.
import { random } from './random.js';
import { parseDuration, type Scenario, type SimDeviceType } from './scenario.js';

export interface SimDevice {
  index: number;
  id: string;
  type: string;
  policy: SimDeviceType;
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

/** A seeded fleet of devices and the run's stalls, for a run of `durationMs` (plus `tailMs` in which it keeps
 * sending so that detections due before the end can still land). */
export class Fleet {
  readonly devices: SimDevice[];
  readonly stalls: StallWindow[];
  readonly disconnects: Array<{ from: number; to: number; devices: number }> = [];
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
    const types = Object.entries(scenario.deviceTypes);
    const totalShare = types.reduce((n, [, t]) => n + t.share, 0);
    const endMs = durationMs + tailMs;
    const width = String(scenario.devices - 1).length;
    this.devices = Array.from({ length: scenario.devices }, (_, index) => {
      // Types interleave by share, so any prefix of the fleet has the same mix.
      let pick = ((index * 0.618033988749895) % 1) * totalShare;
      let chosen = types[0]!;
      for (const entry of types) {
        chosen = entry;
        pick -= entry[1].share;
        if (pick < 0) break;
      }
      const [type, policy] = chosen;
      return {
        index,
        id: `${type}-${String(index).padStart(width, '0')}`,
        type,
        policy,
        next: rand() * policy.heartbeatMs,
        silences: [],
      };
    });
    if (scenario.churn && scenario.churn.perMinute > 0) {
      const [min, max] = scenario.churn.silence.map((t) => parseDuration(t, durationMs)) as [number, number];
      for (const device of this.devices) {
        for (let minute = 0; minute < endMs; minute += 60_000) {
          if (rand() >= scenario.churn.perMinute) continue;
          const from = minute + rand() * 60_000;
          device.silences.push([from, from + min + rand() * (max - min)]);
        }
      }
    }
    this.stalls = [];
    for (const event of scenario.events) {
      const from = parseDuration(event.at, durationMs);
      const to = from + parseDuration(event.for, durationMs);
      if (event.type === 'stall') {
        this.stalls.push({ from, to });
        continue;
      }
      const eligible = this.devices.filter((d) => !event.deviceType || d.type === event.deviceType);
      let count = 0;
      for (const device of eligible) {
        if (rand() >= event.fraction) continue;
        // A mass reconnect is a burst, not a single instant: spread over two seconds.
        device.silences.push([from, to + rand() * 2_000]);
        count++;
      }
      this.disconnects.push({ from, to, devices: count });
    }
    for (const device of this.devices) {
      device.silences.sort((a, b) => a[0] - b[0]);
      this.push(device);
    }
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
