// Lambda-shaped events and the invocation context, built from what the AWS APIs return (an SQS Message, a Kinesis
// record), so that the local pollers, the virtual-time simulator and the tests hand the real handlers exactly what
// Lambda would.
import type { _Record } from '@aws-sdk/client-kinesis';
import type { Message } from '@aws-sdk/client-sqs';
import type { Context, KinesisStreamRecord, SQSRecord } from 'aws-lambda';
import { type Deployment, type FunctionName, functionSpec } from '../lambdas/core/contracts.js';

export function lambdaContext(functionName: string, timeoutMs: number, now: () => number = Date.now): Context {
  const started = now();
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${functionName}`,
    memoryLimitInMB: '512',
    awsRequestId: `${functionName}-${started}-${Math.random().toString(36).slice(2, 8)}`,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => timeoutMs - (now() - started),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

export function sqsRecord(message: Message, queueArn: string): SQSRecord {
  const now = String(Date.now());
  return {
    messageId: message.MessageId!,
    receiptHandle: message.ReceiptHandle!,
    body: message.Body ?? '',
    attributes: {
      ApproximateReceiveCount: message.Attributes?.ApproximateReceiveCount ?? '1',
      SentTimestamp: message.Attributes?.SentTimestamp ?? now,
      SenderId: message.Attributes?.SenderId ?? 'local',
      ApproximateFirstReceiveTimestamp: message.Attributes?.ApproximateFirstReceiveTimestamp ?? now,
    },
    messageAttributes: Object.fromEntries(
      Object.entries(message.MessageAttributes ?? {}).map(([name, value]) => [
        name,
        { stringValue: value.StringValue, dataType: value.DataType ?? 'String' },
      ]),
    ),
    md5OfBody: message.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: 'us-east-1',
  };
}

export function kinesisRecord(record: _Record, streamArn: string, shardId: string): KinesisStreamRecord {
  return {
    awsRegion: 'us-east-1',
    eventID: `${shardId}:${record.SequenceNumber}`,
    eventName: 'aws:kinesis:record',
    eventSource: 'aws:kinesis',
    eventSourceARN: streamArn,
    eventVersion: '1.0',
    invokeIdentityArn: 'arn:aws:iam::000000000000:role/local',
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: record.PartitionKey!,
      sequenceNumber: record.SequenceNumber!,
      data: Buffer.from(record.Data!).toString('base64'),
      approximateArrivalTimestamp: record.ApproximateArrivalTimestamp!.getTime() / 1000,
    },
  };
}

/** The timeout a function is deployed with (contracts.ts functionSpec), for the Lambda contexts of local runs. */
export function timeoutMsOf(fn: FunctionName, deployment: Deployment): number {
  return functionSpec(fn, deployment).timeoutSeconds * 1000;
}
