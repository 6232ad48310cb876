import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as sqs from 'aws-cdk-lib/aws-sqs';

/** `sqs:SendMessage` (which also authorizes SendMessageBatch) and what a KMS-encrypted queue needs for it. CDK's
 * grantSendMessages adds GetQueueAttributes and GetQueueUrl, which the senders here never call. */
export function grantSendOnly(queue: sqs.IQueue, grantee: iam.IGrantable, ...extra: string[]): iam.Grant {
  queue.encryptionMasterKey?.grant(grantee, 'kms:GenerateDataKey', 'kms:Decrypt');
  return queue.grant(grantee, 'sqs:SendMessage', ...extra);
}
