// The rejects destination: an SQS queue that receives every record the ingest cannot use, with the reason.
import { SendMessageBatchCommand, type SendMessageBatchRequestEntry, type SQSClient } from '@aws-sdk/client-sqs';
import type { RejectedRecord, RejectSink } from '../core/ports.js';
import { chunks } from './chunks.js';

/** Keeps a rejected body well inside SQS's message size limit (256 KiB) with room for attributes. */
const MAX_BODY_CHARS = 128 * 1024;
/** Characters SQS refuses in a message body. */
const NOT_ALLOWED_IN_SQS = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

export class RejectQueue implements RejectSink {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async send(rejections: RejectedRecord[]): Promise<{ failed: RejectedRecord[] }> {
    const failed: RejectedRecord[] = [];
    await Promise.all(
      chunks(rejections, 10).map(async (chunk) => {
        try {
          const out = await this.sqs.send(
            new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: chunk.map((r, i) => toEntry(r, i)) }),
          );
          for (const entry of out.Failed ?? []) failed.push(chunk[Number(entry.Id)]!);
        } catch {
          failed.push(...chunk);
        }
      }),
    );
    return { failed };
  }
}

function toEntry(rejection: RejectedRecord, index: number): SendMessageBatchRequestEntry {
  let { body, encoding } = rejection;
  if (encoding === 'utf8' && NOT_ALLOWED_IN_SQS.test(body)) {
    body = Buffer.from(body, 'utf8').toString('base64');
    encoding = 'base64';
  }
  const truncated = body.length > MAX_BODY_CHARS;
  if (truncated) body = body.slice(0, MAX_BODY_CHARS);
  const attribute = (value: string) => ({ DataType: 'String', StringValue: value.slice(0, 1024) || '-' });
  return {
    Id: String(index),
    MessageBody: body || '(empty)',
    MessageAttributes: {
      reason: attribute(rejection.reason),
      detail: attribute(rejection.detail),
      source: attribute(rejection.source),
      recordId: attribute(rejection.recordId),
      encoding: attribute(encoding),
      truncated: attribute(String(truncated)),
    },
  };
}
