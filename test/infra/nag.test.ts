// cdk-nag AwsSolutions checks on every shape of the stack: no unacknowledged findings. Each acknowledgement lives
// next to the resource it concerns (lib/offline-detector.ts) and carries its reason.
import { App, Duration, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as kms from 'aws-cdk-lib/aws-kms';
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
  ])('finds nothing unacknowledged in the stack: %s', (_name, context) => {
    const app = new App({ context: { ...NO_BUNDLING, ...context } });
    const stack = new OfflineDetectorStack(app, 'Nag');
    expect(findings(stack)).toEqual([]);
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
