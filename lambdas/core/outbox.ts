// Publishing committed transitions. The transition and its event are committed in one write (the event sits in
// the device's outbox); publishing happens after the commit and the outbox is cleared after publishing. A crash
// in between leaves the event in the outbox, from where the sweep re-publishes it: at least once, never lost.
//
// One publisher per outbox at a time, so that a healthy pipeline publishes each event once: a committer that finds
// events of an earlier transition still pending and young (their committer is publishing them right now) leaves
// its own to that publisher, whose clear then fails on the newer event and who reads the outbox again and publishes
// the rest, in seq order. Only outboxes older than the re-publish delay are taken over whole.
import type { DeviceEvent, DeviceState } from './device.js';
import type { DeviceStore, EventPublisher } from './ports.js';

export interface RelayResult {
  published: number;
  /** Devices whose events could not all be published: their outbox stays for the re-publish. */
  failed: number;
  uncleared: number;
  /** Devices left to the live publisher of their earlier events. */
  handedOver: number;
}

export interface RelayOptions {
  /** The committer's side: events of earlier transitions detected after `now - liveForMs` have a live publisher.
   * Without it (the re-publish), every outbox is published whole. */
  handover?: { now: number; liveForMs: number };
}

/** Clear rounds after newer events turned up: more means a device transitioning faster than we publish, which the
 * re-publish then takes over. */
const MAX_ROUNDS = 4;

/** Publishes every pending event of the given devices, each device's events in seq order, then clears the
 * outboxes that were fully published; a clear that finds newer events publishes those too. Events of different
 * devices go out together, round by round. */
export async function relayOutboxes(
  devices: Pick<DeviceState, 'deviceId' | 'outbox' | 'seq'>[],
  store: Pick<DeviceStore, 'clearOutbox' | 'get'>,
  publisher: EventPublisher,
  options: RelayOptions = {},
): Promise<RelayResult> {
  const result: RelayResult = { published: 0, failed: 0, uncleared: 0, handedOver: 0 };
  let pending = devices.filter((device) => {
    if (device.outbox.length === 0) return false;
    if (options.handover && hasLivePublisher(device, options.handover)) {
      result.handedOver++;
      return false;
    }
    return true;
  });
  for (let round = 0; round < MAX_ROUNDS && pending.length > 0; round++) {
    const blocked = await publishInOrder(
      pending.map((device) => device.outbox),
      publisher,
      result,
    );
    result.failed += blocked.size;
    const done = pending.filter((device) => !blocked.has(device.deviceId));
    const cleared = await Promise.allSettled(
      done.map((device) => store.clearOutbox(device.deviceId, device.outbox[device.outbox.length - 1]!.seq)),
    );
    // A clear that throws only means the events are published once more by the next re-publish: never lost.
    result.uncleared += cleared.filter((r) => r.status === 'rejected').length;
    // A clear refused because newer events were appended meanwhile: their committer handed them to us.
    const newer = done.filter((_, i) => {
      const outcome = cleared[i]!;
      return outcome.status === 'fulfilled' && !outcome.value;
    });
    const reread = await Promise.all(newer.map((device) => store.get(device.deviceId).catch(() => undefined)));
    pending = newer.flatMap((device, i) => {
      const current = reread[i];
      const last = device.outbox[device.outbox.length - 1]!.seq;
      const rest = current?.outbox.filter((event) => event.seq > last) ?? [];
      return current && rest.length > 0 ? [{ ...current, outbox: rest }] : [];
    });
  }
  return result;
}

/** The outbox holds events of an earlier transition than the committer's own, detected recently enough that their
 * committer is still publishing them. */
function hasLivePublisher(
  device: Pick<DeviceState, 'outbox' | 'seq'>,
  handover: { now: number; liveForMs: number },
): boolean {
  return device.outbox.some((event) => event.seq < device.seq && event.detectedAt > handover.now - handover.liveForMs);
}

/** Publishes each device's events in order, round by round; returns the devices whose publishing stopped. */
async function publishInOrder(outboxes: DeviceEvent[][], publisher: EventPublisher, result: RelayResult) {
  const blocked = new Set<string>();
  const rounds = Math.max(0, ...outboxes.map((outbox) => outbox.length));
  for (let round = 0; round < rounds; round++) {
    const events = outboxes.flatMap((outbox) => {
      const event = outbox[round];
      return event && !blocked.has(event.deviceId) ? [event] : [];
    });
    if (events.length === 0) break;
    const { failed } = await publisher.publish(events);
    for (const event of failed) blocked.add(event.deviceId);
    result.published += events.length - failed.length;
  }
  return blocked;
}
