// The whole detector's resources on the embedded engines: the device table (from the shared table definition),
// the ingest queue with its DLQ (or a Kinesis stream), the sweep queue with its DLQ, the rejects queue, the two
// topics each subscribed by a queue as a user's consumer would, and the Lambdas' environment pointing at them.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  KinesisClient,
  waitUntilStreamExists,
} from '@aws-sdk/client-kinesis';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { ENV, type EngineName } from '../lambdas/core/config.js';
import {
  type DynamoEngine,
  type DynamoEngineChoice,
  type Endpoints,
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  startEngines,
} from '../sim/engines/engines.js';
import {
  createDeviceTable,
  createQueue,
  createShardTable,
  createTopic,
  type Queue,
  subscribeQueue,
  type Topic,
} from '../sim/engines/resources.js';
import { WriteUnits } from '../sim/engines/write-units.js';

export type Source = 'sqs' | 'kinesis';

export interface StackOptions {
  source: Source;
  deviceTypes: Record<string, { timeoutMs: number; precisionMs: number; heartbeatMs?: number }>;
  tickSeconds: number;
  toleranceMs: number;
  shardCount: number;
  /** SQS probes are credited only while the ingest queue shows at most this many visible messages. */
  probeMaxBacklog: number;
  kinesisShards?: number;
  /** Receives before an ingest message moves to the DLQ (the construct's default). */
  maxReceiveCount?: number;
  /** Ingest queue visibility timeout, seconds. */
  visibilityTimeoutSeconds?: number;
  /** The detection engine. @default per-device */
  engine?: EngineName;
  /** The DynamoDB engine (engines.ts); default DynamoDB Local. */
  dynamodb?: DynamoEngineChoice;
  /** More of the Lambdas' environment: the scenario's tags and gateways (scenario.ts `scenarioEnv`). */
  handlerEnv?: Record<string, string>;
}

export interface Clients {
  dynamodb: DynamoDBClient;
  sqs: SQSClient;
  sns: SNSClient;
  kinesis?: KinesisClient;
}

export interface LocalStack {
  endpoints: Endpoints;
  dynamodbEngine: DynamoEngine;
  pids: number[];
  clients: Clients;
  env: Record<string, string>;
  tableName: string;
  ingestQueue?: Queue;
  ingestDlq?: Queue;
  stream?: { name: string; arn: string };
  kinesisFailures?: Queue;
  sweepQueue: Queue;
  sweepDlq: Queue;
  rejects: Queue;
  onlineTopic: Topic;
  offlineTopic: Topic;
  onlineEvents: Queue;
  offlineEvents: Queue;
  writeUnits: WriteUnits;
  stop(): Promise<void>;
}

export const LOCAL_TABLE = 'offline-detector-devices';
export const LOCAL_SHARD_TABLE = 'offline-detector-shards';

export function localClients(endpoints: Endpoints): Clients {
  const common = { region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS };
  return {
    dynamodb: new DynamoDBClient({ ...common, endpoint: endpoints.dynamodb, maxAttempts: 6 }),
    sqs: new SQSClient({ ...common, endpoint: endpoints.sqs }),
    sns: new SNSClient({ ...common, endpoint: endpoints.sns }),
    kinesis: endpoints.kinesis
      ? new KinesisClient({ ...common, endpoint: endpoints.kinesis, requestHandler: new NodeHttpHandler() })
      : undefined,
  };
}

