// The synthesized template of the OfflineDetector construct and stack: every resource and setting issue 4 asks for,
// and IAM statements scoped to the resources they touch. Bundling is skipped (the bundling test covers it).
import { readFileSync } from 'node:fs';
import { App, type CfnElement, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { ENV, loadIngestConfig } from '../../lambdas/core/config.js';
import { METRICS_NAMESPACE } from '../../lambdas/core/contracts.js';
import { batchedSizing } from '../../lambdas/core/sizing.js';
import {
  CONTROL_KEY_PREFIX,
  DEADLINE_INDEX,
  DEFAULT_SHARD_COUNT,
  KEY,
  MAINTENANCE_KEY,
  OFFLINE_INDEX,
  OUTAGES_KEY,
  OUTBOX_INDEX,
  PROBE_KEY_ITEM,
  SHARD_TABLE,
  TTL_ATTRIBUTE,
  WATERMARKS_KEY,
} from '../../lambdas/core/table-schema.js';
import { OfflineDetector, type OfflineDetectorProps } from '../../lib/offline-detector.js';
import { OfflineDetectorStack } from '../../lib/offline-detector-stack.js';
import { ValidationError } from '../../lib/validation-error.js';
import { deviceTableInput, shardTableInput } from '../../sim/engines/resources.js';

const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };

function stackWith(context: Record<string, unknown> = {}): { stack: OfflineDetectorStack; template: Template } {
  const app = new App({ context: { ...NO_BUNDLING, ...context } });
  const stack = new OfflineDetectorStack(app, 'Test');
  return { stack, template: Template.fromStack(stack) };
}

function construct(props: OfflineDetectorProps): { detector: OfflineDetector; template: Template; stack: Stack } {
  const app = new App({ context: NO_BUNDLING });
  const stack = new Stack(app, 'Embed');
  const detector = new OfflineDetector(stack, 'Detector', props);
  return { detector, stack, template: Template.fromStack(stack) };
}

type Resource = { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string };
type Statement = { Effect: string; Action: string | string[]; Resource: unknown };

