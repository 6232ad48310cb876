// The ready-made stack: one OfflineDetector, configured from CDK context (cdk.json or `-c key=value`), with the
// outputs a user or an end-to-end test needs.
import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type { Construct, Node } from 'constructs';
import {
  type DeviceTypeOptions,
  type FlapDampingOptions,
  OfflineDetector,
  type OfflineDetectorProps,
} from './offline-detector.js';

/** Reads a context value that may come from cdk.json (any JSON) or from `-c key=value` (always a string). */
function ctx(node: Node, key: string): unknown {
  const value = node.tryGetContext(key);
  if (typeof value !== 'string') return value;
  const trimmed = value.trim();
  if (trimmed === '') return undefined;
  if (/^[[{]/.test(trimmed) || /^(true|false|-?\d+(\.\d+)?)$/.test(trimmed)) {
    try {
      return JSON.parse(trimmed);
    } catch {
      throw new Error(`context "${key}" is not valid JSON: ${value}`);
    }
  }
  return value;
}

function num(node: Node, key: string): number | undefined {
  const v = ctx(node, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`context "${key}" must be a number, got ${v}`);
  return v;
}

function str(node: Node, key: string): string | undefined {
  const v = ctx(node, key);
  if (v === undefined) return undefined;
  return String(v);
}

function bool(node: Node, key: string): boolean | undefined {
  const v = ctx(node, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new Error(`context "${key}" must be true or false, got ${v}`);
  return v;
}

/** `deviceTypes` context: `{"tracker": {"timeoutMs": 90000, "precisionMs": 0, "heartbeatMs": 30000,
 * "flap": {"transitions": 4, "windowMs": 600000}}}`, the same shape as the Lambdas' DEVICE_TYPES. */
function deviceTypes(node: Node): Record<string, DeviceTypeOptions> | undefined {
  const raw = ctx(node, 'deviceTypes');
  if (raw === undefined) return undefined;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Error('context "deviceTypes" must be an object {"<type>": {"timeoutMs": n, ...}}');
  }
  const types: Record<string, DeviceTypeOptions> = {};
  for (const [name, value] of Object.entries(raw as Record<string, Record<string, unknown>>)) {
    const ms = (field: string) => {
      const v = value?.[field];
      if (v === undefined) return undefined;
      if (typeof v !== 'number') throw new Error(`context deviceTypes.${name}.${field} must be a number of ms`);
      return Duration.millis(v);
    };
    const timeout = ms('timeoutMs');
    if (!timeout) throw new Error(`context deviceTypes.${name}.timeoutMs is required`);
    types[name] = {
      timeout,
      precision: ms('precisionMs'),
      heartbeat: ms('heartbeatMs'),
      flap: flap(name, value?.flap),
    };
  }
  return types;
}

/** A device type's `flap` context: `{"transitions": n, "windowMs": n}`; ranges are checked by the construct. */
function flap(name: string, raw: unknown): FlapDampingOptions | undefined {
  if (raw === undefined) return undefined;
  const shape = `context deviceTypes.${name}.flap must be {"transitions": n, "windowMs": n}`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(shape);
  const { transitions, windowMs, ...rest } = raw as Record<string, unknown>;
  if (typeof transitions !== 'number') throw new Error(`context deviceTypes.${name}.flap.transitions must be a number`);
  if (typeof windowMs !== 'number') throw new Error(`context deviceTypes.${name}.flap.windowMs must be a number of ms`);
  if (Object.keys(rest).length > 0) throw new Error(`${shape}, got extra key(s) ${Object.keys(rest).join(', ')}`);
  return { transitions, window: Duration.millis(windowMs) };
}

/** `outageDetection` context: `{"groupBy": "site", "minDevices": 20, "windowSeconds"?: n, "holdSeconds"?: n}`. */
function outageDetection(node: Node): OfflineDetectorProps['outageDetection'] {
  const raw = ctx(node, 'outageDetection');
  if (raw === undefined) return undefined;
  const { groupBy, minDevices, windowSeconds, holdSeconds } = (raw ?? {}) as Record<string, unknown>;
  if (typeof groupBy !== 'string' || typeof minDevices !== 'number') {
    throw new Error('context "outageDetection" must be {"groupBy": "deviceType" | "<tag>", "minDevices": n, ...}');
  }
  return {
    groupBy,
    minDevices,
    ...(typeof windowSeconds === 'number' ? { window: Duration.seconds(windowSeconds) } : {}),
    ...(typeof holdSeconds === 'number' ? { hold: Duration.seconds(holdSeconds) } : {}),
  };
}

/** OfflineDetector props from context. Keys (all optional): deviceTypes, defaultDeviceType, fieldMap, sqs (false to
 * disable the SQS source), kinesis ("on-demand" or a shard count), shardCount, sweepTickSeconds,
 * sweepMaxConcurrency, watermarkToleranceMs, billing ("on-demand" | "provisioned"), maxReadCapacity, maxWriteCapacity, removalPolicy
 * ("retain" | "destroy"), housekeepingTtlDays, offlineStormPerMinute, announceNewDevices, deviceTsSkewMs, engine
 * ("per-device" | "batched"), fleetDevices and fleetMessagesPerSecond (the batched engine's sizing), parentTag (one of
 * fieldMap.tags), allowList, outageDetection. */
export function propsFromContext(node: Node): OfflineDetectorProps {
  const kinesisCtx = ctx(node, 'kinesis');
  let kinesisIngest: OfflineDetectorProps['kinesisIngest'];
  if (kinesisCtx === 'on-demand' || kinesisCtx === true) {
    kinesisIngest = { streamMode: kinesis.StreamMode.ON_DEMAND };
  } else if (typeof kinesisCtx === 'number') {
    kinesisIngest = { streamMode: kinesis.StreamMode.PROVISIONED, shardCount: kinesisCtx };
  } else if (kinesisCtx !== undefined && kinesisCtx !== false && kinesisCtx !== 'none') {
    throw new Error(`context "kinesis" must be "on-demand", a shard count or "none", got ${kinesisCtx}`);
  }

  const billingCtx = str(node, 'billing') ?? 'on-demand';
  let billing: dynamodb.Billing;
  if (billingCtx === 'on-demand') {
    billing = dynamodb.Billing.onDemand();
  } else if (billingCtx === 'provisioned') {
    billing = dynamodb.Billing.provisioned({
      readCapacity: dynamodb.Capacity.autoscaled({ minCapacity: 5, maxCapacity: num(node, 'maxReadCapacity') ?? 1000 }),
      writeCapacity: dynamodb.Capacity.autoscaled({
        minCapacity: 5,
        maxCapacity: num(node, 'maxWriteCapacity') ?? 1000,
        targetUtilizationPercent: 70,
      }),
    });
  } else {
    throw new Error(`context "billing" must be "on-demand" or "provisioned", got ${billingCtx}`);
  }

  const removal = str(node, 'removalPolicy') ?? 'retain';
  if (removal !== 'retain' && removal !== 'destroy') {
    throw new Error(`context "removalPolicy" must be "retain" or "destroy", got ${removal}`);
  }
  const tick = num(node, 'sweepTickSeconds');
  const ttlDays = num(node, 'housekeepingTtlDays');
  const skew = num(node, 'deviceTsSkewMs');
  const storm = num(node, 'offlineStormPerMinute');
  const tolerance = num(node, 'watermarkToleranceMs');
  const engine = str(node, 'engine');
  if (engine !== undefined && engine !== 'per-device' && engine !== 'batched') {
    throw new Error(`context "engine" must be "per-device" or "batched", got ${engine}`);
  }
  const fleetDevices = num(node, 'fleetDevices');
  const fleetRate = num(node, 'fleetMessagesPerSecond');
  const fieldMap = ctx(node, 'fieldMap');
  if (fieldMap !== undefined && (typeof fieldMap !== 'object' || fieldMap === null || Array.isArray(fieldMap))) {
    throw new Error('context "fieldMap" must be an object like {"deviceId": "thingName"}');
  }

  return {
    engine,
    ...(fleetDevices !== undefined
      ? { fleet: { devices: fleetDevices, ...(fleetRate !== undefined ? { messagesPerSecond: fleetRate } : {}) } }
      : {}),
    sqsIngest: bool(node, 'sqs') === false ? false : {},
    kinesisIngest,
    deviceTypes: deviceTypes(node),
    defaultDeviceType: str(node, 'defaultDeviceType'),
    fieldMap: fieldMap as OfflineDetectorProps['fieldMap'],
    parentTag: str(node, 'parentTag'),
    allowList: bool(node, 'allowList'),
    outageDetection: outageDetection(node),
    announceNewDevices: bool(node, 'announceNewDevices'),
    deviceTimestampSkew: skew === undefined ? undefined : Duration.millis(skew),
    shardCount: num(node, 'shardCount'),
    sweepTick: tick === undefined ? undefined : Duration.seconds(tick),
    sweepMaxConcurrency: num(node, 'sweepMaxConcurrency'),
    watermarkTolerance: tolerance === undefined ? undefined : Duration.millis(tolerance),
    billing,
    removalPolicy: removal === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    housekeepingTtl: ttlDays === undefined ? undefined : Duration.days(ttlDays),
    alarms: storm === undefined ? undefined : { offlineStormPerMinute: storm },
  };
}

export interface OfflineDetectorStackProps extends StackProps {
  /** Overrides what context would give. */
  readonly detector?: OfflineDetectorProps;
}

export class OfflineDetectorStack extends Stack {
  readonly detector: OfflineDetector;

  constructor(scope: Construct, id: string, props: OfflineDetectorStackProps = {}) {
    super(scope, id, props);
    const d = new OfflineDetector(this, 'Detector', { ...propsFromContext(this.node), ...props.detector });
    this.detector = d;

    const alarmEmail = str(this.node, 'alarmEmail');
    if (alarmEmail) d.alarmTopic.addSubscription(new subscriptions.EmailSubscription(alarmEmail));

    const out = (id: string, value: string | undefined, description: string) => {
      if (value) new CfnOutput(this, id, { value, description });
    };
    out('TableName', d.table.tableName, 'Devices table');
    out('IngestQueueUrl', d.ingestQueue?.queueUrl, 'SQS queue devices send to');
    out('IngestStreamName', d.ingestStream?.streamName, 'Kinesis stream devices put to (partition key = deviceId)');
    out('OnlineTopicArn', d.onlineTopic.topicArn, 'device.online events');
    out('OfflineTopicArn', d.offlineTopic.topicArn, 'device.offline events');
    out('AlarmTopicArn', d.alarmTopic.topicArn, 'Alarm notifications');
    out('RejectsQueueUrl', d.rejectsQueue.queueUrl, 'Rejected messages with their reason');
    out('DispatchFunctionName', d.dispatchFunction.functionName, 'Dispatcher (invoked every minute by the scheduler)');
    out('DashboardName', d.dashboard.dashboard.dashboardName, 'CloudWatch dashboard');
    out('ApiUrl', d.apiUrl?.url, 'Operator API, admin: every command (IAM auth; npx offline-detector --url <this>)');
    out('ApiReadUrl', d.apiReadUrl?.url, 'Operator API, read only: status, list, stats (IAM auth; --url <this>)');
  }
}
