// npm run bench:readme — writes the README's performance table from bench/results.json, between the markers
// <!-- perf:start --> and <!-- perf:end -->, so the numbers a reader sees are the ones `npm run bench` measured.
import { readFileSync, writeFileSync } from 'node:fs';

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
      }
    >;
    scenario: {
      name: string;
      devices: number;
      messages: number;
      falseOffline: number;
      missedOffline: number;
      requiredDetections: number;
      stallDeferred: number;
      latenessGoal: Record<string, { p99Ms: number; goalMs: number; ok: boolean }>;
    };
  };
  ingest: { messagesPerSecond?: number; cpuMicrosPerMessage?: number; readsPerMessage?: number };
  sweep: Record<string, unknown>;
}

export function perfTable(r: Results): string {
  const w = r.system.wruPerMessage;
  const s = r.system.scenario;
  const mark = (ok: boolean) => (ok ? '✅' : '❌');
  const rows = [
    '| measure | this design | naive design | ratio (goal) |',
    '| --- | --- | --- | --- |',
    ...(['precision0', 'precisionTimeout'] as const).flatMap((p) => {
      const label = p === 'precision0' ? 'precision 0' : 'precision = timeout';
      return [
        `| write units per message, ${label}, SQS (batches spread) | ${w[p].design} | ${w[p].naive} | ${w[p].ratio} (≤ ${w[p].goal}) ${mark(w[p].ratio <= w[p].goal)} |`,
        `| write units per message, ${label}, device affinity (Kinesis) | ${w[p].designDeviceAffinity} | ${w[p].naive} | ${w[p].ratioDeviceAffinity} (≤ ${w[p].goal}) ${mark(w[p].ratioDeviceAffinity <= w[p].goal)} |`,
      ];
    }),
    ...Object.entries(s.latenessGoal).map(
      ([type, l]) =>
        `| detection lateness p99, ${type} | ${(l.p99Ms / 1000).toFixed(1)} s | | goal ≤ precision + tick + 5 s = ${(l.goalMs / 1000).toFixed(0)} s ${mark(l.ok)} |`,
    ),
    `| false / missed offline, stall + disconnect scenario | ${s.falseOffline} / ${s.missedOffline} of ${s.requiredDetections} due (${s.stallDeferred} deferred by the stall) | | 0 / 0 ${mark(s.falseOffline === 0 && s.missedOffline === 0)} |`,
    ...(r.ingest.cpuMicrosPerMessage !== undefined
      ? [`| ingest core CPU per message | ${r.ingest.cpuMicrosPerMessage} µs | | |`]
      : []),
    ...(r.ingest.readsPerMessage !== undefined
      ? [`| reads per message (ingest, bench:ingest) | ${r.ingest.readsPerMessage.toFixed(3)} | | |`]
      : []),
  ];
  return [
    `Measured by \`npm run bench\` on ${r.machine.cpus} CPUs, Node ${r.machine.node}, ${r.generatedAt.slice(0, 10)}: the real handlers in virtual time on DynamoDB Local, ${r.system.fleet.devices.toLocaleString('en-US')} devices over ${r.system.fleet.virtualMinutes} virtual minutes (${r.system.fleet.steady}); the scenario run is \`${s.name}\` with ${s.devices.toLocaleString('en-US')} devices and ${s.messages.toLocaleString('en-US')} messages. "Device affinity": each device always reaches the same Lambda container (Kinesis), so the coalescing cache hits; otherwise SQS batches are spread over 4 containers. Full numbers: \`bench/results.json\`.`,
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