function resources(template: Template, type: string): Record<string, Resource> {
  return template.findResources(type) as Record<string, Resource>;
}
function only(template: Template, type: string): [string, Resource] {
  const entries = Object.entries(resources(template, type));
  expect(entries).toHaveLength(1);
  return entries[0]!;
}
/** The construct's logical ID in the template, an overridden one included (stack.getLogicalId ignores overrides). */
function logicalId(stack: Stack, construct: { node: { defaultChild?: unknown } }): string {
  return stack.resolve((construct.node.defaultChild as CfnElement).logicalId);
}
function functionEnv(template: Template, id: string): Record<string, unknown> {
  const fn = resources(template, 'AWS::Lambda::Function')[id];
  expect(fn, id).toBeDefined();
  return (fn!.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
}
/** The statements of the default policy attached to a function's role. */
function statements(template: Template, stack: Stack, fn: { role?: unknown }): Statement[] {
  const roleId = stack.getLogicalId((fn.role as { node: { defaultChild: never } }).node.defaultChild);
  return Object.values(resources(template, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(roleId))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}
function actionsOn(stmts: Statement[], resourceFragment: string): string[] {
  return stmts
    .filter((s) => JSON.stringify(s.Resource).includes(resourceFragment))
    .flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
}

describe('OfflineDetectorStack (defaults)', () => {
  const { stack, template } = stackWith();
  const d = stack.detector;

  it('builds the devices table from table-schema.ts', () => {
    template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      KeySchema: [{ AttributeName: KEY, KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
      SSESpecification: { SSEEnabled: true },
      TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
      Replicas: [
        Match.objectLike({
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          DeletionProtectionEnabled: true,
        }),
      ],
      // The same indexes the local runtime and the tests create: cloud and local cannot drift.
      GlobalSecondaryIndexes: Match.arrayEquals(deviceTableInput('x').GlobalSecondaryIndexes ?? []),
      AttributeDefinitions: Match.arrayWith(deviceTableInput('x').AttributeDefinitions ?? []),
    });
    const [, table] = only(template, 'AWS::DynamoDB::GlobalTable');
    expect(table.DeletionPolicy).toBe('Retain');
    // No sort key on the table: one item per device.
    expect(table.Properties.KeySchema).toHaveLength(1);
  });

  it('creates the ingest queue with a DLQ and redrive, and a rejects queue, all encrypted', () => {
    const queues = resources(template, 'AWS::SQS::Queue');
    const ingest = queues[logicalId(stack, d.ingestQueue as sqs.Queue)]!;
    expect(ingest.Properties.RedrivePolicy).toEqual({
      deadLetterTargetArn: { 'Fn::GetAtt': [logicalId(stack, d.ingestDeadLetterQueue!), 'Arn'] },
      maxReceiveCount: 5,
    });
    expect(ingest.Properties.VisibilityTimeout).toBe(6 * 30);
    expect(queues[logicalId(stack, d.rejectsQueue)]).toBeDefined();
    for (const q of Object.values(queues)) expect(q.Properties.SqsManagedSseEnabled).toBe(true);
    // Every queue policy denies non-TLS access.
    const policies = Object.values(resources(template, 'AWS::SQS::QueuePolicy'));
    expect(policies).toHaveLength(Object.keys(queues).length);
    for (const p of policies) expect(JSON.stringify(p.Properties)).toContain('aws:SecureTransport');
  });

  it('wires the SQS ingest event source with partial batch responses and bounded concurrency', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [logicalId(stack, d.ingestQueue as sqs.Queue), 'Arn'] },
      FunctionName: { Ref: logicalId(stack, d.ingestSqsFunction!) },
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 50 },
    });
  });

  it('creates no Kinesis stream unless asked', () => {
    template.resourceCountIs('AWS::Kinesis::Stream', 0);
    expect(d.ingestKinesisFunction).toBeUndefined();
  });

  it('has a sweep queue with a DLQ and visibility ≥ 6 × the sweep timeout, consumed with maxConcurrency', () => {
    const sweepQueue = resources(template, 'AWS::SQS::Queue')[logicalId(stack, d.sweepQueue)]!;
    const sweepFn = resources(template, 'AWS::Lambda::Function')[logicalId(stack, d.sweepFunction)]!;
    expect(sweepQueue.Properties.VisibilityTimeout).toBeGreaterThanOrEqual(6 * (sweepFn.Properties.Timeout as number));
    expect(sweepQueue.Properties.RedrivePolicy).toMatchObject({
      deadLetterTargetArn: { 'Fn::GetAtt': [logicalId(stack, d.sweepDeadLetterQueue), 'Arn'] },
    });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [logicalId(stack, d.sweepQueue), 'Arn'] },
      FunctionName: { Ref: logicalId(stack, d.sweepFunction) },
      BatchSize: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 64 },
    });
  });

  it('runs the dispatcher every minute with EventBridge Scheduler', () => {
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      FlexibleTimeWindow: { Mode: 'OFF' },
      Target: Match.objectLike({
        Arn: { 'Fn::GetAtt': [logicalId(stack, d.dispatchFunction), 'Arn'] },
        RetryPolicy: { MaximumEventAgeInSeconds: 60, MaximumRetryAttempts: 2 },
        RoleArn: { 'Fn::GetAtt': [logicalId(stack, d.scheduleRole), 'Arn'] },
      }),
    });
    // The schedule's own role (not the stack-wide one aws-scheduler-targets shares): it may invoke the dispatcher only.
    const dispatchArn = { 'Fn::GetAtt': [logicalId(stack, d.dispatchFunction), 'Arn'] };
    expect(statements(template, stack, { role: d.scheduleRole })).toEqual([
      expect.objectContaining({
        Effect: 'Allow',
        Action: 'lambda:InvokeFunction',
        Resource: [dispatchArn, { 'Fn::Join': ['', [dispatchArn, ':*']] }],
      }),
    ]);
  });

  it('encrypts every topic with the rotated customer key and enforces TLS', () => {
    const keyId = logicalId(stack, d.topicKey);
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    const topics = Object.values(resources(template, 'AWS::SNS::Topic'));
    expect(topics).toHaveLength(3);
    for (const t of topics) expect(t.Properties.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
    for (const p of Object.values(resources(template, 'AWS::SNS::TopicPolicy'))) {
      expect(JSON.stringify(p.Properties)).toContain('aws:SecureTransport');
    }
    // CloudWatch may use the key and publish to the ops topic, or alarms would fail silently; only for alarms of this
    // account and region (issue 14: confused deputy).
    const fromOurAlarms = {
      StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
      ArnLike: {
        'aws:SourceArn': {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':cloudwatch:',
              { Ref: 'AWS::Region' },
              ':',
              { Ref: 'AWS::AccountId' },
              ':alarm:*',
            ],
          ],
        },
      },
    };
    const keyPolicy = resources(template, 'AWS::KMS::Key')[keyId]!.Properties.KeyPolicy as { Statement: Statement[] };
    const cloudwatch = keyPolicy.Statement.filter((s) => JSON.stringify(s).includes('cloudwatch.amazonaws.com'));
    expect(cloudwatch).toEqual([
      expect.objectContaining({
        Effect: 'Allow',
        Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        Condition: fromOurAlarms,
      }),
    ]);
    const alarmTopicPolicy = Object.values(resources(template, 'AWS::SNS::TopicPolicy')).find((p) =>
      JSON.stringify(p.Properties.Topics).includes(logicalId(stack, d.alarmTopic as sns.Topic)),
    );
    expect((alarmTopicPolicy!.Properties.PolicyDocument as { Statement: unknown[] }).Statement).toContainEqual(
      expect.objectContaining({ Principal: { Service: 'cloudwatch.amazonaws.com' }, Condition: fromOurAlarms }),
    );
  });

  it('lets only the ingest and sweep functions publish to the event topics, with signature version 2 (issue 14)', () => {
    const roleArn = (fn: { role?: unknown }) => ({
      'Fn::GetAtt': [stack.getLogicalId((fn.role as { node: { defaultChild: never } }).node.defaultChild), 'Arn'],
    });
    for (const topic of [d.onlineTopic, d.offlineTopic]) {
      const id = logicalId(stack, topic as sns.Topic);
      expect(resources(template, 'AWS::SNS::Topic')[id]!.Properties.SignatureVersion).toBe('2');
      const policy = Object.values(resources(template, 'AWS::SNS::TopicPolicy')).find((p) =>
        JSON.stringify(p.Properties.Topics).includes(id),
      );
      expect(policy).toBeDefined();
      expect((policy!.Properties.PolicyDocument as { Statement: unknown[] }).Statement).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Action: 'sns:Publish',
          Condition: {
            ArnNotEquals: { 'aws:PrincipalArn': [roleArn(d.ingestSqsFunction!), roleArn(d.sweepFunction)] },
          },
        }),
      );
    }
  });

  it('bundles every function as nodejs22.x on arm64 with a log group of bounded retention', () => {
    const fns = Object.values(resources(template, 'AWS::Lambda::Function'));
    expect(fns).toHaveLength(5); // ingest, dispatch, sweep, API admin and read
    for (const fn of fns) {
      expect(fn.Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
      });
      expect(fn.Properties.LoggingConfig).toBeDefined();
    }
    const logGroups = Object.values(resources(template, 'AWS::Logs::LogGroup'));
    expect(logGroups).toHaveLength(5);
    for (const lg of logGroups) expect(lg.Properties.RetentionInDays).toBe(30);
  });

  it('gives each function the environment its handler reads, by ENV name', () => {
    const common = [ENV.tableName, ENV.shardCount, ENV.deviceTypes, ENV.defaultDeviceType];
    const topics = [ENV.onlineTopicArn, ENV.offlineTopicArn];
    const ingest = functionEnv(template, logicalId(stack, d.ingestSqsFunction!));
    const dispatch = functionEnv(template, logicalId(stack, d.dispatchFunction));
    const sweep = functionEnv(template, logicalId(stack, d.sweepFunction));
    for (const env of [ingest, dispatch, sweep]) {
      for (const name of [...common, ...topics]) expect(env, name).toHaveProperty(name);
      expect(env.POWERTOOLS_METRICS_NAMESPACE).toBe(METRICS_NAMESPACE);
      expect(env[ENV.shardCount]).toBe(String(DEFAULT_SHARD_COUNT));
      expect(env[ENV.tableName]).toEqual({ Ref: logicalId(stack, d.table) });
    }
    expect(ingest.POWERTOOLS_SERVICE_NAME).toBe('ingest');
    expect(dispatch.POWERTOOLS_SERVICE_NAME).toBe('dispatch');
    expect(sweep.POWERTOOLS_SERVICE_NAME).toBe('sweep');
    for (const name of [
      ENV.deviceTsSkewMs,
      ENV.announceNewDevices,
      ENV.housekeepingTtlDays,
      ENV.rejectsQueueUrl,
      ENV.ingestQueueUrls,
    ]) {
      expect(ingest, name).toHaveProperty(name);
    }
    expect(ingest[ENV.ingestQueueUrls]).toEqual({ Ref: logicalId(stack, d.ingestQueue as sqs.Queue) });
    for (const name of [ENV.sweepQueueUrl, ENV.sweepTickSeconds, ENV.ingestQueueUrls, ENV.ingestStreamArns]) {
      expect(dispatch, name).toHaveProperty(name);
    }
    for (const name of [
      ENV.sweepQueueUrl,
      ENV.sweepTickSeconds,
      ENV.sweepBudgetMs,
      ENV.watermarkToleranceMs,
      ENV.ingestQueueUrls,
      ENV.ingestStreamArns,
    ]) {
      expect(sweep, name).toHaveProperty(name);
    }
    expect(sweep[ENV.sweepTickSeconds]).toBe('10');
    expect(sweep[ENV.watermarkToleranceMs]).toBe('30000');
    // The app's cdk.json context is not read here: the construct's own default device type applies.
    expect(JSON.parse(ingest[ENV.deviceTypes] as string)).toEqual({ default: { timeoutMs: 300000, precisionMs: 0 } });
  });

  it('scopes every IAM statement to named resources (no "*")', () => {
    for (const [id, policy] of Object.entries(resources(template, 'AWS::IAM::Policy'))) {
      for (const s of (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement) {
        const list = Array.isArray(s.Resource) ? s.Resource : [s.Resource];
        for (const r of list) expect(r, `${id}: ${JSON.stringify(s.Action)}`).not.toBe('*');
      }
    }
    for (const role of Object.values(resources(template, 'AWS::IAM::Role'))) {
      expect(role.Properties.ManagedPolicyArns, 'no managed policies').toBeUndefined();
    }
  });

  it('grants ingest only item writes, rejects, topics and its source', () => {
    const s = statements(template, stack, d.ingestSqsFunction!);
    const table = logicalId(stack, d.table);
    expect(actionsOn(s, table).sort()).toEqual(['dynamodb:GetItem', 'dynamodb:UpdateItem']);
    expect(JSON.stringify(s)).not.toContain('/index/');
    // Only what the code calls (issue 14): SendMessageBatch needs sqs:SendMessage; no GetQueueAttributes/GetQueueUrl.
    expect(actionsOn(s, logicalId(stack, d.rejectsQueue))).toEqual(['sqs:SendMessage']);
    expect(actionsOn(s, logicalId(stack, d.ingestQueue as sqs.Queue))).toEqual(
      expect.arrayContaining(['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes']),
    );
    expect(actionsOn(s, logicalId(stack, d.onlineTopic as sns.Topic))).toEqual(['sns:Publish']);
    expect(actionsOn(s, logicalId(stack, d.topicKey))).toEqual(['kms:Decrypt', 'kms:GenerateDataKey*']);
    expect(actionsOn(s, logicalId(stack, d.sweepQueue))).toEqual([]);
  });

  it('grants dispatch sweep-job and probe sends and the watermark item, nothing else', () => {
    const s = statements(template, stack, d.dispatchFunction);
    // Its control items only (issue 14): every key it reads or writes is named, device items are out of reach.
    expect(s.filter((st) => JSON.stringify(st.Action).includes('dynamodb:'))).toEqual([
      expect.objectContaining({
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
        Resource: { 'Fn::GetAtt': [logicalId(stack, d.table), 'Arn'] },
        Condition: {
          'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [WATERMARKS_KEY, PROBE_KEY_ITEM, MAINTENANCE_KEY] },
          Null: { 'dynamodb:LeadingKeys': 'false' },
        },
      }),
    ]);
    expect(actionsOn(s, logicalId(stack, d.sweepQueue))).toEqual(['sqs:SendMessage']);
    // The probes look the queue's ARN up by its URL (GetQueueAttributes), and send.
    expect(actionsOn(s, logicalId(stack, d.ingestQueue as sqs.Queue)).sort()).toEqual([
      'sqs:GetQueueAttributes',
      'sqs:SendMessage',
    ]);
    expect(actionsOn(s, logicalId(stack, d.table)).sort()).toEqual(['dynamodb:GetItem', 'dynamodb:UpdateItem']);
    expect(JSON.stringify(s)).not.toContain('sns:Publish');
  });

  it('grants sweep Query on exactly the two indexes, item writes, continuations and publishing', () => {
    const s = statements(template, stack, d.sweepFunction);
    const query = s.find((st) => st.Action === 'dynamodb:Query');
    expect(query?.Resource).toEqual(
      [DEADLINE_INDEX.name, OUTBOX_INDEX.name].map((i) => ({
        'Fn::Join': ['', [{ 'Fn::GetAtt': [logicalId(stack, d.table), 'Arn'] }, `/index/${i}`]],
      })),
    );
    expect(actionsOn(s, logicalId(stack, d.sweepQueue))).toEqual(
      expect.arrayContaining(['sqs:SendMessage', 'sqs:ReceiveMessage']),
    );
    // Continuations are sent: SendMessage is the one send action granted beyond the event source's consume set.
    expect(actionsOn(s, logicalId(stack, d.sweepQueue)).filter((a) => a.startsWith('sqs:Send'))).toEqual([
      'sqs:SendMessage',
    ]);
    expect(actionsOn(s, logicalId(stack, d.offlineTopic as sns.Topic))).toEqual(['sns:Publish']);
    expect(actionsOn(s, logicalId(stack, d.rejectsQueue))).toEqual([]);
  });

  it('serves the operator API from two Function URLs, read and admin, both requiring IAM (SigV4) auth', () => {
    const urls = Object.values(resources(template, 'AWS::Lambda::Url'));
    expect(urls.map((u) => u.Properties)).toEqual([
      { AuthType: 'AWS_IAM', TargetFunctionArn: { 'Fn::GetAtt': [logicalId(stack, d.apiFunction!), 'Arn'] } },
      { AuthType: 'AWS_IAM', TargetFunctionArn: { 'Fn::GetAtt': [logicalId(stack, d.apiReadFunction!), 'Arn'] } },
    ]);
    // No resource policy opens them to anyone: callers need lambda:InvokeFunctionUrl from their own identity policy.
    for (const permission of Object.values(resources(template, 'AWS::Lambda::Permission'))) {
      expect(permission.Properties.FunctionUrlAuthType).not.toBe('NONE');
      expect(permission.Properties.Principal).not.toBe('*');
    }
    for (const [fn, access] of [
      [d.apiFunction!, 'admin'],
      [d.apiReadFunction!, 'read'],
    ] as const) {
      expect(functionEnv(template, logicalId(stack, fn))).toMatchObject({
        POWERTOOLS_SERVICE_NAME: 'api',
        [ENV.tableName]: { Ref: logicalId(stack, d.table) },
        // GET /stats reads every shard of the deadline index, and keeps the counts for a minute.
        [ENV.shardCount]: String(DEFAULT_SHARD_COUNT),
        [ENV.apiAccess]: access,
        [ENV.statsCacheSeconds]: '60',
      });
      // No reserved concurrency unless asked: reserving fails deployment in accounts with a small quota.
      expect(resources(template, 'AWS::Lambda::Function')[logicalId(stack, fn)]!.Properties).not.toHaveProperty(
        'ReservedConcurrentExecutions',
      );
    }
    expect(template.findOutputs('ApiUrl').ApiUrl!.Value).toEqual({
      'Fn::GetAtt': [logicalId(stack, d.apiUrl!), 'FunctionUrl'],
    });
    expect(template.findOutputs('ApiReadUrl').ApiReadUrl!.Value).toEqual({
      'Fn::GetAtt': [logicalId(stack, d.apiReadUrl!), 'FunctionUrl'],
    });
  });

  it('lets the API roles touch device items only: the admin reads and updates, the read role only reads (issue 14)', () => {
    const tableArn = { 'Fn::GetAtt': [logicalId(stack, d.table), 'Arn'] };
    const index = (name: string) => ({ 'Fn::Join': ['', [tableArn, `/index/${name}`]] });
    const noControlItems = expect.objectContaining({
      Effect: 'Deny',
      Action: expect.arrayContaining(['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:PutItem']),
      Resource: tableArn,
      // The maintenance windows' item is the one control item operators read (and the admin writes).
      Condition: {
        'ForAnyValue:StringLike': { 'dynamodb:LeadingKeys': [`${CONTROL_KEY_PREFIX}*`] },
        'ForAnyValue:StringNotEquals': { 'dynamodb:LeadingKeys': [MAINTENANCE_KEY] },
      },
    });
    const query = expect.objectContaining({
      Effect: 'Allow',
      Action: 'dynamodb:Query',
      Resource: [index(DEADLINE_INDEX.name), index(OFFLINE_INDEX.name)],
    });
    const admin = statements(template, stack, d.apiFunction!);
    expect(admin.filter((st) => JSON.stringify(st.Action).includes('dynamodb:'))).toEqual([
      expect.objectContaining({
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
        Resource: tableArn,
      }),
      query,
      noControlItems,
    ]);
    const read = statements(template, stack, d.apiReadFunction!);
    expect(read.filter((st) => JSON.stringify(st.Action).includes('dynamodb:'))).toEqual([
      expect.objectContaining({ Effect: 'Allow', Action: 'dynamodb:GetItem', Resource: tableArn }),
      query,
      noControlItems,
    ]);
    // The read role can change nothing at all: no write action is allowed anywhere.
    const allowed = (stmts: Statement[]) =>
      stmts.filter((st) => st.Effect === 'Allow').flatMap((st) => (Array.isArray(st.Action) ? st.Action : [st.Action]));
    expect(allowed(read).join(' ')).not.toMatch(/UpdateItem|PutItem|DeleteItem|BatchWrite|Transact|sqs:|sns:/);
    // Besides the table, only their own log groups (and the admin the maintenance schedules, tested below); no scan,
    // batch, write to anything else, no outbox index.
    for (const s of [admin, read]) {
      for (const st of s.filter((st) => !JSON.stringify(st.Action).match(/dynamodb:|scheduler:|iam:PassRole/))) {
        expect(JSON.stringify(st.Action)).toMatch(/logs:/);
      }
      expect(allowed(s).join(' ')).not.toMatch(/DeleteItem|Scan|PutItem|Batch|Transact|sns:|sqs:/);
      expect(JSON.stringify(s)).not.toContain(OUTBOX_INDEX.name);
    }
  });

  it("schedules maintenance windows in its own group: Scheduler's role invokes the dispatcher only, the admin API manages that group's schedules only (issue 12)", () => {
    const groups = resources(template, 'AWS::Scheduler::ScheduleGroup');
    expect(Object.keys(groups)).toHaveLength(1);
    const groupId = logicalId(stack, d.maintenance!.scheduleGroup);
    const role = resources(template, 'AWS::IAM::Role')[logicalId(stack, d.maintenance!.schedulerRole)]!;
    expect((role.Properties.AssumeRolePolicyDocument as { Statement: unknown }).Statement).toEqual([
      expect.objectContaining({
        Principal: { Service: 'scheduler.amazonaws.com' },
        Condition: {
          StringEquals: {
            'aws:SourceAccount': { Ref: 'AWS::AccountId' },
            'aws:SourceArn': { 'Fn::GetAtt': [groupId, 'Arn'] },
          },
        },
      }),
    ]);
    const dispatchArn = { 'Fn::GetAtt': [logicalId(stack, d.dispatchFunction), 'Arn'] };
    expect(statements(template, stack, { role: d.maintenance!.schedulerRole })).toEqual([
      expect.objectContaining({
        Effect: 'Allow',
        Action: 'lambda:InvokeFunction',
        Resource: [dispatchArn, { 'Fn::Join': ['', [dispatchArn, ':*']] }],
      }),
    ]);
    const admin = statements(template, stack, d.apiFunction!);
    const scheduleArns = JSON.stringify(admin.find((st) => JSON.stringify(st.Action).includes('scheduler:'))!.Resource);
    expect(admin.filter((st) => JSON.stringify(st.Action).match(/scheduler:|iam:/))).toEqual([
      expect.objectContaining({ Action: ['scheduler:CreateSchedule', 'scheduler:DeleteSchedule'] }),
      expect.objectContaining({
        Action: 'iam:PassRole',
        Resource: { 'Fn::GetAtt': [logicalId(stack, d.maintenance!.schedulerRole), 'Arn'] },
        Condition: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
      }),
    ]);
    expect(scheduleArns).toMatch(/:schedule\/.*\/\*"/);
    expect(scheduleArns).not.toMatch(/schedule\/\*/);
    // The read API can list windows but schedules nothing.
    const read = statements(template, stack, d.apiReadFunction!);
    expect(JSON.stringify(read)).not.toMatch(/scheduler:|iam:PassRole/);
    const env = (fn: Construct) =>
      (
        resources(template, 'AWS::Lambda::Function')[logicalId(stack, fn)]!.Properties.Environment as {
          Variables: Record<string, unknown>;
        }
      ).Variables;
    expect(env(d.apiFunction!)).toMatchObject({
      MAINTENANCE_SCHEDULE_GROUP: d.maintenance!.scheduleGroup.scheduleGroupName,
      MAINTENANCE_TARGET_ARN: dispatchArn,
      MAINTENANCE_SCHEDULER_ROLE_ARN: { 'Fn::GetAtt': [logicalId(stack, d.maintenance!.schedulerRole), 'Arn'] },
    });
    expect(env(d.apiReadFunction!).MAINTENANCE_SCHEDULE_GROUP).toBeUndefined();
  });

  it('passes the parent tag to the sweep and allow-list mode to the ingest; a parent tag must be a field-map tag', () => {
    const {
      template: t,
      stack: s,
      detector,
    } = construct({
      fieldMap: { tags: { site: 'meta.site', gatewayId: 'meta.gw' } },
      parentTag: 'gatewayId',
      allowList: true,
    });
    const env = (fn: Construct) =>
      (
        resources(t, 'AWS::Lambda::Function')[logicalId(s, fn)]!.Properties.Environment as {
          Variables: Record<string, unknown>;
        }
      ).Variables;
    expect(env(detector.sweepFunction).PARENT_TAG).toBe('gatewayId');
    expect(env(detector.ingestSqsFunction!)).toMatchObject({
      ALLOW_LIST: 'true',
      FIELD_MAP: JSON.stringify({ tags: { site: 'meta.site', gatewayId: 'meta.gw' } }),
    });
    expect(() => construct({ fieldMap: { tags: { site: 'site' } }, parentTag: 'gatewayId' })).toThrow(
      /Detector: parentTag "gatewayId" must be one of fieldMap.tags \(site\)/,
    );
    expect(() => construct({ fieldMap: { tags: { 'bad name': 'x' } } })).toThrow(
      /Detector: fieldMap: FIELD_MAP: tag name/,
    );
  });

  it('outage detection: every publisher and the dispatcher get its settings; the dispatcher reads byOffline, writes #outages, publishes fleet events (issue 12)', () => {
    const {
      template: t,
      stack: s,
      detector,
    } = construct({
      fieldMap: { tags: { site: 'site' } },
      outageDetection: { groupBy: 'site', minDevices: 20, window: Duration.minutes(10) },
    });
    const env = (fn: Construct) =>
      (
        resources(t, 'AWS::Lambda::Function')[logicalId(s, fn)]!.Properties.Environment as {
          Variables: Record<string, unknown>;
        }
      ).Variables;
    const setting = JSON.stringify({ groupBy: 'site', minDevices: 20, windowSeconds: 600 });
    for (const fn of [detector.dispatchFunction, detector.sweepFunction, detector.ingestSqsFunction!]) {
      expect(env(fn).OUTAGE_DETECTION).toBe(setting);
    }
    const dispatch = statements(t, s, detector.dispatchFunction);
    const tableArn = { 'Fn::GetAtt': [logicalId(s, detector.table), 'Arn'] };
    expect(JSON.stringify(dispatch)).toContain(`/index/${OFFLINE_INDEX.name}`);
    expect(dispatch).toContainEqual(
      expect.objectContaining({
        Resource: tableArn,
        Condition: expect.objectContaining({
          'ForAllValues:StringEquals': {
            'dynamodb:LeadingKeys': [WATERMARKS_KEY, PROBE_KEY_ITEM, MAINTENANCE_KEY, OUTAGES_KEY],
          },
        }),
      }),
    );
    expect(actionsOn(dispatch, logicalId(s, detector.offlineTopic as sns.Topic))).toEqual(['sns:Publish']);
    expect(() => construct({ outageDetection: { groupBy: 'site', minDevices: 20 } })).toThrow(
      /Detector: outageDetection.groupBy "site" must be deviceType or one of fieldMap.tags \(none\)/,
    );
    expect(() => construct({ outageDetection: { groupBy: 'deviceType', minDevices: 1 } })).toThrow(
      /Detector: outageDetection: minDevices must be/,
    );
    // Off by default: no setting anywhere.
    expect(JSON.stringify(template.toJSON())).not.toContain('OUTAGE_DETECTION');
  });

  it('can leave the API out, and grants callers invoke-url on the read or the admin URL', () => {
    const without = construct({ operatorApi: false });
    expect(without.detector.apiFunction).toBeUndefined();
    expect(without.detector.apiReadFunction).toBeUndefined();
    expect(Object.keys(resources(without.template, 'AWS::Lambda::Url'))).toHaveLength(0);
    expect(() => without.detector.grantRead(new iam.AccountRootPrincipal())).toThrow(/operatorApi: false/);

    const app = new App({ context: NO_BUNDLING });
    const embed = new Stack(app, 'Grant');
    const detector = new OfflineDetector(embed, 'Detector');
    const role = (id: string) => new iam.Role(embed, id, { assumedBy: new iam.AccountRootPrincipal() });
    const [dashboard, operator, legacy] = [role('Dashboard'), role('Operator'), role('Legacy')];
    detector.grantRead(dashboard);
    detector.grantAdmin(operator);
    detector.grantApi(legacy); // deprecated: the admin grant
    const template = Template.fromStack(embed);
    const invokes = (grantee: iam.Role) =>
      statements(template, embed, { role: grantee })
        .filter((st) => JSON.stringify(st.Action).includes('lambda:InvokeFunctionUrl'))
        .map((st) => st.Resource);
    const arn = (fn: { node: { defaultChild?: unknown } }) => ({ 'Fn::GetAtt': [logicalId(embed, fn), 'Arn'] });
    expect(invokes(dashboard)).toEqual([arn(detector.apiReadFunction!)]);
    expect(invokes(operator)).toEqual([arn(detector.apiFunction!)]);
    expect(invokes(legacy)).toEqual([arn(detector.apiFunction!)]);
    // No direct invoke: lambda:InvokeFunction only through the URL, so the authorizer context the handler logs as the
    // caller is always the one Lambda verified, never an event a direct invoker made up.
    for (const grantee of [dashboard, operator, legacy]) {
      const direct = statements(template, embed, { role: grantee }).filter(
        (st) => st.Action === 'lambda:InvokeFunction',
      );
      expect(direct.length).toBeGreaterThan(0);
      for (const st of direct) {
        expect((st as Statement & { Condition?: unknown }).Condition).toEqual({
          Bool: { 'lambda:InvokedViaFunctionUrl': true },
        });
      }
    }
  });

  it('alarms on DLQs, ingest age, sweep lag, watermark, dispatch, throttles, offline storm, publish and Lambda errors', () => {
    const alarms = Object.entries(resources(template, 'AWS::CloudWatch::Alarm'));
    const named = (fragment: string) => alarms.filter(([id]) => id.includes(fragment));
    for (const fragment of [
      'IngestDLQDepth',
      'SweepDLQDepth',
      'IngestQueueAge',
      'SweepLag',
      'WatermarkAge',
      'DispatchNotRunning',
      'TableThrottles',
      'OfflineStorm',
      'PublishFailures',
      'NewDevices',
      'MessagesRejected',
      'RejectsQueueAge',
      'RejectsNotDelivered',
      'HoldFailures',
      'IngestSqsFunctionErrors',
      'DispatchFunctionErrors',
      'SweepFunctionErrors',
    ]) {
      expect(named(fragment), fragment).toHaveLength(1);
    }
    const alarmTopic = logicalId(stack, d.alarmTopic as sns.Topic);
    for (const [id, alarm] of alarms) {
      expect(alarm.Properties.AlarmActions, id).toEqual([{ Ref: alarmTopic }]);
      expect(alarm.Properties.AlarmDescription, id).toEqual(expect.any(String));
    }
    const storm = named('OfflineStorm')[0]![1].Properties;
    expect(storm).toMatchObject({ Namespace: METRICS_NAMESPACE, MetricName: 'OfflineTransitions', Threshold: 1000 });
    expect(storm.Dimensions).toEqual([{ Name: 'service', Value: 'sweep' }]);
    // Device-id flooding and rejected input are alarmed on (issue 14).
    expect(named('NewDevices')[0]![1].Properties).toMatchObject({ MetricName: 'NewDevices', Threshold: 1000 });
    // From the ingest, and the batched sweep in allow-list mode: the sum of both.
    type MetricStat = { MetricStat?: { Metric: { MetricName: string; Dimensions: unknown } } };
    const rejected = named('MessagesRejected')[0]![1].Properties as { Threshold: number; Metrics: MetricStat[] };
    expect(rejected).toMatchObject({ Threshold: 100 });
    expect(
      rejected.Metrics.flatMap((m) =>
        m.MetricStat ? [[m.MetricStat.Metric.MetricName, m.MetricStat.Metric.Dimensions]] : [],
      ),
    ).toEqual([
      ['MessagesRejected', [{ Name: 'service', Value: 'ingest' }]],
      ['MessagesRejected', [{ Name: 'service', Value: 'sweep' }]],
    ]);
    // The rejects queue is read, not consumed: its oldest message waiting a week means nobody looks (they expire at
    // 14 days). The cdk-nag acknowledgement of its missing DLQ names this alarm.
    expect(named('RejectsQueueAge')[0]![1].Properties).toMatchObject({
      MetricName: 'ApproximateAgeOfOldestMessage',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [logicalId(stack, d.rejectsQueue), 'QueueName'] } }],
      Threshold: 7 * 86_400,
    });
    // Throttles sum the table and both indexes.
    const throttles = JSON.stringify(named('TableThrottles')[0]![1].Properties);
    for (const index of [DEADLINE_INDEX.name, OUTBOX_INDEX.name]) expect(throttles).toContain(index);
    expect(named('DispatchNotRunning')[0]![1].Properties.TreatMissingData).toBe('breaching');
  });

  it('has a dashboard with the incident widgets', () => {
    const [, dash] = only(template, 'AWS::CloudWatch::Dashboard');
    const body = JSON.stringify(dash.Properties.DashboardBody);
    for (const title of [
      'Ingest rate and rejects',
      'Writes vs skipped writes',
      'Write units consumed',
      'Throttles (table and indexes)',
      'Ingest lag',
      'Watermark and sweep lag',
      'Transitions',
      'Detection lateness',
      'Outbox and publishing',
      'Lambda errors and throttles',
      'Lambda duration p99',
      'Dead letters and rejects',
      'Alarms',
    ]) {
      expect(body, title).toContain(title);
    }
    for (const metric of ['MessagesRejected', 'WritesCoalesced', 'WatermarkAgeMs', 'DetectionLatenessMs', 'p99']) {
      expect(body).toContain(metric);
    }
  });

  it('synthesizes without errors or warnings', () => {
    const annotations = Annotations.fromStack(stack);
    expect(annotations.findError('*', Match.anyValue())).toEqual([]);
    expect(annotations.findWarning('*', Match.anyValue())).toEqual([]);
  });

  it('outputs what users and the end-to-end test need', () => {
    const outputs = template.findOutputs('*');
    for (const name of ['TableName', 'IngestQueueUrl', 'OfflineTopicArn', 'OnlineTopicArn', 'DispatchFunctionName']) {
      expect(outputs, name).toHaveProperty(name);
    }
  });
});

