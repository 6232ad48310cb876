// What every queue of the detector shares, and the one way its functions are granted sending.
import type { RemovalPolicy } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import * as sqs from 'aws-cdk-lib/aws-sqs';

/** SSE-SQS (encrypted without a key that every producer would need a grant on) and TLS only. */
export function queueDefaults(removalPolicy: RemovalPolicy) {
  return { encryption: sqs.QueueEncryption.SQS_MANAGED, enforceSSL: true, removalPolicy };
}

/** `sqs:SendMessage` (which also authorizes SendMessageBatch) and what a KMS-encrypted queue needs for it. CDK's
 * grantSendMessages adds GetQueueAttributes and GetQueueUrl, which the senders here never call. */
export function grantSendOnly(queue: sqs.IQueue, grantee: iam.IGrantable, ...extra: string[]): iam.Grant {
  queue.encryptionMasterKey?.grant(grantee, 'kms:GenerateDataKey', 'kms:Decrypt');
  return queue.grant(grantee, 'sqs:SendMessage', ...extra);
}
