// Transition events out to SNS: device.offline and device.online each on their own topic, with message attributes
// subscribers can filter on. device.flapping goes to the offline topic: it tells whoever is paged on offline events
// that this device's events are held until it settles.
import { PublishBatchCommand, type PublishBatchRequestEntry, type SNSClient } from '@aws-sdk/client-sns';
import { mapLimit } from '../core/concurrency.js';
import type { DeviceEvent, EventType } from '../core/device.js';
import type { FleetEvent, FleetEventPublisher } from '../core/outage.js';
import type { EventPublisher } from '../core/ports.js';
import { tagAttribute } from '../core/tags.js';
import { chunks } from './chunks.js';

const TOPIC: Record<EventType, 'online' | 'offline'> = {
  'device.online': 'online',
  'device.offline': 'offline',
  'device.flapping': 'offline',
};

/** PublishBatch calls one publish runs at once. */
const PUBLISH_CONCURRENCY = 8;

export class EventTopics implements EventPublisher, FleetEventPublisher {
  constructor(
    private readonly sns: SNSClient,
    private readonly topicArns: Readonly<{ online: string | undefined; offline: string | undefined }>,
  ) {}

  async publish(events: DeviceEvent[]): Promise<{ failed: DeviceEvent[] }> {
    return this.send(events, (event) => this.topicArns[TOPIC[event.type]], toEntry);
  }

  async publishFleet(events: FleetEvent[]): Promise<{ failed: FleetEvent[] }> {
    return this.send(events, () => this.topicArns.offline, fleetEntry);
  }

  private async send<E>(
    events: E[],
    topicOf: (event: E) => string | undefined,
    toEntry: (event: E, index: number) => PublishBatchRequestEntry,
  ): Promise<{ failed: E[] }> {
    const failed: E[] = [];
    const byTopic = new Map<string, E[]>();
    for (const event of events) {
      const arn = topicOf(event);
      if (!arn) {
        failed.push(event);
        continue;
      }
      byTopic.set(arn, [...(byTopic.get(arn) ?? []), event]);
    }
    const batches = [...byTopic].flatMap(([arn, topicEvents]) =>
      chunks(topicEvents, 10).map((chunk) => ({ arn, chunk })),
    );
    // Bounded: a relay of thousands of devices is not thousands of PublishBatch calls at once.
    await mapLimit(batches, PUBLISH_CONCURRENCY, async ({ arn, chunk }) => {
      try {
        const out = await this.sns.send(
          new PublishBatchCommand({ TopicArn: arn, PublishBatchRequestEntries: chunk.map(toEntry) }),
        );
        for (const entry of out.Failed ?? []) failed.push(chunk[Number(entry.Id)]!);
      } catch {
        failed.push(...chunk);
      }
    });
    return { failed };
  }
}

/** fleet.outage and fleet.recovered go to the offline topic, where whoever is paged listens. */
export function fleetEntry(event: FleetEvent, index: number): PublishBatchRequestEntry {
  return {
    Id: String(index),
    Message: JSON.stringify(event),
    MessageAttributes: {
      type: { DataType: 'String', StringValue: event.type },
      groupBy: { DataType: 'String', StringValue: event.groupBy },
      group: { DataType: 'String', StringValue: event.group },
    },
  };
}

function toEntry(event: DeviceEvent, index: number): PublishBatchRequestEntry {
  return {
    Id: String(index),
    Message: JSON.stringify(event),
    MessageAttributes: {
      type: { DataType: 'String', StringValue: event.type },
      deviceType: { DataType: 'String', StringValue: event.deviceType },
      // A pager subscription filters these out with {"cause": [{"exists": false}]}.
      ...(event.cause ? { cause: { DataType: 'String', StringValue: event.cause } } : {}),
      ...(event.parentId ? { parentId: { DataType: 'String', StringValue: event.parentId } } : {}),
      ...(event.incidentId ? { incidentId: { DataType: 'String', StringValue: event.incidentId } } : {}),
      ...Object.fromEntries(
        Object.entries(event.tags ?? {}).map(([name, value]) => [
          tagAttribute(name),
          { DataType: 'String', StringValue: value },
        ]),
      ),
    },
  };
}