describe('OfflineDetector (storm sizing)', () => {
  it('pre-warms the table and the named indexes when asked, and nothing by default', () => {
    const { template } = construct({
      warmThroughput: {
        table: { writeUnitsPerSecond: 40_000 },
        indexes: { byOutbox: { writeUnitsPerSecond: 40_000 }, byOffline: { writeUnitsPerSecond: 20_000 } },
      },
    });
    const [, table] = only(template, 'AWS::DynamoDB::GlobalTable');
    const props = table.Properties as {
      WarmThroughput?: unknown;
      GlobalSecondaryIndexes: Array<{ IndexName: string; WarmThroughput?: unknown }>;
    };
    expect(props.WarmThroughput).toEqual({ WriteUnitsPerSecond: 40_000 });
    const warm = Object.fromEntries(props.GlobalSecondaryIndexes.map((i) => [i.IndexName, i.WarmThroughput]));
    expect(warm).toEqual({
      byDeadline: undefined,
      byOutbox: { WriteUnitsPerSecond: 40_000 },
      byOffline: { WriteUnitsPerSecond: 20_000 },
    });
    const plain = only(construct({}).template, 'AWS::DynamoDB::GlobalTable')[1].Properties as Record<string, unknown>;
    expect(JSON.stringify(plain)).not.toContain('WarmThroughput');
  });
});

