// Publishing committed transitions. The transition and its event are committed in one write (the event sits in
// the device's outbox); publishing happens after the commit and the outbox is cleared after publishing. A crash
// in between leaves the event in the outbox, from where the sweep re-publishes it: at least once, never lost.
//
// One publisher per outbox at a time, so that a healthy pipeline publishes each event once: a committer that finds
// events of an earlier transition still pending and young (their committer is publishing them right now) leaves
// its own to that publisher, whose clear then fails on the newer event and who reads the outbox again and publishes
// the rest, in seq order. Only outboxes older than the re-publish delay are taken over whole.
//
// Bounded while publishing fails (SNS or its key down for a day): the device item keeps at most OUTBOX_ITEM_MAX
// events, since every write of the item (each heartbeat included) is billed by its size and an item cannot pass
// 400 KB. A commit that would append beyond that first moves the events already there to a spill item
// (`#outbox/<deviceId>/<n>`), in one transaction with the device item that requires its outbox to be as read; the
// item lists its pending spills as a range of numbers. Publishing takes the spills, oldest first, then the outbox;
// clearing deletes the published spill items before unlisting them, so a listed spill either exists or was
// published (a relay skips one that is gone).
import { mapLimit, mapSettled } from './concurrency.js';
import type { DeviceEvent, DeviceState } from './device.js';
import type { Billed, CommitOutcome, CommitRequest, DeviceStore, EventPublisher } from './ports.js';

/** Events the device item's outbox holds at most: with them the item stays around 1 KB however long publishing
 * fails, so a heartbeat costs 1–2 write units (the 24 h outages of test/unit/outbox-outage.test.ts: at most 994 B
 * and 1 unit without flap damping, 1,123 B and 2 units with its bookkeeping; about the same on DynamoDB Local). */
export const OUTBOX_ITEM_MAX = 4;

/** Clears and reads one relay runs at once. */
const RELAY_CONCURRENCY = 16;

/** Spill items `DeviceStore.get` reads at once (one BatchGetItem of small items); a relay with more pending takes
 * them batch by batch. */
export const SPILLS_PER_READ = 8;

export type OutboxView = Pick<DeviceState, 'outbox' | 'outboxSpills'>;

export type SpillOutcome = Billed & ({ spilled: true } | { spilled: false; current: DeviceState | undefined });

/** The two writes a store's commit is made of. */
export interface CommitSteps {
  /** The commit's conditional write; with `room`, it also requires the outbox to hold at most `room` events. */
  write(request: CommitRequest, room: number | undefined): Promise<CommitOutcome>;
  /** Moves the outbox as `read` (not empty) to spill item number `read.outboxSpills?.to ?? 0` and lists it, in one
   * transaction, conditional on the outbox still being as read; otherwise returns the stored item. */
  spill(deviceId: string, read: OutboxView): Promise<SpillOutcome>;
}

/** Attempts of a commit whose outbox changed between the caller's read and the write (a relay cleared it, or it was
 * fuller than the caller said). */
const COMMIT_ATTEMPTS = 3;

/** A store's `commit`: spills first when appending would take the outbox past OUTBOX_ITEM_MAX (known from the
 * caller's read, or from a write whose room condition failed), then writes. The failed write of a commit whose own
 * condition no longer holds returns the stored item, as a single conditional write would. */
export async function commitSpilling(request: CommitRequest, steps: CommitSteps): Promise<CommitOutcome> {
  const appends = request.append.length > 0;
  const room = appends ? OUTBOX_ITEM_MAX - request.append.length : undefined;
  const overflows = (view: OutboxView | undefined): view is OutboxView =>
    room !== undefined && view !== undefined && view.outbox.length > room;
  let read = request.read;
  let units = 0;
  for (let attempt = 1; ; attempt++) {
    if (overflows(read)) {
      const spilled = await steps.spill(request.deviceId, read);
      units += spilled.units ?? 0;
      if (!spilled.spilled) {
        // The outbox changed since the read: decide again from the item as it is now.
        const { current } = spilled;
        if (current === undefined || attempt >= COMMIT_ATTEMPTS) return { applied: false, current, units };
        read = current;
        continue;
      }
    }
    const out = await steps.write(request, room);
    units += out.units ?? 0;
    // Failed with an outbox over the room: the room condition may be why (the caller read less, or said nothing).
    if (out.applied || attempt >= COMMIT_ATTEMPTS || !overflows(out.current)) return { ...out, units };
    read = out.current;
  }
}

