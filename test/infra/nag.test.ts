// cdk-nag AwsSolutions checks on every shape of the stack: no unacknowledged findings. Each acknowledgement lives
// next to the resource it concerns (in the lib/ file that builds it) and carries its reason.
import { App, Duration, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { OfflineDetector } from '../../lib/offline-detector.js';
import { OfflineDetectorStack } from '../../lib/offline-detector-stack.js';

const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };

function findings(scope: IConstruct): string[] {
  const report = new AwsSolutionsChecks().validateScope(scope);
  return report.violations.flatMap((v) =>
    v.violatingResources.map((r) => `${v.severity} ${v.ruleName} at ${r.constructPath}: ${v.description}`),
  );
}

describe('cdk-nag AwsSolutions', () => {
  it.each([
    ['defaults', {}],
    ['SQS + Kinesis on-demand', { kinesis: 'on-demand' }],
    [
      'Kinesis only, provisioned table, destroy',
      { sqs: false, kinesis: 4, billing: 'provisioned', removalPolicy: 'destroy' },
    ],
    ['batched engine, SQS + Kinesis', { engine: 'batched', fleetDevices: 1_000_000, kinesis: 'on-demand' }],
    [
      'tags, gateway dependency, allow-list, outage detection',
      {
        fieldMap: { tags: { site: 'site', gatewayId: 'gw' } },
        parentTag: 'gatewayId',
        allowList: true,
        outageDetection: { groupBy: 'site', minDevices: 20 },
        engine: 'batched',
      },
    ],
  ])('finds nothing unacknowledged in the stack: %s', (_name, context) => {
    const app = new App({ context: { ...NO_BUNDLING, ...context } });
    const stack = new OfflineDetectorStack(app, 'Nag');
    expect(findings(stack)).toEqual([]);
  });

  it('finds nothing unacknowledged with customer-keyed payload queues and their readers', () => {
    const app = new App({ context: NO_BUNDLING });
    const stack = new Stack(app, 'Embed');
    const key = new kms.Key(stack, 'PayloadKey', { enableKeyRotation: true });
    new OfflineDetector(stack, 'Detector', {
      kinesisIngest: {},
      payloadQueues: { encryptionKey: key, readers: ['arn:aws:iam::111111111111:role/operators'] },
    });
    expect(findings(stack)).toEqual([]);
  });

  it('excuses each finding on its own resource only: the same finding anywhere else in the construct shows', () => {
    const app = new App({ context: NO_BUNDLING });
    const stack = new Stack(app, 'Scope');
    const d = new OfflineDetector(stack, 'Detector', { kinesisIngest: {} });
    // What the acknowledgements excuse, put where they do not apply: the dispatcher's role, a queue, a function.
    d.dispatchFunction.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['kms:GenerateDataKey*'], resources: [d.topicKey.keyArn] }),
    );
    d.dispatchFunction.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: [`${d.dispatchFunction.functionArn}:*`],
      }),
    );
    new sqs.Queue(d, 'Stray', { enforceSSL: true });
    new lambda.Function(d, 'StrayFunction', {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('export const handler = async () => {};'),
    });
    const dispatchPolicy = `${d.dispatchFunction.role?.node.path}/DefaultPolicy/Resource`;
    const dispatchId = stack.getLogicalId(d.dispatchFunction.node.defaultChild as lambda.CfnFunction);
    const found = findings(stack).map((f) => f.slice(0, f.indexOf(': ', f.indexOf(' at ')))); // without the description
    expect(found).toEqual(
      expect.arrayContaining([
        `error AwsSolutions-IAM5[Action::kms:GenerateDataKey*] at ${dispatchPolicy}`,
        `error AwsSolutions-IAM5[Resource::<${dispatchId}.Arn>:*] at ${dispatchPolicy}`,
        'error AwsSolutions-SQS3 at Scope/Detector/Stray/Resource',
        'error AwsSolutions-L1 at Scope/Detector/StrayFunction/Resource',
      ]),
    );
    // And nothing of the detector's own resources.
    expect(found.filter((f) => !/DispatchFunctionRole|Stray/.test(f))).toEqual([]);
  });

  it('finds nothing unacknowledged when embedded with existing queue and a customer-managed table key', () => {
    const app = new App({ context: NO_BUNDLING });
    const stack = new Stack(app, 'Embed');
    const key = new kms.Key(stack, 'TableKey', { enableKeyRotation: true });
    new OfflineDetector(stack, 'Detector', {
      sqsIngest: { queue: sqs.Queue.fromQueueArn(stack, 'Q', 'arn:aws:sqs:eu-west-1:111111111111:devices') },
      tableEncryption: dynamodb.TableEncryptionV2.customerManagedKey(key),
      sweepTick: Duration.seconds(20),
    });
    expect(findings(stack)).toEqual([]);
  });
});