describe('OfflineDetectorStack (context)', () => {
  it('adds a Kinesis source configured for real traffic', () => {
    const { stack, template } = stackWith({ kinesis: '4' });
    const d = stack.detector;
    template.hasResourceProperties('AWS::Kinesis::Stream', {
      ShardCount: 4,
      StreamModeDetails: { StreamMode: 'PROVISIONED' },
      StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
    });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [logicalId(stack, d.ingestStream as kinesis.Stream), 'Arn'] },
      FunctionName: { Ref: logicalId(stack, d.ingestKinesisFunction!) },
      StartingPosition: 'LATEST',
      BatchSize: 500,
      MaximumBatchingWindowInSeconds: 1,
      ParallelizationFactor: 1,
      BisectBatchOnFunctionError: true,
      MaximumRecordAgeInSeconds: 12 * 3600,
      MaximumRetryAttempts: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      DestinationConfig: {
        OnFailure: { Destination: { 'Fn::GetAtt': [logicalId(stack, d.kinesisFailureQueue!), 'Arn'] } },
      },
    });
    // A standard iterator, no enhanced fan-out: none of the consumer or listing actions CDK's KinesisEventSource
    // would grant (issue 14), and only SendMessage on the on-failure queue.
    const ingest = statements(template, stack, d.ingestKinesisFunction!);
    expect(actionsOn(ingest, logicalId(stack, d.ingestStream as kinesis.Stream)).sort()).toEqual([
      'kinesis:DescribeStream',
      'kinesis:DescribeStreamSummary',
      'kinesis:GetRecords',
      'kinesis:GetShardIterator',
      'kinesis:ListShards',
    ]);
    expect(JSON.stringify(ingest)).not.toMatch(/SubscribeToShard|DescribeStreamConsumer|ListStreams/);
    expect(actionsOn(ingest, logicalId(stack, d.kinesisFailureQueue!))).toEqual(['sqs:SendMessage']);
    expect(actionsOn(ingest, logicalId(stack, d.rejectsQueue))).toEqual(['sqs:SendMessage']);
    const dispatch = statements(template, stack, d.dispatchFunction);
    expect(actionsOn(dispatch, logicalId(stack, d.ingestStream as kinesis.Stream)).sort()).toEqual([
      'kinesis:ListShards',
      'kinesis:PutRecord',
      'kinesis:PutRecords',
    ]);
    // The dispatcher stays the minute to put each tick's probes into the shards.
    const dispatchFn = resources(template, 'AWS::Lambda::Function')[logicalId(stack, d.dispatchFunction)]!;
    expect(dispatchFn.Properties.Timeout).toBeGreaterThan(60);
    const env = functionEnv(template, logicalId(stack, d.sweepFunction));
    expect(env[ENV.ingestStreamArns]).toEqual({
      'Fn::GetAtt': [logicalId(stack, d.ingestStream as kinesis.Stream), 'Arn'],
    });
    const alarms = Object.keys(resources(template, 'AWS::CloudWatch::Alarm'));
    expect(alarms.some((id) => id.includes('IngestIteratorAge'))).toBe(true);
    expect(alarms.some((id) => id.includes('KinesisFailuresDepth'))).toBe(true);
  });

  it('supports provisioned capacity with auto-scaling, destroy, and device types from context', () => {
    const { stack, template } = stackWith({
      billing: 'provisioned',
      maxWriteCapacity: '2000',
      removalPolicy: 'destroy',
      deviceTypes: '{"meter":{"timeoutMs":900000,"precisionMs":60000}}',
      shardCount: 16,
      sweepTickSeconds: '20',
      sqs: 'false',
      kinesis: 'on-demand',
    });
    template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      BillingMode: 'PROVISIONED',
      WriteProvisionedThroughputSettings: {
        WriteCapacityAutoScalingSettings: Match.objectLike({
          MaxCapacity: 2000,
          TargetTrackingScalingPolicyConfiguration: { TargetValue: 70 },
        }),
      },
    });
    const [, table] = only(template, 'AWS::DynamoDB::GlobalTable');
    expect(table.DeletionPolicy).toBe('Delete');
    template.resourceCountIs('AWS::SQS::Queue', 4); // rejects, sweep + DLQ, Kinesis failures
    const env = functionEnv(template, logicalId(stack, stack.detector.ingestKinesisFunction!));
    expect(JSON.parse(env[ENV.deviceTypes] as string)).toEqual({ meter: { timeoutMs: 900000, precisionMs: 60000 } });
    expect(env[ENV.defaultDeviceType]).toBe('meter');
    expect(env[ENV.shardCount]).toBe('16');
    expect(functionEnv(template, logicalId(stack, stack.detector.sweepFunction))[ENV.sweepTickSeconds]).toBe('20');
  });

  it('rejects bad context early', () => {
    expect(() => stackWith({ billing: 'cheap' })).toThrow(/billing/);
    expect(() => stackWith({ deviceTypes: '{"x":{"precisionMs":1}}' })).toThrow(/timeoutMs/);
    expect(() => stackWith({ kinesis: 'lots' })).toThrow(/kinesis/);
    expect(() =>
      stackWith({ deviceTypes: '{"x":{"timeoutMs":60000,"flap":{"transitions":"4","windowMs":600000}}}' }),
    ).toThrow(/deviceTypes\.x\.flap\.transitions must be a number/);
    expect(() => stackWith({ deviceTypes: '{"x":{"timeoutMs":60000,"flap":{"transitions":4}}}' })).toThrow(
      /deviceTypes\.x\.flap\.windowMs must be a number/,
    );
    expect(() => stackWith({ deviceTypes: '{"x":{"timeoutMs":60000,"flap":4}}' })).toThrow(/deviceTypes\.x\.flap/);
    // Numbers out of range are left to the Lambdas' parser, through the construct.
    expect(() =>
      stackWith({ deviceTypes: '{"x":{"timeoutMs":60000,"flap":{"transitions":1,"windowMs":600000}}}' }),
    ).toThrow(/x\.flap/);
  });

  it('reads flap damping per device type from context deviceTypes', () => {
    const { stack, template } = stackWith({
      deviceTypes: {
        tracker: { timeoutMs: 90000, precisionMs: 0, flap: { transitions: 4, windowMs: 600000 } },
        meter: { timeoutMs: 900000 },
      },
    });
    const d = stack.detector;
    for (const fn of [d.ingestSqsFunction!, d.sweepFunction, d.apiFunction!]) {
      const env = functionEnv(template, logicalId(stack, fn));
      expect(JSON.parse(env[ENV.deviceTypes] as string)).toEqual({
        tracker: { timeoutMs: 90000, precisionMs: 0, flap: { transitions: 4, windowMs: 600000 } },
        meter: { timeoutMs: 900000, precisionMs: 0 },
      });
    }
  });
});

