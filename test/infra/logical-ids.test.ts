// The logical IDs of what must never be replaced by an upgrade, pinned to literals: a changed logical ID makes
// CloudFormation create a new resource and drop the old one, so a refactor that moved the device table in the
// construct tree would deploy an empty table (and retain or delete the old one). Pinned: what holds data or is retained
// on removal (tables, topic key, topics, queues, stream, log groups), and what is replaced badly: a queue or topic
// policy whose successor is created first is cleared when the old one is deleted, and an e-mail subscription replaced
// must be confirmed again; the maintenance schedule group holds the windows' pending schedules. Functions, roles, IAM policies, URLs, mappings and the schedule may be renamed.
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { OfflineDetectorStack } from '../../lib/offline-detector-stack.js';

const PINNED_TYPES = [
  'AWS::DynamoDB::GlobalTable',
  'AWS::KMS::Key',
  'AWS::Kinesis::Stream',
  'AWS::Logs::LogGroup',
  // A window's pending schedules live in it: a new group would lose them.
  'AWS::Scheduler::ScheduleGroup',
  'AWS::SNS::Subscription',
  'AWS::SNS::Topic',
  'AWS::SNS::TopicPolicy',
  'AWS::SQS::Queue',
  'AWS::SQS::QueuePolicy',
];

/** In every deployment below: what the defaults create besides the ingest sources. */
const COMMON = [
  'AWS::DynamoDB::GlobalTable DetectorTable4711002A',
  'AWS::KMS::Key DetectorTopicKey55CE57F6',
  'AWS::Logs::LogGroup DetectorApiFunctionLogs3F54F76D',
  'AWS::Logs::LogGroup DetectorApiReadFunctionLogsA5EA0BE0',
  'AWS::Logs::LogGroup DetectorDispatchFunctionLogs4FD493F2',
  'AWS::Logs::LogGroup DetectorIngestSqsFunctionLogs3630C151',
  'AWS::Logs::LogGroup DetectorSweepFunctionLogs32D0124A',
  'AWS::Scheduler::ScheduleGroup DetectorMaintenanceGroupF767B0A0',
  'AWS::SNS::Topic DetectorAlarmTopic8E96EBC3',
  'AWS::SNS::Topic DetectorOfflineTopicD9DA7486',
  'AWS::SNS::Topic DetectorOnlineTopic5E3A5C5D',
  'AWS::SNS::TopicPolicy DetectorAlarmTopicPolicyE299C032',
  'AWS::SNS::TopicPolicy DetectorOfflineTopicPolicy97643377',
  'AWS::SNS::TopicPolicy DetectorOnlineTopicPolicyA46518DA',
  'AWS::SQS::Queue DetectorIngestDLQ7F8825DA',
  'AWS::SQS::Queue DetectorIngestQueue2EE04F67',
  'AWS::SQS::Queue DetectorRejectsQueue0FBD0270',
  'AWS::SQS::Queue DetectorSweepDLQD2AF4382',
  'AWS::SQS::Queue DetectorSweepQueueD352F5BB',
  'AWS::SQS::QueuePolicy DetectorIngestDLQPolicy4F26ACEE',
  'AWS::SQS::QueuePolicy DetectorIngestQueuePolicy84E44D4B',
  'AWS::SQS::QueuePolicy DetectorRejectsQueuePolicyC43DE3A7',
  'AWS::SQS::QueuePolicy DetectorSweepDLQPolicy6F9083C2',
  'AWS::SQS::QueuePolicy DetectorSweepQueuePolicyF83C9564',
];

const DEPLOYMENTS: Array<[string, Record<string, unknown>, string[]]> = [
  [
    // The subscription is added to the alarm topic after the construct is built (by the stack): pinned all the same.
    'SQS (the defaults), alarms by e-mail',
    { alarmEmail: 'ops@example.com' },
    [...COMMON, 'AWS::SNS::Subscription DetectorAlarmTopicopsexamplecomF7CBF4FC'],
  ],
  [
    'SQS and a provisioned Kinesis stream',
    { kinesis: '4' },
    [
      ...COMMON,
      'AWS::Kinesis::Stream DetectorIngestStream29E4D42D',
      'AWS::Logs::LogGroup DetectorIngestKinesisFunctionLogsF435DB26',
      'AWS::SQS::Queue DetectorKinesisFailureQueue3439814E',
      'AWS::SQS::QueuePolicy DetectorKinesisFailureQueuePolicyB7D0B790',
    ],
  ],
  [
    'the batched engine',
    { engine: 'batched', fleetDevices: '1000000' },
    [...COMMON, 'AWS::DynamoDB::GlobalTable DetectorShardTable7DB714C1'],
  ],
];

describe.each(DEPLOYMENTS)('logical IDs that upgrades keep (%s)', (_, context, expected) => {
  it('are exactly the pinned ones', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [], ...context } });
    const template = Template.fromStack(new OfflineDetectorStack(app, 'Test')).toJSON() as {
      Resources: Record<string, { Type: string }>;
    };
    const pinned = Object.entries(template.Resources)
      .filter(([, resource]) => PINNED_TYPES.includes(resource.Type))
      .map(([id, resource]) => `${resource.Type} ${id}`);
    expect(pinned.sort()).toEqual([...expected].sort());
  });
});
