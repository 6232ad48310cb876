// Publishing committed transitions. The transition and its event are committed in one write (the event sits in
// the device's outbox); publishing happens after the commit and the outbox is cleared after publishing. A crash
// in between leaves the event in the outbox, from where the sweep re-publishes it: at least once, never lost.
import type { DeviceEvent, DeviceState } from './device.js';
import type { DeviceStore, EventPublisher } from './ports.js';

export interface RelayResult {
  published: number;
  /** Devices whose events could not all be published: their outbox stays for the re-publish. */
  failed: number;
  uncleared: number;
}

/** Publishes every pending event of the given devices, each device's events in seq order, then clears the
 * outboxes that were fully published. Events of different devices go out together, round by round. */
export async function relayOutboxes(
  devices: Pick<DeviceState, 'deviceId' | 'outbox'>[],
  store: Pick<DeviceStore, 'clearOutbox'>,
  publisher: EventPublisher,
): Promise<RelayResult> {
  const pending = devices.filter((device) => device.outbox.length > 0);
  const blocked = new Set<string>();
  let published = 0;
  const rounds = Math.max(0, ...pending.map((device) => device.outbox.length));
  for (let round = 0; round < rounds; round++) {
    const events: DeviceEvent[] = [];
    for (const device of pending) {
      const event = device.outbox[round];
      if (event && !blocked.has(device.deviceId)) events.push(event);
    }
    if (events.length === 0) break;
    const { failed } = await publisher.publish(events);
    for (const event of failed) blocked.add(event.deviceId);
    published += events.length - failed.length;
  }
  const done = pending.filter((device) => !blocked.has(device.deviceId));
  // A clear that fails only means the event is published once more by the next re-publish: never lost.
  const cleared = await Promise.allSettled(
    done.map((device) => store.clearOutbox(device.deviceId, device.outbox[device.outbox.length - 1]!.seq)),
  );
  return { published, failed: blocked.size, uncleared: cleared.filter((r) => r.status === 'rejected').length };
}
