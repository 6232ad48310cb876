// npm run cost -- --devices 1000000 --interval 60 [--source sqs|kinesis] [--precision 0|timeout] [--json]
// A monthly cost estimate of both engines (per-device and batched) next to the naive design, from the units per
// message measured by `npm run bench` (bench/results.json, once every device has registered: a month at the design
// point is steady state) and the prices and assumptions in bench/prices.json, which you can edit. Each function is
// priced at the memory the construct deploys it with, and the Kinesis dispatcher at the whole of its timeout (it
// stays the minute): both from the contracts (lambdas/core/contracts.ts functionSpec), not from assumptions.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type Deployment, type FunctionName, functionSpec } from '../lambdas/core/contracts.js';
import { batchedSizing } from '../lambdas/core/sizing.js';

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
if (prices.lambda.memoryGb !== undefined || prices.lambda.dispatchMsPerRun !== undefined) {
  console.error(
    `${values.prices}: lambda.memoryGb and lambda.dispatchMsPerRun are no longer read: memory and the Kinesis ` +
      "dispatcher's run time are the construct's (lambdas/core/contracts.ts); the SQS-only dispatcher's run is " +
      'lambda.dispatchMsPerRunWithoutStream.',
  );
}
if (typeof prices.lambda.dispatchMsPerRunWithoutStream !== 'number') {
  throw new Error(`${values.prices}: lambda.dispatchMsPerRunWithoutStream (ms) is missing`);
}
const results = JSON.parse(readFileSync(values.results!, 'utf8'));
const precisionKey = values.precision === 'timeout' ? 'precisionTimeout' : 'precision0';
const steady: Record<string, { wru: number; rru: number }> = results.system.steadyUnitsPerMessage[precisionKey];
// Kinesis keeps a device on one container, so its coalescing cache hits; SQS spreads batches.
const design = steady[source === 'kinesis' ? 'designDeviceAffinity' : 'design']!;
const naiveUnits = steady.naive!;
const batchedUnits = steady.batched!;

const HOURS = 730;
const SECONDS = HOURS * 3600;
const perSecond = devices / interval;
const messages = perSecond * SECONDS;

/** The batched engine's shape at this fleet, as the construct chooses it (core/batched.ts batchedSizing). */
const sizing = batchedSizing({ devices, messagesPerSecond: perSecond });

/** A function as the construct deploys it for this engine and source (lambdas/core/contracts.ts). */
const deployed = (fn: FunctionName, engine: Deployment['engine']) =>
  functionSpec(fn, { engine, stream: source === 'kinesis' });
const ingestName: FunctionName = source === 'kinesis' ? 'ingestKinesis' : 'ingestSqs';
/** The dispatcher's billed time per run: with a stream it stays the minute to put each tick's probes (billed up to
 * its timeout); without one it enqueues the minute's jobs and probes and returns (a measured assumption). */
const dispatchMsPerRun =
  source === 'kinesis'
    ? deployed('dispatch', 'per-device').timeoutSeconds * 1000
    : prices.lambda.dispatchMsPerRunWithoutStream;

