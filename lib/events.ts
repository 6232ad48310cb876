// What offline-detector publishes, for the code that consumes it (`offline-detector/events`): types only, so a
// consumer's Lambda or service imports them without pulling in aws-cdk-lib or anything else.
//
// Each SNS message's body is one DeviceEvent as JSON: device.online on the online topic, device.offline and
// device.flapping on the offline topic. `eventId` is the same for every delivery of one transition (drop
// duplicates by it), and `seq` orders a device's events. With outage detection on, the offline topic also carries
// FleetEvents (fleet.outage, fleet.recovered), told apart by `type`.
import type { EventType } from '../lambdas/core/device.js';

export type { DeviceEvent, EventType } from '../lambdas/core/device.js';
export type { FleetEvent, FleetEventType } from '../lambdas/core/outage.js';

/** The SNS message attributes of every event, for subscription filter policies. */
export interface DeviceEventAttributes {
  /** The event's `type`. */
  type: EventType;
  /** The event's `deviceType`. */
  deviceType: string;
  /** `parent-offline` or `outage` on an offline event that needs nobody's attention on its own (a pager subscription
   * drops them with `{"cause": [{"exists": false}]}`), with `parentId` or `incidentId`. */
  cause?: 'parent-offline' | 'outage';
  parentId?: string;
  incidentId?: string;
  /** `tag.<name>`: each of the device's tags. */
  [tag: `tag.${string}`]: string;
}

/** The SNS message attributes of a fleet event. */
export interface FleetEventAttributes {
  type: 'fleet.outage' | 'fleet.recovered';
  groupBy: string;
  group: string;
}
