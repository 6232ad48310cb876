// Lambda-shaped events built from what the real services returned, so handlers see exactly what Lambda gives them.
import { type _Record, GetRecordsCommand, GetShardIteratorCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import { type Message, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Context, KinesisStreamEvent, KinesisStreamRecord, SQSEvent, SQSRecord } from 'aws-lambda';

export function lambdaContext(remainingMs = 60_000): Context {
  const started = Date.now();
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'test-function',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:test-function',
    memoryLimitInMB: '512',
    awsRequestId: `req-${started}`,
    logGroupName: '/aws/lambda/test-function',
    logStreamName: 'stream',
    getRemainingTimeInMillis: () => remainingMs - (Date.now() - started),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

export function sqsRecord(message: Message, queueArn: string): SQSRecord {
  return {
    messageId: message.MessageId!,
    receiptHandle: message.ReceiptHandle!,
    body: message.Body ?? '',
    attributes: {
      ApproximateReceiveCount: message.Attributes?.ApproximateReceiveCount ?? '1',
      SentTimestamp: message.Attributes?.SentTimestamp ?? String(Date.now()),
      SenderId: message.Attributes?.SenderId ?? 'sender',
      ApproximateFirstReceiveTimestamp: message.Attributes?.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: message.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: 'us-east-1',
  };
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

export function kinesisRecord(record: _Record, streamArn: string, shardId: string): KinesisStreamRecord {
  return {
    awsRegion: 'us-east-1',
    eventID: `${shardId}:${record.SequenceNumber}`,
    eventName: 'aws:kinesis:record',
    eventSource: 'aws:kinesis',
    eventSourceARN: streamArn,
    eventVersion: '1.0',
    invokeIdentityArn: 'arn:aws:iam::000000000000:role/test',
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: record.PartitionKey!,
      sequenceNumber: record.SequenceNumber!,
      data: Buffer.from(record.Data!).toString('base64'),
      approximateArrivalTimestamp: record.ApproximateArrivalTimestamp!.getTime() / 1000,
    },
  };
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
