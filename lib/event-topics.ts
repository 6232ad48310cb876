// The event topics (docs/design.md §7) and the ops topic the alarms notify, under one rotated customer key:
// CloudWatch alarms can only publish to an encrypted topic whose key policy lets them, which the AWS managed aws/sns
// key cannot.
import { Lazy, type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { ENV } from '../lambdas/core/contracts.js';

export interface EventTopicsProps {
  /** @default a new topic under the topic key */
  readonly onlineTopic?: sns.ITopic;
  /** @default a new topic under the topic key */
  readonly offlineTopic?: sns.ITopic;
  /** @default a new topic under the topic key, which alarms of this account and region may publish to */
  readonly alarmTopic?: sns.ITopic;
  /** Of the topic key. */
  readonly removalPolicy: RemovalPolicy;
}

export class EventTopics extends Construct {
  /** Key of the topics this construct creates. */
  readonly topicKey: kms.Key;
  readonly onlineTopic: sns.ITopic;
  readonly offlineTopic: sns.ITopic;
  readonly alarmTopic: sns.ITopic;
  /** What a publishing handler reads to find the event topics. */
  readonly environment: Readonly<Record<string, string>>;
  /** The roles granted publishing (grantPublish): on the event topics created here, no one else may publish. */
  private readonly publishers: iam.IRole[] = [];

  constructor(scope: Construct, id: string, props: EventTopicsProps) {
    super(scope, id);
    this.topicKey = new kms.Key(this, 'TopicKey', {
      description: 'offline-detector SNS topics',
      enableKeyRotation: true,
      removalPolicy: props.removalPolicy,
    });
    this.onlineTopic = props.onlineTopic ?? this.createEventTopic('OnlineTopic', 'Device online events');
    this.offlineTopic = props.offlineTopic ?? this.createEventTopic('OfflineTopic', 'Device offline events');
    this.alarmTopic = props.alarmTopic ?? this.createAlarmTopic();
    this.environment = {
      [ENV.onlineTopicArn]: this.onlineTopic.topicArn,
      [ENV.offlineTopicArn]: this.offlineTopic.topicArn,
    };
  }

  /** Lets a function publish device events, to both topics: an online transition can flush an older offline event
   * from the outbox, and the sweep re-publishes both kinds. */
  grantPublish(fn: lambda.IFunction): void {
    this.onlineTopic.grantPublish(fn);
    this.offlineTopic.grantPublish(fn);
    if (fn.role) this.publishers.push(fn.role);
    const policy = fn.role?.node.tryFindChild('DefaultPolicy')?.node.defaultChild;
    if (policy) {
      Validations.of(policy).acknowledge({
        id: 'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
        reason:
          'grantPublish on a KMS-encrypted topic: SNS needs GenerateDataKey on the topic key, and the statement is ' +
          'scoped to that one key.',
      });
    }
  }

  private createTopic(id: string, displayName: string): sns.Topic {
    return new sns.Topic(this, id, { displayName, masterKey: this.topicKey, enforceSSL: true, signatureVersion: '2' });
  }

  /** The event topics page people: only the functions granted publishing (grantPublish) may publish, whatever an
   * account principal's `sns:Publish` allows (a fake device.offline must not reach the pager). */
  private createEventTopic(id: string, displayName: string): sns.Topic {
    const topic = this.createTopic(id, displayName);
    topic.addToResourcePolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
        conditions: {
          ArnNotEquals: { 'aws:PrincipalArn': Lazy.list({ produce: () => this.publishers.map((r) => r.roleArn) }) },
        },
      }),
    );
    return topic;
  }

  /** CloudWatch may use the key and publish, only on behalf of alarms of this account and region (confused deputy):
   * it names the alarm in aws:SourceArn and its account in aws:SourceAccount, to SNS and to KMS alike. */
  private createAlarmTopic(): sns.Topic {
    const topic = this.createTopic('AlarmTopic', 'offline-detector alarms');
    const { account, region, partition } = Stack.of(this);
    const fromOurAlarms = {
      StringEquals: { 'aws:SourceAccount': account },
      ArnLike: { 'aws:SourceArn': `arn:${partition}:cloudwatch:${region}:${account}:alarm:*` },
    };
    this.topicKey.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'], // in a key policy, '*' is this key
        conditions: fromOurAlarms,
      }),
    );
    topic.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
        conditions: fromOurAlarms,
      }),
    );
    return topic;
  }
}