function estimate(units: { wru: number; rru: number }, engine: 'per-device' | 'batched') {
  const wruPerMessage = units.wru;
  const d = prices.dynamodb;
  const l = prices.lambda;
  const batched = engine === 'batched';
  const gb = (fn: FunctionName) => deployed(fn, engine).memoryMb / 1024;
  const shards = batched ? sizing.shardCount : prices.sweep.shards;
  const sweepJobs = shards * (60 / prices.sweep.tickSeconds) * 60 * HOURS;
  const ingestBatchSize = batched ? sizing.batchSize : l.ingestBatchSize;
  const ingestInvocations = messages / ingestBatchSize;
  const transitions = devices * prices.sns.transitionsPerDevicePerMonth;
  const writes = messages * wruPerMessage;
  const reads = messages * units.rru;
  const storage = ((devices * d.bytesPerDevice) / 1e9) * d.storagePerGbMonth;
  const onDemand = (writes / 1e6) * d.onDemandPerMillionWrites + (reads / 1e6) * d.onDemandPerMillionReads + storage;
  const wcu = (perSecond * wruPerMessage) / d.provisionedTargetUtilization;
  const rcu = Math.max(5, reads / SECONDS / d.provisionedTargetUtilization);
  const provisioned = wcu * HOURS * d.provisionedPerWcuHour + rcu * HOURS * d.provisionedPerRcuHour + storage;
  const lambdaRequests = ingestInvocations + sweepJobs + 60 * HOURS;
  // Per record of a batch (parse, coalesce, write or append), and per sweep job; the batched sweep job also merges
  // the shard's sightings since the last tick. The measured milliseconds are taken as they are at the deployed memory
  // (more memory gives more CPU, so this errs high).
  const ingestMs = ingestInvocations * l.ingestMsPerBatch * (ingestBatchSize / l.ingestBatchSize);
  const sweepMs = sweepJobs * l.sweepMsPerJob + (batched ? messages * l.batchedMergeMsPerSighting : 0);
  const dispatchMs = 60 * HOURS * dispatchMsPerRun;
  const gbSeconds = (gb(ingestName) * ingestMs + gb('sweep') * sweepMs + gb('dispatch') * dispatchMs) / 1000;
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
    wruPerMessage,
    rruPerMessage: units.rru,
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

/** The functions as priced: memory per engine, and the dispatcher's billed time per run. */
const functions = {
  ingest: { memoryMb: deployed(ingestName, 'per-device').memoryMb },
  sweep: {
    memoryMb: deployed('sweep', 'per-device').memoryMb,
    batchedMemoryMb: deployed('sweep', 'batched').memoryMb,
  },
  dispatch: { memoryMb: deployed('dispatch', 'per-device').memoryMb, msPerRun: dispatchMsPerRun },
};

const perDevice = estimate(design, 'per-device');
const batchedEstimate = estimate(batchedUnits, 'batched');
const naive = estimate(naiveUnits, 'per-device');
const out = {
  devices,
  intervalSeconds: interval,
  messagesPerMonth: Math.round(messages),
  source,
  precision: values.precision,
  measured: results.generatedAt,
  batchedSizing: sizing,
  functions,
  perDevice,
  batched: batchedEstimate,
  naive,
};
if (values.json) console.log(JSON.stringify(out));
else {
  const usd = (x: unknown) =>
    typeof x === 'number' ? `$${x.toLocaleString('en-US', { maximumFractionDigits: 2 })}` : String(x);
  const keys = Object.keys(perDevice).filter(
    (k) => k !== 'wruPerMessage' && k !== 'rruPerMessage' && k !== 'provisionedWcu',
  );
  console.log(
    `Monthly estimate: ${devices.toLocaleString('en-US')} devices, one message every ${interval} s (${(messages / 1e9).toFixed(2)} billion messages), ${source}, precision ${values.precision}`,
  );
  console.log(
    `units per message, steady state (measured ${String(results.generatedAt).slice(0, 10)}): per-device ${design.wru} W / ${design.rru} R, batched ${batchedUnits.wru} W / ${batchedUnits.rru} R, naive ${naiveUnits.wru} W / ${naiveUnits.rru} R`,
  );
  console.log(
    `batched engine at this fleet: ${sizing.shardCount} shards, ingest batches of ${sizing.batchSize} within ${sizing.batchWindowSeconds} s`,
  );
  console.log(
    `functions as deployed (lambdas/core/contracts.ts): ingest ${functions.ingest.memoryMb} MB, sweep ${functions.sweep.memoryMb} MB (batched ${functions.sweep.batchedMemoryMb} MB), dispatch ${functions.dispatch.memoryMb} MB billed ${functions.dispatch.msPerRun / 1000} s a run`,
  );
  const columns = [
    ['per-device', perDevice],
    ['batched', batchedEstimate],
    ['naive design', naive],
  ] as const;
  console.log(`${'item'.padEnd(22)}${columns.map(([name]) => name.padStart(16)).join('')}`);
  for (const k of keys) {
    console.log(
      `${k.padEnd(22)}${columns.map(([, e]) => usd((e as Record<string, unknown>)[k]).padStart(16)).join('')}`,
    );
  }
  console.log(`provisioned WCU (70 % target): ${columns.map(([name, e]) => `${name} ${e.provisionedWcu}`).join(', ')}`);
  console.log(
    'Prices and assumptions: bench/prices.json (edit them); measured units: bench/results.json (npm run bench).',
  );
}
