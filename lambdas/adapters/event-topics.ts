// Transition events out to SNS: device.offline and device.online each on their own topic, with message attributes
// subscribers can filter on.
import { PublishBatchCommand, type PublishBatchRequestEntry, type SNSClient } from '@aws-sdk/client-sns';
import type { DeviceEvent, EventType } from '../core/device.js';
import type { EventPublisher } from '../core/ports.js';
import { chunks } from './chunks.js';

export class EventTopics implements EventPublisher {
  constructor(
    private readonly sns: SNSClient,
    private readonly topicArns: Readonly<Record<EventType, string | undefined>>,
  ) {}

  async publish(events: DeviceEvent[]): Promise<{ failed: DeviceEvent[] }> {
    const failed: DeviceEvent[] = [];
    const byTopic = new Map<string, DeviceEvent[]>();
    for (const event of events) {
      const arn = this.topicArns[event.type];
      if (!arn) {
        failed.push(event);
        continue;
      }
      byTopic.set(arn, [...(byTopic.get(arn) ?? []), event]);
    }
    await Promise.all(
      [...byTopic].flatMap(([arn, topicEvents]) =>
        chunks(topicEvents, 10).map(async (chunk) => {
          try {
            const out = await this.sns.send(
              new PublishBatchCommand({ TopicArn: arn, PublishBatchRequestEntries: chunk.map(toEntry) }),
            );
            for (const entry of out.Failed ?? []) failed.push(chunk[Number(entry.Id)]!);
          } catch {
            failed.push(...chunk);
          }
        }),
      ),
    );
    return { failed };
  }
}

function toEntry(event: DeviceEvent, index: number): PublishBatchRequestEntry {
  return {
    Id: String(index),
    Message: JSON.stringify(event),
    MessageAttributes: {
      type: { DataType: 'String', StringValue: event.type },
      deviceType: { DataType: 'String', StringValue: event.deviceType },
    },
  };
}
