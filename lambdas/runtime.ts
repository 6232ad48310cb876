// Powertools and AWS clients shared by the handlers of one Lambda container, created once at module scope.
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { METRICS_NAMESPACE } from './core/contracts.js';

export const logger = new Logger();
export const metrics = new Metrics({ namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE });

/** Clients take region and endpoint from the environment (AWS_REGION, AWS_ENDPOINT_URL_*), so the same code runs
 * against AWS, LocalStack and the embedded engines. The SDK retries throttling with backoff before we see it. */
export interface AwsClients {
  dynamodb: DynamoDBClient;
  sqs: SQSClient;
  sns: SNSClient;
}

let clients: AwsClients | undefined;
export function awsClients(): AwsClients {
  clients ??= {
    // More sockets than the SDK's 50: a sweep job settles up to SWEEP_CONCURRENCY devices at once (a batched shard
    // in a storm: 128).
    dynamodb: new DynamoDBClient({ maxAttempts: 6, requestHandler: { httpsAgent: { maxSockets: 256 } } }),
    sqs: new SQSClient({}),
    sns: new SNSClient({}),
  };
  return clients;
}

/** Memoizes a factory: configuration is read and checked on the first invocation, so importing a handler (as the
 * bundling test does) needs no environment, and a bad configuration fails every invocation loudly. */
export function once<T>(factory: () => T): () => T {
  let value: T | undefined;
  return () => {
    value ??= factory();
    return value;
  };
}
