// npm run cost -- --devices 1000000 --interval 60 [--source sqs|kinesis] [--precision 0|timeout] [--json]
// A monthly cost estimate of the detector next to the naive design, from the write units per message measured by
// `npm run bench` (bench/results.json) and the prices and assumptions in bench/prices.json, which you can edit.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000000' },
    interval: { type: 'string', default: '60' },
    source: { type: 'string', default: 'sqs' },
    precision: { type: 'string', default: '0' },
    prices: { type: 'string', default: 'bench/prices.json' },
    results: { type: 'string', default: 'bench/results.json' },
    json: { type: 'boolean', default: false },
  },
});
const devices = Number(values.devices);
const interval = Number(values.interval);
const source = values.source;
if (!(devices > 0) || !(interval > 0) || !['sqs', 'kinesis'].includes(source ?? '')) {
  throw new Error(
    'usage: npm run cost -- --devices N --interval SECONDS [--source sqs|kinesis] [--precision 0|timeout]',
  );
}
const prices = JSON.parse(readFileSync(values.prices!, 'utf8'));
const results = JSON.parse(readFileSync(values.results!, 'utf8'));
const measured = results.system.wruPerMessage[values.precision === 'timeout' ? 'precisionTimeout' : 'precision0'];
// Kinesis keeps a device on one container, so its coalescing cache hits; SQS spreads batches.
const designWru: number = source === 'kinesis' ? measured.designDeviceAffinity : measured.design;
const naiveWru: number = measured.naive;

const HOURS = 730;
const SECONDS = HOURS * 3600;
const perSecond = devices / interval;
const messages = perSecond * SECONDS;

function estimate(wruPerMessage: number) {
  const d = prices.dynamodb;
  const l = prices.lambda;
  const sweepJobs = prices.sweep.shards * (60 / prices.sweep.tickSeconds) * 60 * HOURS;
  const ingestInvocations = messages / l.ingestBatchSize;
  const transitions = devices * prices.sns.transitionsPerDevicePerMonth;
  const writes = messages * wruPerMessage;
  // One strongly consistent GetItem per probe credit and per sweep job (watermarks), index queries per sweep job.
  const reads = sweepJobs * 2 + ingestInvocations * 0.1;
  const storage = ((devices * d.bytesPerDevice) / 1e9) * d.storagePerGbMonth;
  const onDemand = (writes / 1e6) * d.onDemandPerMillionWrites + (reads / 1e6) * d.onDemandPerMillionReads + storage;
  const wcu = (perSecond * wruPerMessage) / d.provisionedTargetUtilization;
  const rcu = Math.max(5, reads / SECONDS / d.provisionedTargetUtilization);
  const provisioned = wcu * HOURS * d.provisionedPerWcuHour + rcu * HOURS * d.provisionedPerRcuHour + storage;
  const lambdaRequests = ingestInvocations + sweepJobs + 60 * HOURS;
  const gbSeconds =
    l.memoryGb *
    ((ingestInvocations * l.ingestMsPerBatch + sweepJobs * l.sweepMsPerJob + 60 * HOURS * l.dispatchMsPerRun) / 1000);
  const lambda = (lambdaRequests / 1e6) * l.perMillionRequests + gbSeconds * l.perGbSecond;
  let ingestSource: number;
  if (source === 'sqs') {
    // Devices' sends, and Lambda's receives and deletes of up to 10 messages each; sweep jobs sent and consumed.
    const requests = messages + (2 * messages) / prices.sqs.messagesPerReceive + sweepJobs * 3;
    ingestSource = (requests / 1e6) * prices.sqs.perMillionRequests;
  } else {
    const shards = Math.ceil(perSecond / prices.kinesis.recordsPerSecondPerShard);
    ingestSource =
      shards * HOURS * prices.kinesis.perShardHour +
      (messages / 1e6) * prices.kinesis.perMillionPutPayloadUnits +
      ((sweepJobs * 3) / 1e6) * prices.sqs.perMillionRequests;
  }
  const sns = (transitions / 1e6) * prices.sns.perMillionPublishes;
  const scheduler = ((60 * HOURS) / 1e6) * prices.scheduler.perMillionInvocations;
  const round = (x: number) => Math.round(x * 100) / 100;
  const common = lambda + ingestSource + sns + scheduler;
  return {
    wruPerMessage: wruPerMessage,
    dynamodbOnDemand: round(onDemand),
    dynamodbProvisioned: round(provisioned),
    provisionedWcu: Math.ceil(wcu),
    lambda: round(lambda),
    [source === 'sqs' ? 'sqs' : 'kinesis']: round(ingestSource),
    sns: round(sns),
    scheduler: round(scheduler),
    totalOnDemand: round(onDemand + common),
    totalProvisioned: round(provisioned + common),
  };
}

const design = estimate(designWru);
const naive = estimate(naiveWru);
const out = {
  devices,
  intervalSeconds: interval,
  messagesPerMonth: Math.round(messages),
  source,
  precision: values.precision,
  measured: results.generatedAt,
  design,
  naive,
};
if (values.json) console.log(JSON.stringify(out));
else {
  const usd = (x: unknown) =>
    typeof x === 'number' ? `$${x.toLocaleString('en-US', { maximumFractionDigits: 2 })}` : String(x);
  const keys = Object.keys(design).filter((k) => k !== 'wruPerMessage' && k !== 'provisionedWcu');
  console.log(
    `Monthly estimate: ${devices.toLocaleString('en-US')} devices, one message every ${interval} s (${(messages / 1e9).toFixed(2)} billion messages), ${source}, precision ${values.precision}`,
  );
  console.log(
    `write units per message (measured ${String(results.generatedAt).slice(0, 10)}): design ${designWru}, naive ${naiveWru}`,
  );
  console.log(`${'item'.padEnd(22)}${'this design'.padStart(16)}${'naive design'.padStart(16)}`);
  for (const k of keys) {
    console.log(
      `${k.padEnd(22)}${usd((design as Record<string, unknown>)[k]).padStart(16)}${usd((naive as Record<string, unknown>)[k]).padStart(16)}`,
    );
  }
  console.log(`provisioned WCU (70 % target): design ${design.provisionedWcu}, naive ${naive.provisionedWcu}`);
  console.log(
    'Prices and assumptions: bench/prices.json (edit them); measured units: bench/results.json (npm run bench).',
  );
}