/** Spills `[from, to)` still listed. */
export function pendingSpills(state: Pick<DeviceState, 'outboxSpills'>): boolean {
  const spills = state.outboxSpills;
  return spills !== undefined && spills.from < spills.to;
}

/** Anything committed and not confirmed published: in the outbox or in spill items. */
export function hasPendingEvents(state: Pick<DeviceState, 'outbox' | 'outboxSpills'>): boolean {
  return state.outbox.length > 0 || pendingSpills(state);
}

export interface RelayResult {
  published: number;
  /** Devices whose events could not all be published: their outbox stays for the re-publish. */
  failed: number;
  uncleared: number;
  /** Devices left to the live publisher of their earlier events. */
  handedOver: number;
  /** Devices with spilled events, left to the re-publish (their events go out after the spilled ones, which only a
   * read of the spill items finds; spills exist only after publishing failed). */
  deferred: number;
  /** Devices whose next event the publisher holds back on purpose (outage.ts): left in the outbox, not a failure. */
  held: number;
}

export interface RelayOptions {
  /** The committer's side: events of earlier transitions detected after `now - liveForMs` have a live publisher.
   * Without it (the re-publish), every outbox is published whole. */
  handover?: { now: number; liveForMs: number };
}

/** Clear rounds after newer events turned up or spills were left: more means a device transitioning faster than we
 * publish, or a backlog of spills, which the re-publish then takes over. */
const MAX_ROUNDS = 4;

type RelayedDevice = Pick<DeviceState, 'deviceId' | 'outbox' | 'seq' | 'outboxSpills'>;

/** One device's pending events as a relay round sees them. */
interface Relay {
  deviceId: string;
  /** Loaded spills, one list per spill, numbered from `spillsFrom`. */
  spills: DeviceEvent[][];
  spillsFrom: number;
  /** Whether the outbox is in `events`: only once every pending spill was loaded, since it comes after them. */
  withOutbox: boolean;
  /** What to publish, in seq order: the spills' events, then the outbox's; none already published by this relay. */
  events: DeviceEvent[];
  /** The newest seq this relay published for the device. */
  upTo: number;
}

/** Publishes every pending event of the given devices (spilled, then in the outbox), each device's events in seq
 * order, then clears what was published; a clear that finds newer events (or spills left) publishes those too.
 * Events of different devices go out together, round by round. */
export async function relayOutboxes(
  devices: RelayedDevice[],
  store: Pick<DeviceStore, 'clearOutbox' | 'get'>,
  publisher: EventPublisher,
  options: RelayOptions = {},
): Promise<RelayResult> {
  const result: RelayResult = { published: 0, failed: 0, uncleared: 0, handedOver: 0, deferred: 0, held: 0 };
  let pending = devices.flatMap((device) => {
    if (!hasPendingEvents(device)) return [];
    const relay = relayOf(device, 0);
    if (!relay) {
      result.deferred++;
      return [];
    }
    if (options.handover && hasLivePublisher(device, options.handover)) {
      result.handedOver++;
      return [];
    }
    return [relay];
  });
  for (let round = 0; round < MAX_ROUNDS && pending.length > 0; round++) {
    const { counts, held } = await publishInOrder(
      pending.map((relay) => relay.events),
      publisher,
      result,
    );
    const blocked = pending.filter((relay, i) => counts[i]! < relay.events.length);
    result.held += held.size;
    result.failed += blocked.length - held.size;
    const done = pending.filter((relay, i) => counts[i]! === relay.events.length);
    for (const [i, relay] of pending.entries()) {
      const count = counts[i]!;
      if (count > 0) relay.upTo = relay.events[count - 1]!.seq;
    }
    // A blocked device keeps what it published of its spills cleared, so that a recovery that stalls again does not
    // start over; its outbox stays.
    const partial = blocked.flatMap((relay) => {
      const published = relay.spills.findIndex((spill) => spill.some((event) => event.seq > relay.upTo));
      const through = published === -1 ? relay.spills.length : published;
      return through > 0 ? [{ relay, through }] : [];
    });
    // Bounded like the table writes: a batch of thousands of devices is not thousands of clears at once.
    const [cleared, partials] = await Promise.all([
      mapSettled(done, RELAY_CONCURRENCY, (relay) => store.clearOutbox(relay.deviceId, relay.upTo, spillRange(relay))),
      mapSettled(partial, RELAY_CONCURRENCY, ({ relay, through }) =>
        store.clearOutbox(relay.deviceId, relay.upTo, spillRange(relay, through)),
      ),
    ]);
    // A clear that throws only means the events are published once more by the next re-publish: never lost.
    result.uncleared += [...cleared, ...partials].filter((r) => r.status === 'rejected').length;
    // A clear refused because newer events were appended meanwhile (their committer handed them to us), or because
    // spills are left.
    const again = done.filter((_, i) => {
      const outcome = cleared[i]!;
      return outcome.status === 'fulfilled' && !outcome.value;
    });
    const reread = await mapLimit(again, RELAY_CONCURRENCY, (relay) =>
      store.get(relay.deviceId).catch(() => undefined),
    );
    pending = again.flatMap((relay, i) => {
      const current = reread[i];
      const next = current && relayOf(current, relay.upTo);
      return next && (next.events.length > 0 || next.spills.length > 0) ? [next] : [];
    });
  }
  return result;
}

