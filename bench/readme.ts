// npm run bench:readme — writes the README's performance table from bench/results.json, between the markers
// <!-- perf:start --> and <!-- perf:end -->, so the numbers a reader sees are the ones `npm run bench` measured.
import { readFileSync, writeFileSync } from 'node:fs';

interface ScenarioResult {
  name: string;
  devices: number;
  messages: number;
  falseOffline: number;
  missedOffline: number;
  requiredDetections: number;
  stallDeferred: number;
  latenessGoal: Record<string, { p99Ms: number; goalMs: number; ok: boolean }>;
  onlineLatenessMs?: { p50: number; p99: number; max: number };
}

interface Results {
  generatedAt: string;
  machine: { node: string; cpus: number; cpu?: string };
  system: {
    fleet: { devices: number; virtualMinutes: number; steady: string };
    wruPerMessage: Record<
      'precision0' | 'precisionTimeout',
      {
        design: number;
        designDeviceAffinity: number;
        naive: number;
        ratio: number;
        ratioDeviceAffinity: number;
        goal: number;
        batched?: number;
      }
    >;
    steadyUnitsPerMessage?: Record<'precision0' | 'precisionTimeout', Record<string, { wru: number; rru: number }>>;
    scenario: ScenarioResult;
    scenarioBatched?: ScenarioResult;
  };
  ingest: {
    messagesPerSecond?: number;
    cpuMicrosPerMessage?: number;
    readsPerMessage?: number;
    tagsWruPerMessage?: Record<
      'perDevicePrecision0Sqs' | 'perDevicePrecision60sKinesis' | 'batched',
      { withoutTags: number; withTags: number }
    >;
  };
  sweep: Record<string, unknown>;
}

/** The batched engine's goal per message, all-in (issue 11). */
const BATCHED_GOAL = 0.05;
/** Tags ride on writes the heartbeat path makes anyway (issue 12): within 1 % of the same fleet without them. */
const unchangedByTags = ({ withoutTags, withTags }: { withoutTags: number; withTags: number }) =>
  withTags <= withoutTags * 1.01;