export async function startLocalStack(options: StackOptions): Promise<LocalStack> {
  const engines = await startEngines({ kinesis: options.source === 'kinesis', dynamodb: options.dynamodb });
  try {
    const clients = localClients(engines.endpoints);
    const writeUnits = new WriteUnits();
    writeUnits.attach(clients.dynamodb);
    await createDeviceTable(clients.dynamodb, LOCAL_TABLE);
    if (options.engine === 'batched') await createShardTable(clients.dynamodb, LOCAL_SHARD_TABLE);
    const { sqs, sns } = clients;
    const redrive = (dlq: Queue, maxReceiveCount: number) =>
      JSON.stringify({ deadLetterTargetArn: dlq.arn, maxReceiveCount: String(maxReceiveCount) });
    const [sweepDlq, rejects, onlineTopic, offlineTopic, onlineEvents, offlineEvents] = await Promise.all([
      createQueue(sqs, 'offline-detector-sweep-dlq'),
      createQueue(sqs, 'offline-detector-rejects'),
      createTopic(sns, 'offline-detector-online'),
      createTopic(sns, 'offline-detector-offline'),
      createQueue(sqs, 'my-consumer-online-events'),
      createQueue(sqs, 'my-consumer-offline-events'),
    ]);
    // Visibility 60 s covers a sweep job's budget; three receives before the DLQ, as in the construct.
    const sweepQueue = await createQueue(sqs, 'offline-detector-sweep', {
      VisibilityTimeout: '60',
      RedrivePolicy: redrive(sweepDlq, 3),
    });
    await subscribeQueue(sns, onlineTopic.arn, onlineEvents.arn);
    await subscribeQueue(sns, offlineTopic.arn, offlineEvents.arn);

    let ingestQueue: Queue | undefined;
    let ingestDlq: Queue | undefined;
    let stream: LocalStack['stream'];
    let kinesisFailures: Queue | undefined;
    if (options.source === 'sqs') {
      ingestDlq = await createQueue(sqs, 'offline-detector-ingest-dlq');
      ingestQueue = await createQueue(sqs, 'offline-detector-ingest', {
        VisibilityTimeout: String(options.visibilityTimeoutSeconds ?? 30),
        RedrivePolicy: redrive(ingestDlq, options.maxReceiveCount ?? 5),
      });
    } else {
      const kinesis = clients.kinesis!;
      const name = 'offline-detector-ingest';
      await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: options.kinesisShards ?? 2 }));
      await waitUntilStreamExists({ client: kinesis, maxWaitTime: 60 }, { StreamName: name });
      const summary = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: name }));
      stream = { name, arn: summary.StreamDescriptionSummary!.StreamARN! };
      kinesisFailures = await createQueue(sqs, 'offline-detector-kinesis-failures');
    }

    const env: Record<string, string> = {
      [ENV.tableName]: LOCAL_TABLE,
      [ENV.shardCount]: String(options.shardCount),
      [ENV.deviceTypes]: JSON.stringify(options.deviceTypes),
      [ENV.rejectsQueueUrl]: rejects.url,
      [ENV.onlineTopicArn]: onlineTopic.arn,
      [ENV.offlineTopicArn]: offlineTopic.arn,
      [ENV.sweepQueueUrl]: sweepQueue.url,
      [ENV.sweepTickSeconds]: String(options.tickSeconds),
      [ENV.watermarkToleranceMs]: String(options.toleranceMs),
      [ENV.probeMaxBacklog]: String(options.probeMaxBacklog),
      // A batch answers within what the tolerance leaves after a tick (at least 1 s): a watermark credited while a
      // batch is still running may pass its records only by the tolerance, and these scenarios' tolerances are
      // seconds, not the 30 s of a deployment.
      [ENV.ingestTimeoutMs]: String(Math.max(1_000, options.toleranceMs - options.tickSeconds * 1000)),
      [ENV.ingestQueueUrls]: ingestQueue?.url ?? '',
      [ENV.ingestStreamArns]: stream?.arn ?? '',
      ...(options.engine === 'batched' ? { [ENV.engine]: 'batched', [ENV.shardTableName]: LOCAL_SHARD_TABLE } : {}),
      ...options.handlerEnv,
    };
    const stop = async () => {
      for (const client of Object.values(clients)) client?.destroy();
      await engines.stop();
    };
    return {
      endpoints: engines.endpoints,
      dynamodbEngine: engines.dynamodbEngine,
      pids: engines.pids,
      clients,
      env,
      tableName: LOCAL_TABLE,
      ingestQueue,
      ingestDlq,
      stream,
      kinesisFailures,
      sweepQueue,
      sweepDlq,
      rejects,
      onlineTopic,
      offlineTopic,
      onlineEvents,
      offlineEvents,
      writeUnits,
      stop,
    };
  } catch (error) {
    await engines.stop();
    throw error;
  }
}