/** The device's pending events after `upTo` (already published by this relay); undefined when it has pending
 * spills that were not read (the device state a write returned). */
function relayOf(device: RelayedDevice, upTo: number): Relay | undefined {
  const spills = device.outboxSpills;
  const loaded = pendingSpills(device) ? spills?.loaded : [];
  if (loaded === undefined) return undefined;
  const spillsFrom = spills?.from ?? 0;
  const withOutbox = spills === undefined || spillsFrom + loaded.length >= spills.to;
  const events = [...loaded.flat(), ...(withOutbox ? device.outbox : [])].filter((event) => event.seq > upTo);
  return { deviceId: device.deviceId, spills: loaded, spillsFrom, withOutbox, events, upTo };
}

/** The spills a clear may delete: the first `through` loaded ones (all by default). */
function spillRange(relay: Relay, through = relay.spills.length): { from: number; to: number } | undefined {
  return through > 0 ? { from: relay.spillsFrom, to: relay.spillsFrom + through } : undefined;
}

/** The outbox holds events of an earlier transition than the committer's own, detected recently enough that their
 * committer is still publishing them. */
function hasLivePublisher(
  device: Pick<DeviceState, 'outbox' | 'seq'>,
  handover: { now: number; liveForMs: number },
): boolean {
  return device.outbox.some((event) => event.seq < device.seq && event.detectedAt > handover.now - handover.liveForMs);
}

/** Publishes each device's events in order, round by round; returns how many of each device's were published (all,
 * or those before the first that failed). */
async function publishInOrder(queues: DeviceEvent[][], publisher: EventPublisher, result: RelayResult) {
  const counts = queues.map(() => 0);
  const blocked = new Set<number>();
  /** Devices stopped by a held event rather than a failed one. */
  const held = new Set<number>();
  const rounds = Math.max(0, ...queues.map((queue) => queue.length));
  for (let round = 0; round < rounds; round++) {
    const batch = queues.flatMap((queue, i) => {
      const event = queue[round];
      return event && !blocked.has(i) ? [{ event, i }] : [];
    });
    if (batch.length === 0) break;
    const out = await publisher.publish(batch.map(({ event }) => event));
    const failedIds = new Set(out.failed.map((event) => event.eventId));
    const heldIds = new Set((out.held ?? []).map((event) => event.eventId));
    for (const { event, i } of batch) {
      if (heldIds.has(event.eventId)) {
        blocked.add(i);
        held.add(i);
      } else if (failedIds.has(event.eventId)) blocked.add(i);
      else counts[i] = counts[i]! + 1;
    }
    result.published += batch.length - out.failed.length - heldIds.size;
  }
  return { counts, held };
}
