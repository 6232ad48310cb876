// End to end through the stack deployed by `npm run deploy:localstack`: devices send to the ingest queue, some stop,
// and exactly those are reported on the offline topic (received through an SQS queue subscribed to it).
// Runs only with AWS_ENDPOINT_URL set (`npm run test:localstack`); skipped in the normal run.
//
// LocalStack's EventBridge Scheduler does not fire targets, so the test plays the scheduler: it invokes the dispatch
// function once a minute, as the schedule would. Lambda Invoke goes through LocalStack's REST endpoint directly
// (LocalStack does not check signatures), which keeps @aws-sdk/client-lambda out of the dependencies.
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SNSClient, SubscribeCommand, UnsubscribeCommand } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SetQueueAttributesCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';

const endpoint = process.env.AWS_ENDPOINT_URL;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUTPUTS_FILE = path.join(root, '.local', 'localstack', 'outputs.json');
const STACK = process.env.OD_STACK_NAME ?? 'OfflineDetector';
/** Must match the device type deploy.sh configures. */
const TIMEOUT_MS = 30_000;
const HEARTBEAT_MS = 5_000;

interface Outputs {
  IngestQueueUrl: string;
  OfflineTopicArn: string;
  DispatchFunctionName: string;
}

function stackOutputs(): Outputs {
  if (!existsSync(OUTPUTS_FILE)) throw new Error(`${OUTPUTS_FILE} not found: run npm run deploy:localstack first`);
  const all = JSON.parse(readFileSync(OUTPUTS_FILE, 'utf8')) as Record<string, Partial<Outputs>>;
  const out = all[STACK];
  if (!out?.IngestQueueUrl || !out.OfflineTopicArn || !out.DispatchFunctionName) {
    throw new Error(`stack ${STACK} outputs lack IngestQueueUrl, OfflineTopicArn or DispatchFunctionName`);
  }
  return out as Outputs;
}

async function invokeDispatch(base: string, functionName: string): Promise<void> {
  const res = await fetch(`${base}/2015-03-31/functions/${encodeURIComponent(functionName)}/invocations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({}),
  });
  const body = await res.text();
  if (!res.ok || res.headers.get('x-amz-function-error')) throw new Error(`dispatch failed: ${res.status} ${body}`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!endpoint)('end to end through the deployed stack (LocalStack)', () => {
  it('reports the devices that went silent, and only those', { timeout: 300_000 }, async () => {
    const base = endpoint!;
    const outputs = stackOutputs();
    const sqs = new SQSClient({ endpoint: base });
    const sns = new SNSClient({ endpoint: base });

    const run = `e2e-${Date.now()}`;
    const keep = [`${run}-keep-1`, `${run}-keep-2`];
    const stop = [`${run}-stop-1`, `${run}-stop-2`, `${run}-stop-3`];

    const { QueueUrl: inbox } = await sqs.send(new CreateQueueCommand({ QueueName: `${run}-offline-events` }));
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: inbox!, AttributeNames: ['QueueArn'] }),
    );
    const inboxArn = Attributes!.QueueArn!;
    await sqs.send(
      new SetQueueAttributesCommand({
        QueueUrl: inbox!,
        Attributes: {
          Policy: JSON.stringify({
            Version: '2012-10-17',
            Statement: [
              {
                Effect: 'Allow',
                Principal: { Service: 'sns.amazonaws.com' },
                Action: 'sqs:SendMessage',
                Resource: inboxArn,
                Condition: { ArnEquals: { 'aws:SourceArn': outputs.OfflineTopicArn } },
              },
            ],
          }),
        },
      }),
    );
    const { SubscriptionArn } = await sns.send(
      new SubscribeCommand({
        TopicArn: outputs.OfflineTopicArn,
        Protocol: 'sqs',
        Endpoint: inboxArn,
        Attributes: { RawMessageDelivery: 'true' },
        ReturnSubscriptionArn: true,
      }),
    );

    const send = (ids: string[]) =>
      sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: outputs.IngestQueueUrl,
          Entries: ids.map((deviceId, i) => ({ Id: String(i), MessageBody: JSON.stringify({ deviceId }) })),
        }),
      );

    const offline = new Map<string, { type: string; deviceId: string; eventId: string }>();
    try {
      await send([...keep, ...stop]);
      const start = Date.now();
      let lastDispatch = 0;
      let lastHeartbeat = start;
      // Detection is due by timeout + precision + one tick; allow the watermark tolerance and LocalStack's cold
      // starts on top.
      const deadline = start + TIMEOUT_MS + 120_000;
      while (Date.now() < deadline && !stop.every((id) => offline.has(id))) {
        if (Date.now() - lastDispatch >= 60_000) {
          await invokeDispatch(base, outputs.DispatchFunctionName);
          lastDispatch = Date.now();
        }
        if (Date.now() - lastHeartbeat >= HEARTBEAT_MS) {
          await send(keep);
          lastHeartbeat = Date.now();
        }
        const { Messages = [] } = await sqs.send(
          new ReceiveMessageCommand({ QueueUrl: inbox!, MaxNumberOfMessages: 10, WaitTimeSeconds: 2 }),
        );
        for (const m of Messages) {
          const event = JSON.parse(m.Body!) as { type: string; deviceId: string; eventId: string };
          if (event.deviceId.startsWith(run)) offline.set(event.deviceId, event);
        }
        if (Messages.length > 0) {
          await sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: inbox!,
              Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
            }),
          );
        }
        await sleep(500);
      }

      expect([...offline.keys()].sort()).toEqual([...stop].sort());
      for (const id of stop) expect(offline.get(id)?.type).toBe('device.offline');
    } finally {
      if (SubscriptionArn) await sns.send(new UnsubscribeCommand({ SubscriptionArn })).catch(() => undefined);
      await sqs.send(new DeleteQueueCommand({ QueueUrl: inbox! })).catch(() => undefined);
    }
  });
});
