// Redrive: messages the ingest queue dead-lettered go back into it with the time they first entered the pipeline,
// signed (probe.ts `signEntry`), so the ingest judges their devices by when they really sent. SQS's own redrive
// (StartMessageMoveTask) sends them anew, as if they had entered now, which would make a silent device look alive.
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  type Message,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { ENTRY_ATTRIBUTES, signEntry } from '../core/probe.js';

export interface RedriveResult {
  moved: number;
  /** Left in the dead-letter queue (the send failed): a later redrive takes them. */
  failed: number;
}

export async function redrive(
  sqs: SQSClient,
  options: { from: string; to: string; key: Uint8Array; max?: number },
): Promise<RedriveResult> {
  const { Attributes } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: options.to, AttributeNames: ['QueueArn'] }),
  );
  const source = Attributes?.QueueArn;
  if (!source) throw new Error(`no QueueArn for ${options.to}`);
  const result: RedriveResult = { moved: 0, failed: 0 };
  const max = options.max ?? Number.POSITIVE_INFINITY;
  while (result.moved + result.failed < max) {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: options.from,
        MaxNumberOfMessages: Math.min(10, max - result.moved - result.failed),
        MessageSystemAttributeNames: ['SentTimestamp'],
        MessageAttributeNames: ['All'],
        VisibilityTimeout: 60,
        WaitTimeSeconds: 0,
      }),
    );
    if (Messages.length === 0) break;
    const out = await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: options.to,
        Entries: Messages.map((message, i) => ({
          Id: String(i),
          MessageBody: message.Body ?? '',
          MessageAttributes: entryAttributes(message, source, options.key),
        })),
      }),
    );
    const sent = new Set((out.Successful ?? []).map((entry) => Number(entry.Id)));
    result.moved += sent.size;
    result.failed += Messages.length - sent.size;
    const done = Messages.filter((_, i) => sent.has(i));
    if (done.length > 0) {
      await sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: options.from,
          Entries: done.map((message, i) => ({ Id: String(i), ReceiptHandle: message.ReceiptHandle! })),
        }),
      );
    }
  }
  return result;
}

/** The message's own attributes, plus its original entry time: the one a previous redrive signed, else when it was
 * first sent. */
function entryAttributes(message: Message, source: string, key: Uint8Array): Record<string, MessageAttributeValue> {
  const attributes = { ...(message.MessageAttributes ?? {}) };
  if (attributes[ENTRY_ATTRIBUTES.at] && attributes[ENTRY_ATTRIBUTES.sig]) return attributes;
  const at = Number(message.Attributes?.SentTimestamp);
  attributes[ENTRY_ATTRIBUTES.at] = { DataType: 'String', StringValue: String(at) };
  attributes[ENTRY_ATTRIBUTES.sig] = {
    DataType: 'String',
    StringValue: signEntry(key, at, source, message.Body ?? ''),
  };
  return attributes;
}