export function perfTable(r: Results): string {
  const w = r.system.wruPerMessage;
  const s = r.system.scenario;
  const b = r.system.scenarioBatched;
  const steady = r.system.steadyUnitsPerMessage;
  const tags = r.ingest.tagsWruPerMessage;
  const mark = (ok: boolean) => (ok ? '✅' : '❌');
  const seconds = (ms: number | undefined) => (ms === undefined ? '' : `${(ms / 1000).toFixed(1)} s`);
  const rows = [
    '| measure | per-device engine | batched engine | naive design | goal |',
    '| --- | --- | --- | --- | --- |',
    ...(['precision0', 'precisionTimeout'] as const).flatMap((p) => {
      const label = p === 'precision0' ? 'precision 0' : 'precision = timeout';
      const batched = w[p].batched;
      return [
        `| write units per message, ${label}, SQS (batches spread), all-in | ${w[p].design} (${w[p].ratio} × naive) | ${batched ?? ''} | ${w[p].naive} | per-device ≤ ${w[p].goal} × naive ${mark(w[p].ratio <= w[p].goal)}${batched !== undefined ? `; batched ≤ ${BATCHED_GOAL} ${mark(batched <= BATCHED_GOAL)}` : ''} |`,
        `| write units per message, ${label}, device affinity (Kinesis), all-in | ${w[p].designDeviceAffinity} (${w[p].ratioDeviceAffinity} × naive) | ${batched ?? ''} | ${w[p].naive} | per-device ≤ ${w[p].goal} × naive ${mark(w[p].ratioDeviceAffinity <= w[p].goal)} |`,
        ...(steady
          ? [
              `| write / read units per message, ${label}, after every device registered | ${steady[p].design!.wru} / ${steady[p].design!.rru} (SQS), ${steady[p].designDeviceAffinity!.wru} / ${steady[p].designDeviceAffinity!.rru} (Kinesis) | ${steady[p].batched!.wru} / ${steady[p].batched!.rru} | ${steady[p].naive!.wru} / ${steady[p].naive!.rru} | batched ≤ ${BATCHED_GOAL} / ${BATCHED_GOAL} ${mark(steady[p].batched!.wru <= BATCHED_GOAL && steady[p].batched!.rru <= BATCHED_GOAL)} |`,
            ]
          : []),
      ];
    }),
    ...Object.entries(s.latenessGoal).map(([type, l]) => {
      const bl = b?.latenessGoal[type];
      return `| offline detection lateness p99, ${type} | ${seconds(l.p99Ms)} | ${seconds(bl?.p99Ms)} | | ≤ precision + tick + 5 s = ${(l.goalMs / 1000).toFixed(0)} s ${mark(l.ok && (bl?.ok ?? true))} |`;
    }),
    ...(s.onlineLatenessMs
      ? [
          `| online event lateness p50 / p99 (from the message that brought the device back) | ${seconds(s.onlineLatenessMs.p50)} / ${seconds(s.onlineLatenessMs.p99)} | ${seconds(b?.onlineLatenessMs?.p50)} / ${seconds(b?.onlineLatenessMs?.p99)} | | |`,
        ]
      : []),
    `| false / missed offline, stall + disconnect scenario | ${s.falseOffline} / ${s.missedOffline} of ${s.requiredDetections} due (${s.stallDeferred} deferred by the stall) | ${b ? `${b.falseOffline} / ${b.missedOffline} of ${b.requiredDetections} due (${b.stallDeferred} deferred)` : ''} | | 0 / 0 ${mark(s.falseOffline === 0 && s.missedOffline === 0 && (b ? b.falseOffline === 0 && b.missedOffline === 0 : true))} |`,
    ...(r.ingest.cpuMicrosPerMessage !== undefined
      ? [`| ingest core CPU per message | ${r.ingest.cpuMicrosPerMessage} µs | | | |`]
      : []),
    ...(r.ingest.readsPerMessage !== undefined
      ? [`| reads per message (ingest, bench:ingest) | ${r.ingest.readsPerMessage.toFixed(3)} | 0 | | |`]
      : []),
    ...(tags
      ? [
          `| write units per message with / without tags (every message carries \`site\`), after every device registered (bench:ingest) | ${tags.perDevicePrecision0Sqs.withTags} / ${tags.perDevicePrecision0Sqs.withoutTags} (precision 0, SQS), ${tags.perDevicePrecision60sKinesis.withTags} / ${tags.perDevicePrecision60sKinesis.withoutTags} (precision 60 s, Kinesis) | ${tags.batched.withTags} / ${tags.batched.withoutTags} | | unchanged by tags ${mark(Object.values(tags).every(unchangedByTags))} |`,
        ]
      : []),
  ];
  return [
    `Measured by \`npm run bench\` on ${r.machine.cpus} CPUs, Node ${r.machine.node}, ${r.generatedAt.slice(0, 10)}: the real handlers in virtual time on DynamoDB Local, ${r.system.fleet.devices.toLocaleString('en-US')} devices over ${r.system.fleet.virtualMinutes} virtual minutes (${r.system.fleet.steady}); the scenario run is \`${s.name}\` with ${s.devices.toLocaleString('en-US')} devices and ${s.messages.toLocaleString('en-US')} messages. "All-in" counts every write of the hour, each device's one-time registration included; "after every device registered" counts from minute 10. "Device affinity": each device always reaches the same Lambda container (Kinesis), so the per-device engine's coalescing cache hits; otherwise SQS batches are spread over 4 containers. The batched engine takes its shards and ingest batches from the fleet (\`batchedSizing\`). Full numbers: \`bench/results.json\`.`,
    '',
    ...rows,
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = JSON.parse(readFileSync('bench/results.json', 'utf8')) as Results;
  const readme = readFileSync('README.md', 'utf8');
  const start = '<!-- perf:start -->';
  const end = '<!-- perf:end -->';
  const [before, rest] = readme.split(start);
  const after = rest?.split(end)[1];
  if (before === undefined || after === undefined) throw new Error(`README.md has no ${start} … ${end} markers`);
  writeFileSync('README.md', `${before}${start}\n${perfTable(results)}\n${end}${after}`);
  process.stderr.write('README.md performance table updated from bench/results.json\n');
}