describe('LocalStack deployment context', () => {
  it('synthesizes cleanly with the context local/localstack/deploy.sh passes', () => {
    const script = readFileSync(new URL('../../local/localstack/deploy.sh', import.meta.url), 'utf8');
    const context = Object.fromEntries(
      [...script.matchAll(/^\s*-c '?(\w+)=(.*?)'?$/gm)].map((m) => [m[1]!, m[2]!] as const),
    );
    expect(Object.keys(context)).toEqual(expect.arrayContaining(['deviceTypes', 'sweepTickSeconds', 'removalPolicy']));
    const { stack, template } = stackWith(context);
    const annotations = Annotations.fromStack(stack);
    expect(annotations.findError('*', Match.anyValue())).toEqual([]);
    expect(annotations.findWarning('*', Match.stringLikeRegexp('offline-detector'))).toEqual([]);
    const [, table] = only(template, 'AWS::DynamoDB::GlobalTable');
    expect(table.DeletionPolicy).toBe('Delete');
    const env = functionEnv(template, logicalId(stack, stack.detector.sweepFunction));
    expect(JSON.parse(env[ENV.deviceTypes] as string)).toHaveProperty('e2e.timeoutMs', 30000);
  });
});

describe('OfflineDetector (embedded)', () => {
  it('uses existing queue, stream and topics without creating new ones, and grants on them', () => {
    const app = new App({ context: NO_BUNDLING });
    const stack = new Stack(app, 'Embed');
    const queue = sqs.Queue.fromQueueArn(stack, 'Q', 'arn:aws:sqs:eu-west-1:111111111111:devices');
    const stream = kinesis.Stream.fromStreamArn(stack, 'K', 'arn:aws:kinesis:eu-west-1:111111111111:stream/devices');
    const offline = sns.Topic.fromTopicArn(stack, 'T', 'arn:aws:sns:eu-west-1:111111111111:offline');
    const d = new OfflineDetector(stack, 'Detector', {
      sqsIngest: { queue, batchSize: 10, maxBatchingWindow: Duration.seconds(0), maxConcurrency: 5 },
      kinesisIngest: { stream },
      offlineTopic: offline,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Kinesis::Stream', 0);
    template.resourceCountIs('AWS::SNS::Topic', 2); // online + alarms
    expect(d.ingestQueue).toBe(queue);
    expect(d.ingestDeadLetterQueue).toBeUndefined();
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: queue.queueArn,
      BatchSize: 10,
      ScalingConfig: { MaximumConcurrency: 5 },
    });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: stream.streamArn,
      ParallelizationFactor: 1,
    });
    const sweep = statements(template, stack, d.sweepFunction);
    expect(actionsOn(sweep, offline.topicArn)).toEqual(['sns:Publish']);
    const dispatch = statements(template, stack, d.dispatchFunction);
    expect(actionsOn(dispatch, queue.queueArn)).toContain('sqs:SendMessage');
    expect(actionsOn(dispatch, stream.streamArn)).toContain('kinesis:PutRecords');
  });

  it("reads an existing stream encrypted with the user's key: Decrypt on that key, still no fan-out actions", () => {
    const app = new App({ context: NO_BUNDLING });
    const stack = new Stack(app, 'Embed');
    const key = new kms.Key(stack, 'StreamKey', { enableKeyRotation: true });
    const stream = kinesis.Stream.fromStreamAttributes(stack, 'K', {
      streamArn: 'arn:aws:kinesis:eu-west-1:111111111111:stream/devices',
      encryptionKey: key,
    });
    const d = new OfflineDetector(stack, 'Detector', { sqsIngest: false, kinesisIngest: { stream } });
    const s = statements(Template.fromStack(stack), stack, d.ingestKinesisFunction!);
    expect(actionsOn(s, logicalId(stack, key))).toEqual(['kms:Decrypt']);
    expect(actionsOn(s, stream.streamArn)).not.toContain('kinesis:SubscribeToShard');
  });

  it('reserves concurrency for both API functions and passes the stats cache time when asked (issue 14)', () => {
    const {
      detector: d,
      stack,
      template,
    } = construct({
      apiReservedConcurrency: 5,
      statsCacheTtl: Duration.seconds(30),
    });
    for (const fn of [d.apiFunction!, d.apiReadFunction!]) {
      const props = resources(template, 'AWS::Lambda::Function')[logicalId(stack, fn)]!.Properties;
      expect(props.ReservedConcurrentExecutions, fn.node.id).toBe(5);
      expect(functionEnv(template, logicalId(stack, fn))[ENV.statsCacheSeconds]).toBe('30');
    }
    // Only the API: the detector's own functions stay unreserved.
    for (const fn of [d.ingestSqsFunction!, d.dispatchFunction, d.sweepFunction]) {
      const props = resources(template, 'AWS::Lambda::Function')[logicalId(stack, fn)]!.Properties;
      expect(props).not.toHaveProperty('ReservedConcurrentExecutions');
    }
  });

  it('encrypts the payload queues with the given key and lets only the named readers take from them (issue 14)', () => {
    const app = new App({ context: NO_BUNDLING });
    const stack = new Stack(app, 'Embed');
    const key = new kms.Key(stack, 'PayloadKey', { enableKeyRotation: true });
    const operators = 'arn:aws:iam::111111111111:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Ops_*';
    const d = new OfflineDetector(stack, 'Detector', {
      kinesisIngest: {},
      payloadQueues: { encryptionKey: key, readers: [operators] },
    });
    const template = Template.fromStack(stack);
    const queues = resources(template, 'AWS::SQS::Queue');
    const keyArn = { 'Fn::GetAtt': [logicalId(stack, key), 'Arn'] };
    for (const q of [d.rejectsQueue, d.ingestDeadLetterQueue!]) {
      expect(queues[logicalId(stack, q)]!.Properties).toMatchObject({ KmsMasterKeyId: keyArn });
    }
    // Queues without device payloads keep SSE-SQS: the sweep jobs, the Kinesis failure descriptions.
    for (const q of [d.sweepQueue, d.sweepDeadLetterQueue, d.kinesisFailureQueue!, d.ingestQueue as sqs.Queue]) {
      expect(queues[logicalId(stack, q)]!.Properties).toMatchObject({ SqsManagedSseEnabled: true });
    }
    // The ingest functions send rejects through the key; nothing else of theirs changes.
    for (const fn of [d.ingestSqsFunction!, d.ingestKinesisFunction!]) {
      const s = statements(template, stack, fn);
      expect(actionsOn(s, logicalId(stack, key)).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
      expect(actionsOn(s, logicalId(stack, d.rejectsQueue))).toEqual(['sqs:SendMessage']);
    }
    const take = ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:PurgeQueue', 'sqs:ChangeMessageVisibility'];
    const root = {
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, ':root']],
    };
    for (const q of [d.rejectsQueue, d.ingestDeadLetterQueue!]) {
      const policy = Object.values(resources(template, 'AWS::SQS::QueuePolicy')).find((p) =>
        JSON.stringify(p.Properties.Queues).includes(logicalId(stack, q)),
      );
      const denies = (policy!.Properties.PolicyDocument as { Statement: Statement[] }).Statement.filter(
        (st) => st.Effect === 'Deny' && !JSON.stringify(st).includes('aws:SecureTransport'),
      );
      expect(denies).toEqual([
        expect.objectContaining({
          Principal: { AWS: '*' },
          Action: take,
          Condition: { ArnNotLike: { 'aws:PrincipalArn': [operators, root] } },
        }),
        expect.objectContaining({
          Principal: { AWS: '*' },
          Action: take,
          Condition: { StringNotEquals: { 'aws:PrincipalAccount': { Ref: 'AWS::AccountId' } } },
        }),
      ]);
      // Sending, attributes and the policy itself are never denied: the ingest's rejects, SQS's redrive into the DLQ
      // and a deployment that widens the readers keep working.
      expect(JSON.stringify(denies)).not.toMatch(/SendMessage|GetQueueAttributes|SetQueueAttributes|sqs:\*/);
    }
  });

  it('leaves the payload queues to IAM without readers, and refuses readers that could lock everyone out', () => {
    const { detector: d, stack, template } = construct({});
    const policy = Object.values(resources(template, 'AWS::SQS::QueuePolicy')).find((p) =>
      JSON.stringify(p.Properties.Queues).includes(logicalId(stack, d.rejectsQueue)),
    );
    expect(JSON.stringify(policy)).not.toContain('aws:PrincipalArn');
    expect(() => construct({ payloadQueues: { readers: [] } })).toThrow(/at least one principal/);
    expect(() => construct({ payloadQueues: { readers: ['operators'] } })).toThrow(/not an IAM principal ARN/);
  });

  it('validates its configuration at synth time', () => {
    expect(() => construct({ sqsIngest: false })).toThrow(/ingest source/);
    expect(() => construct({ sweepTick: Duration.seconds(7) })).toThrow(/sweepTick/);
    expect(() => construct({ sweepMaxConcurrency: 1 })).toThrow(/sweepMaxConcurrency/);
    expect(() => construct({ apiReservedConcurrency: 0 })).toThrow(/apiReservedConcurrency/);
    expect(() => construct({ statsCacheTtl: Duration.hours(2) })).toThrow(/statsCacheTtl/);
    expect(() => construct({ deviceTypes: { a: { timeout: Duration.minutes(1) } }, defaultDeviceType: 'b' })).toThrow(
      /DEFAULT_DEVICE_TYPE/,
    );
    // Flap damping is checked by the Lambdas' own parser at synth, not at cold start.
    const flapping = (transitions: number, window: Duration) =>
      construct({ deviceTypes: { tracker: { timeout: Duration.seconds(90), flap: { transitions, window } } } });
    expect(() => flapping(1, Duration.minutes(10))).toThrow(/tracker\.flap/);
    expect(() => flapping(4, Duration.millis(0))).toThrow(/tracker\.flap/);
  });

  it('names the construct path in what it refuses, for its own checks and for those of the Lambdas', () => {
    const refusal = (props: OfflineDetectorProps) => {
      const app = new App({ context: NO_BUNDLING });
      const fleet = new Construct(new Stack(app, 'Embed'), 'Fleet');
      try {
        new OfflineDetector(fleet, 'Detector', props);
      } catch (error) {
        return error;
      }
      throw new Error('not refused');
    };
    const badShards = refusal({ shardCount: 0 });
    expect(badShards).toBeInstanceOf(ValidationError);
    expect((badShards as ValidationError).message).toBe(
      'Embed/Fleet/Detector: shardCount must be a whole number in 1..10000, got 0',
    );
    expect((badShards as ValidationError).constructPath).toBe('Embed/Fleet/Detector');
    // A device type the Lambdas' own parser refuses: its message, after the path.
    const badType = refusal({ deviceTypes: { a: { timeout: Duration.minutes(1) } }, defaultDeviceType: 'b' });
    expect((badType as Error).message).toMatch(/^Embed\/Fleet\/Detector: DEFAULT_DEVICE_TYPE/);
  });

  it("refuses at synth a housekeeping TTL that a device type outlasts (the Lambdas' own check)", () => {
    const DAY = Duration.days(1).toMilliseconds();
    const message = (f: () => unknown) => {
      expect(f).toThrow();
      try {
        f();
      } catch (error) {
        return (error as Error).message;
      }
      return '';
    };
    const tooLong = message(() =>
      construct({ housekeepingTtl: Duration.days(1), deviceTypes: { meter: { timeout: Duration.days(2) } } }),
    );
    expect(tooLong).toMatch(/housekeepingTtl/);
    expect(tooLong).toContain('"meter"');
    expect(tooLong).toContain(String(2 * DAY));
    // The default TTL (30 days) against the longest timeout: equal is refused, deletion may come at expiry.
    expect(() => construct({ deviceTypes: { slow: { timeout: Duration.days(30) } } })).toThrow(/"slow"/);
    // A flapping device settles its flap window after going offline: the window counts.
    const flapping = message(() =>
      construct({
        housekeepingTtl: Duration.days(1),
        deviceTypes: {
          tracker: { timeout: Duration.seconds(90) },
          door: { timeout: Duration.hours(12), flap: { transitions: 4, window: Duration.hours(13) } },
        },
      }),
    );
    expect(flapping).toContain('"door"');
    expect(flapping).toMatch(/flap window/);
    // Through the stack's context too.
    expect(() => stackWith({ housekeepingTtlDays: '1', deviceTypes: `{"meter":{"timeoutMs":${2 * DAY}}}` })).toThrow(
      /"meter"/,
    );
  });

  it('passes the housekeeping TTL to every function that checks it, and accepts one that covers every type', () => {
    const {
      detector: d,
      stack,
      template,
    } = construct({ housekeepingTtl: Duration.days(3), deviceTypes: { meter: { timeout: Duration.days(2) } } });
    for (const fn of [d.ingestSqsFunction!, d.dispatchFunction, d.sweepFunction, d.apiFunction!]) {
      expect(functionEnv(template, logicalId(stack, fn))[ENV.housekeepingTtlDays], fn.node.id).toBe('3');
    }
  });

  it('refuses a Kinesis parallelization factor above 1 at synth, and tells the Kinesis ingest it is 1', () => {
    expect(() => construct({ kinesisIngest: { parallelizationFactor: 2 } })).toThrow(
      /parallelizationFactor.*must be 1, got 2/s,
    );
    expect(() => construct({ kinesisIngest: { parallelizationFactor: 2 } })).toThrow(/partition key/);
    const { detector: d, stack, template } = construct({ kinesisIngest: { parallelizationFactor: 1 } });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { ParallelizationFactor: 1 });
    const kinesisEnv = functionEnv(template, logicalId(stack, d.ingestKinesisFunction!));
    expect(kinesisEnv[ENV.kinesisParallelizationFactor]).toBe('1');
    // Only the Kinesis ingest reads it: the SQS ingest has no shard order to keep.
    expect(functionEnv(template, logicalId(stack, d.ingestSqsFunction!))).not.toHaveProperty(
      ENV.kinesisParallelizationFactor,
    );
  });

  it('warns at synth when the tolerance does not cover the SQS batching window and batch budget', () => {
    const warned = (props: Parameters<typeof construct>[0]) =>
      Annotations.fromStack(construct(props).stack)
        .findWarning('*', Match.stringLikeRegexp('below what the SQS ingest needs'))
        .map((w) => w.entry.data);
    expect(warned({ watermarkTolerance: Duration.seconds(11) })).toHaveLength(1);
    expect(warned({ watermarkTolerance: Duration.seconds(12) })).toHaveLength(0);
    expect(warned({})).toHaveLength(0);
  });

  it('derives the SQS probe threshold from the expected message rate, unless one is given', () => {
    const envOf = (props: Parameters<typeof construct>[0]) => {
      const { detector: d, stack, template } = construct(props);
      return functionEnv(template, logicalId(stack, d.ingestSqsFunction!));
    };
    const rated = envOf({ sqsIngest: { messageRate: 16_667 } });
    expect(rated[ENV.ingestMessageRate]).toBe('16667');
    expect(rated).not.toHaveProperty(ENV.probeMaxBacklog);
    expect(loadIngestConfig({ TABLE_NAME: 't', ...(rated as Record<string, string>) }).probeMaxBacklog).toBe(8_334);
    expect(envOf({ sqsIngest: { messageRate: 16_667 }, probeMaxBacklog: 500 })[ENV.probeMaxBacklog]).toBe('500');
  });

  it('passes flap damping into DEVICE_TYPES of every function that reads it', () => {
    const {
      detector: d,
      stack,
      template,
    } = construct({
      deviceTypes: {
        tracker: { timeout: Duration.seconds(90), flap: { transitions: 4, window: Duration.minutes(10) } },
        meter: { timeout: Duration.minutes(15) },
      },
    });
    for (const fn of [d.ingestSqsFunction!, d.dispatchFunction, d.sweepFunction, d.apiFunction!]) {
      const json = functionEnv(template, logicalId(stack, fn))[ENV.deviceTypes] as string;
      expect(json, fn.node.id).toContain('"flap":{"transitions":4,"windowMs":600000}');
      expect(JSON.parse(json), fn.node.id).toEqual({
        tracker: { timeoutMs: 90000, precisionMs: 0, flap: { transitions: 4, windowMs: 600000 } },
        meter: { timeoutMs: 900000, precisionMs: 0 }, // no flap key: damping stays off
      });
    }
  });

  it('warns when the watermark tolerance does not fit a device type (docs/design.md §6.4)', () => {
    const { stack } = construct({
      deviceTypes: {
        tight: { timeout: Duration.seconds(40), heartbeat: Duration.seconds(20) },
        fine: { timeout: Duration.minutes(15), heartbeat: Duration.minutes(1) },
      },
    });
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('tolerance'));
    expect(warnings).toHaveLength(1);
    expect(String(warnings[0]!.entry.data)).toContain('"tight"');
  });

  it("warns of the tolerance as the dispatcher does (config.ts toleranceWarnings): a type's timeout without a heartbeat, one tick", () => {
    const warned = (props: OfflineDetectorProps) =>
      Annotations.fromStack(construct(props).stack)
        .findWarning('*', Match.stringLikeRegexp('watermark tolerance'))
        .map((w) => String(w.entry.data));
    const sensor = { sensor: { timeout: Duration.seconds(40) } };
    expect(warned({ deviceTypes: sensor, watermarkTolerance: Duration.seconds(39) })).toEqual([]);
    const atTimeout = warned({ deviceTypes: sensor, watermarkTolerance: Duration.seconds(40) });
    expect(atTimeout).toHaveLength(1);
    expect(atTimeout[0]).toContain('"sensor"');
    const belowTick = warned({ sweepTick: Duration.seconds(20), watermarkTolerance: Duration.seconds(15) });
    expect(belowTick.filter((w) => w.includes('below one probe interval'))).toHaveLength(1);
  });
});

