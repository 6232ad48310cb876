// The rejects destination: an SQS queue that receives every record the ingest cannot use, with the reason.
import { SendMessageBatchCommand, type SendMessageBatchRequestEntry, type SQSClient } from '@aws-sdk/client-sqs';
import { mapLimit } from '../core/concurrency.js';
import type { RejectedRecord, RejectSink } from '../core/ports.js';

/** A bounded excerpt of a rejected body: enough to see what was sent, small enough that ten of them and their
 * attributes stay far inside SQS's limits for a message (256 KiB) and a batch, whatever a producer sends. */
export const MAX_EXCERPT_BYTES = 8 * 1024;
/** One SendMessageBatch's payload at most (SQS's limit for a batch is 256 KiB): entries are grouped by bytes. */
const MAX_BATCH_BYTES = 200 * 1024;
/** Characters SQS refuses in a message body. */
const NOT_ALLOWED_IN_SQS = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

export class RejectQueue implements RejectSink {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async send(rejections: RejectedRecord[]): Promise<{ failed: RejectedRecord[] }> {
    const failed: RejectedRecord[] = [];
    // Bounded like the table writes: a payload of thousands of bad elements is not thousands of calls at once.
    await mapLimit(batches(rejections.map((r, i) => ({ rejection: r, entry: toEntry(r, i) }))), 8, async (batch) => {
      try {
        const out = await this.sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: this.queueUrl,
            Entries: batch.map(({ entry }, i) => ({ ...entry, Id: String(i) })),
          }),
        );
        for (const entry of out.Failed ?? []) failed.push(batch[Number(entry.Id)]!.rejection);
      } catch {
        failed.push(...batch.map(({ rejection }) => rejection));
      }
    });
    return { failed };
  }
}

/** At most ten entries and MAX_BATCH_BYTES per SendMessageBatch. */
function batches<T extends { entry: SendMessageBatchRequestEntry }>(items: T[]): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = entryBytes(item.entry);
    if (current.length === 10 || (current.length > 0 && bytes + size > MAX_BATCH_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/** What SQS counts of a message: its body and its attributes' names, types and values, in bytes. */
export function entryBytes(entry: SendMessageBatchRequestEntry): number {
  let bytes = Buffer.byteLength(entry.MessageBody ?? '');
  for (const [name, value] of Object.entries(entry.MessageAttributes ?? {})) {
    bytes +=
      Buffer.byteLength(name) + Buffer.byteLength(value.DataType ?? '') + Buffer.byteLength(value.StringValue ?? '');
  }
  return bytes;
}

export function toEntry(rejection: RejectedRecord, index: number): SendMessageBatchRequestEntry {
  let { body, encoding } = rejection;
  if (encoding === 'utf8' && NOT_ALLOWED_IN_SQS.test(body)) {
    body = Buffer.from(body, 'utf8').toString('base64');
    encoding = 'base64';
  }
  const truncated = Buffer.byteLength(body) > MAX_EXCERPT_BYTES;
  if (truncated) body = excerpt(body, MAX_EXCERPT_BYTES);
  const attribute = (value: string) => ({ DataType: 'String', StringValue: excerpt(value, 1024) || '-' });
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

/** The longest prefix of `text` within `maxBytes` of UTF-8 that does not split a character. */
function excerpt(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  const cut = Buffer.from(text, 'utf8').subarray(0, maxBytes).toString('utf8');
  // A character cut in half decodes as U+FFFD at the end: drop it.
  return cut.endsWith('\uFFFD') ? cut.slice(0, -1) : cut;
}
