// Lambda-shaped events built from what the real services returned, so handlers see exactly what Lambda gives them.
import { GetRecordsCommand, GetShardIteratorCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import { ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Context, KinesisStreamEvent, KinesisStreamRecord, SQSEvent, SQSRecord } from 'aws-lambda';
import { kinesisRecord, lambdaContext as localLambdaContext, sqsRecord } from '../../sim/lambda-events.js';

// The records are built as the local runtime's pollers build them, so tests and `npm start` feed handlers alike.
export { kinesisRecord, sqsRecord };

export function lambdaContext(remainingMs = 60_000): Context {
  return localLambdaContext('test-function', remainingMs);
}

/** An SQS record as Lambda would deliver it, for bodies a real queue would refuse to carry. */
export function syntheticSqsRecord(body: string, sentTimestamp: number, queueArn: string, id: string): SQSRecord {
  return sqsRecord(
    { MessageId: id, ReceiptHandle: `rh-${id}`, Body: body, Attributes: { SentTimestamp: String(sentTimestamp) } },
    queueArn,
  );
}

/** Receives up to `max` messages from a queue, as the Lambda poller would, and wraps them in an SQS event. */
export async function receiveSqsEvent(sqs: SQSClient, queueUrl: string, queueArn: string, max = 10): Promise<SQSEvent> {
  const records: SQSRecord[] = [];
  while (records.length < max) {
    const out = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: Math.min(10, max - records.length),
        MessageSystemAttributeNames: ['All'],
        VisibilityTimeout: 60,
      }),
    );
    if (!out.Messages?.length) break;
    records.push(...out.Messages.map((m) => sqsRecord(m, queueArn)));
  }
  return { Records: records };
}

/** Reads a shard from its start and wraps its records in a Kinesis event, as the Lambda poller would. */
export async function readKinesisEvent(
  kinesis: KinesisClient,
  streamName: string,
  streamArn: string,
  shardId: string,
): Promise<KinesisStreamEvent> {
  const { ShardIterator } = await kinesis.send(
    new GetShardIteratorCommand({ StreamName: streamName, ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' }),
  );
  const records: KinesisStreamRecord[] = [];
  let iterator = ShardIterator;
  for (let i = 0; iterator && i < 20; i++) {
    const out = await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }));
    records.push(...(out.Records ?? []).map((r) => kinesisRecord(r, streamArn, shardId)));
    if (!out.Records?.length) break;
    iterator = out.NextShardIterator;
  }
  return { Records: records };
}

export function syntheticKinesisRecord(
  data: Uint8Array,
  arrival: number,
  streamArn: string,
  seq: string,
): KinesisStreamRecord {
  return kinesisRecord(
    { SequenceNumber: seq, PartitionKey: 'pk', Data: data, ApproximateArrivalTimestamp: new Date(arrival) },
    streamArn,
    'shardId-000000000000',
  );
}