describe('the batched engine (docs/design.md §11)', () => {
  const { detector, stack, template } = construct({
    engine: 'batched',
    fleet: { devices: 1_000_000 },
    kinesisIngest: {},
  });
  const shardTableId = logicalId(stack, detector.shardTable!);

  it('adds the shard table: pk + sort, TTL, encrypted, on demand', () => {
    template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      KeySchema: [
        { AttributeName: SHARD_TABLE.partitionKey, KeyType: 'HASH' },
        { AttributeName: SHARD_TABLE.sortKey, KeyType: 'RANGE' },
      ],
      // The same keys the local runtime and the tests create.
      AttributeDefinitions: Match.arrayWith(shardTableInput('x').AttributeDefinitions ?? []),
      BillingMode: 'PAY_PER_REQUEST',
      SSESpecification: { SSEEnabled: true },
      TimeToLiveSpecification: { AttributeName: SHARD_TABLE.ttl, Enabled: true },
    });
  });

  it('sizes shards and ingest batching from the fleet (batchedSizing), tolerance included', () => {
    const sizing = batchedSizing({ devices: 1_000_000, messagesPerSecond: 1_000_000 / 60 });
    for (const fn of [detector.ingestSqsFunction!, detector.ingestKinesisFunction!, detector.sweepFunction]) {
      const env = functionEnv(template, logicalId(stack, fn));
      expect(env[ENV.engine]).toBe('batched');
      expect(JSON.stringify(env[ENV.shardTableName])).toContain(shardTableId);
      expect(env[ENV.batchedShardCount]).toBe(String(sizing.shardCount));
      expect(env[ENV.shardCount]).toBe(String(DEFAULT_SHARD_COUNT)); // the indexes keep theirs
    }
    const sweepEnv = functionEnv(template, logicalId(stack, detector.sweepFunction));
    // ~1,024 devices in flight over all shards in a storm, ~128 item writes for a mass reconnect.
    expect([sweepEnv[ENV.sweepConcurrency], sweepEnv[ENV.writeConcurrency]]).toEqual(['128', '16']);
    expect(functionEnv(template, logicalId(stack, detector.sweepFunction))[ENV.watermarkToleranceMs]).toBe(
      String((10 + 20 + sizing.batchWindowSeconds) * 1000),
    );
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: Match.objectLike({ 'Fn::GetAtt': Match.arrayWith([Match.stringLikeRegexp('IngestQueue')]) }),
      BatchSize: sizing.batchSize,
      MaximumBatchingWindowInSeconds: sizing.batchWindowSeconds,
    });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: Match.objectLike({ 'Fn::GetAtt': Match.arrayWith([Match.stringLikeRegexp('IngestStream')]) }),
      BatchSize: sizing.batchSize,
    });
  });

  it('grants each role only its actions on the shard table: ingest and API append, the sweep reads and saves', () => {
    const on = (fn: { role?: unknown }) => actionsOn(statements(template, stack, fn), shardTableId).sort();
    expect(on(detector.ingestSqsFunction!)).toEqual(['dynamodb:PutItem']);
    expect(on(detector.apiFunction!)).toEqual(['dynamodb:PutItem']);
    // The read API changes nothing, so it leaves no notes: no shard table at all, though it knows the engine.
    expect(on(detector.apiReadFunction!)).toEqual([]);
    expect(functionEnv(template, logicalId(stack, detector.apiReadFunction!))[ENV.engine]).toBe('batched');
    expect(on(detector.sweepFunction)).toEqual(
      ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'].sort(),
    );
    expect(on(detector.dispatchFunction)).toEqual([]);
  });

  it('the per-device engine has no shard table and no engine variables', () => {
    const perDevice = construct({});
    expect(perDevice.detector.shardTable).toBeUndefined();
    const env = functionEnv(perDevice.template, logicalId(perDevice.stack, perDevice.detector.sweepFunction));
    expect(env[ENV.engine]).toBeUndefined();
  });

  it('refuses an unknown engine and an empty fleet, naming the construct', () => {
    expect(() => construct({ engine: 'bogus' as never })).toThrow(/Detector: engine must be/);
    expect(() => construct({ engine: 'batched', fleet: { devices: 0 } })).toThrow(/Detector: fleet.devices/);
  });

  it('reads engine and fleet from context', () => {
    const { stack: s } = stackWith({ engine: 'batched', fleetDevices: '2000000' });
    expect(s.detector.shardTable).toBeDefined();
  });
});
