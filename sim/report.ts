// The self-contained HTML report of a run: the summary and inline SVG plots (devices online over time, transitions
// per minute, the lateness histogram, watermark and sweep lag). No external assets, so it opens anywhere.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Fleet } from './fleet.js';
import type { Summary, Truth } from './truth.js';

export interface SeriesPoint {
  /** Seconds since the run's start. */
  t: number;
  online: number;
  offline: number;
  messagesPerSecond: number;
  eventsPerSecond: number;
  watermarkLagMs?: number;
  sweepLagMs?: number;
}

export interface RunReport {
  mode: 'live' | 'virtual';
  scenario: { name: string; description: string };
  source: string;
  seed: number;
  durationMs: number;
  startedAt: number;
  interrupted: boolean;
  /** Child processes of the engines (they must be gone once the run has ended). */
  enginePids?: number[];
  summary: Summary & { wruPerMessage: number } & Record<string, unknown>;
  settings: Record<string, unknown>;
  series: SeriesPoint[];
  transitionsPerMinute: Array<{ minute: number; offline: number; online: number }>;
  lateness: number[];
  stalls: Array<{ from: number; to: number; caughtUpAt?: number }>;
  disconnects: Array<{ from: number; to: number; devices: number; site?: string }>;
  /** The maintenance windows the run opened, in seconds from the start: over what, how many devices. */
  windows: Array<{ from: number; to: number; group: string; devices: number }>;
  gatewayOutages: Array<{ gateway: string; from: number; to: number; devices: number; stragglers: number }>;
}

/** What a run's report shows of the fleet's and the judge's timeline, in seconds from `origin`; a stall still going on
 * at `now` ends there. */
export function timelineOf(
  truth: Pick<Truth, 'transitions' | 'lateness' | 'stalls'>,
  fleet: Pick<Fleet, 'disconnects' | 'gatewayOutages'>,
  windows: RunReport['windows'],
  origin: number,
  now = Number.POSITIVE_INFINITY,
): Pick<RunReport, 'transitionsPerMinute' | 'lateness' | 'stalls' | 'disconnects' | 'windows' | 'gatewayOutages'> {
  return {
    transitionsPerMinute: [...truth.transitions].sort(([a], [b]) => a - b).map(([minute, c]) => ({ minute, ...c })),
    lateness: truth.lateness,
    stalls: truth.stalls.map((s) => ({
      from: (s.from - origin) / 1000,
      to: (Math.min(s.to, now) - origin) / 1000,
      caughtUpAt: s.caughtUpAt === undefined ? undefined : (s.caughtUpAt - origin) / 1000,
    })),
    disconnects: fleet.disconnects.map((d) => ({ ...d, from: d.from / 1000, to: d.to / 1000 })),
    windows,
    gatewayOutages: fleet.gatewayOutages.map((g) => ({ ...g, from: g.from / 1000, to: g.to / 1000 })),
  };
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const W = 760;
const H = 220;
const PAD = { l: 56, r: 12, t: 12, b: 30 };

interface Line {
  label: string;
  color: string;
  points: Array<[number, number | undefined]>;
}

function niceMax(x: number): number {
  if (x <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((v) => v >= x) ?? x;
}

function axes(xMax: number, yMax: number, xLabel: string, yFormat: (y: number) => string): string {
  const sx = (x: number) => PAD.l + (x / xMax) * (W - PAD.l - PAD.r);
  const sy = (y: number) => H - PAD.b - (y / yMax) * (H - PAD.t - PAD.b);
  let svg = `<line x1="${PAD.l}" y1="${H - PAD.b}" x2="${W - PAD.r}" y2="${H - PAD.b}" stroke="#888"/>`;
  for (let i = 0; i <= 4; i++) {
    const y = (yMax * i) / 4;
    svg += `<line x1="${PAD.l}" y1="${sy(y)}" x2="${W - PAD.r}" y2="${sy(y)}" stroke="#eee"/>`;
    svg += `<text x="${PAD.l - 6}" y="${sy(y) + 4}" text-anchor="end">${esc(yFormat(y))}</text>`;
  }
  for (let i = 0; i <= 6; i++) {
    const x = (xMax * i) / 6;
    svg += `<text x="${sx(x)}" y="${H - PAD.b + 16}" text-anchor="middle">${esc(xLabelOf(x))}</text>`;
  }
  svg += `<text x="${W - PAD.r}" y="${H - 2}" text-anchor="end" fill="#666">${esc(xLabel)}</text>`;
  return svg;
}

const xLabelOf = (s: number) =>
  s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 120 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`;

function shade(windows: RunReport['stalls'], xMax: number, color: string, label: string): string {
  const sx = (x: number) => PAD.l + (Math.min(x, xMax) / xMax) * (W - PAD.l - PAD.r);
  return windows
    .map(
      (w) =>
        `<rect x="${sx(w.from)}" y="${PAD.t}" width="${Math.max(1, sx(w.to) - sx(w.from))}" height="${H - PAD.t - PAD.b}" fill="${color}"><title>${esc(label)}</title></rect>`,
    )
    .join('');
}

function lineChart(lines: Line[], xMax: number, yFormat: (y: number) => string, background = ''): string {
  const values = lines.flatMap((l) => l.points.map(([, y]) => y ?? 0));
  const yMax = niceMax(Math.max(1, ...values));
  const sx = (x: number) => PAD.l + (x / xMax) * (W - PAD.l - PAD.r);
  const sy = (y: number) => H - PAD.b - (Math.min(y, yMax) / yMax) * (H - PAD.t - PAD.b);
  let svg = background + axes(xMax, yMax, 'time since start', yFormat);
  lines.forEach((line, i) => {
    const d = line.points
      .map(([x, y], j) =>
        y === undefined
          ? ''
          : `${j === 0 || line.points[j - 1]?.[1] === undefined ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`,
      )
      .join('');
    svg += `<path d="${d}" fill="none" stroke="${line.color}" stroke-width="1.6"/>`;
    svg += `<rect x="${PAD.l + 10 + i * 170}" y="${PAD.t + 2}" width="10" height="10" fill="${line.color}"/>`;
    svg += `<text x="${PAD.l + 24 + i * 170}" y="${PAD.t + 11}">${esc(line.label)}</text>`;
  });
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}">${svg}</svg>`;
}

function barChart(bars: Array<{ label: string; values: number[] }>, colors: string[], names: string[]): string {
  const yMax = niceMax(Math.max(1, ...bars.map((b) => b.values.reduce((a, v) => a + v, 0))));
  const slot = (W - PAD.l - PAD.r) / Math.max(1, bars.length);
  const sy = (y: number) => (y / yMax) * (H - PAD.t - PAD.b);
  let svg = axes(1, yMax, '', (y) => String(Math.round(y))).replace(
    /<text[^>]*text-anchor="middle"[^>]*>[^<]*<\/text>/g,
    '',
  );
  bars.forEach((bar, i) => {
    let base = H - PAD.b;
    bar.values.forEach((v, k) => {
      const h = sy(v);
      base -= h;
      svg += `<rect x="${PAD.l + i * slot + 1}" y="${base}" width="${Math.max(1, slot - 2)}" height="${h}" fill="${colors[k]}"><title>${esc(`${bar.label}: ${names[k]} ${v}`)}</title></rect>`;
    });
    if (bars.length <= 30 || i % Math.ceil(bars.length / 15) === 0) {
      svg += `<text x="${PAD.l + i * slot + slot / 2}" y="${H - PAD.b + 16}" text-anchor="middle">${esc(bar.label)}</text>`;
    }
  });
  names.forEach((name, k) => {
    svg += `<rect x="${PAD.l + 10 + k * 120}" y="${PAD.t + 2}" width="10" height="10" fill="${colors[k]}"/>`;
    svg += `<text x="${PAD.l + 24 + k * 120}" y="${PAD.t + 11}">${esc(name)}</text>`;
  });
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}">${svg}</svg>`;
}

function histogram(values: number[]): Array<{ label: string; values: number[] }> {
  if (values.length === 0) return [];
  const max = Math.max(...values, 1);
  const width = niceMax(max / 20);
  const bins = new Map<number, number>();
  for (const v of values) {
    const bin = Math.floor(Math.max(0, v) / width);
    bins.set(bin, (bins.get(bin) ?? 0) + 1);
  }
  const last = Math.max(...bins.keys());
  return Array.from({ length: last + 1 }, (_, i) => ({
    label: `${((i * width) / 1000).toFixed(width < 1000 ? 1 : 0)}s`,
    values: [bins.get(i) ?? 0],
  }));
}

export function renderReport(report: RunReport): string {
  const s = report.summary;
  const xMax = Math.max(1, report.series.at(-1)?.t ?? report.durationMs / 1000);
  const stallShade = shade(report.stalls, xMax, 'rgba(220,60,60,0.12)', 'ingest stalled (our own outage)');
  const disconnectShade =
    shade(report.disconnects, xMax, 'rgba(60,60,220,0.08)', 'mass disconnect') +
    shade(report.gatewayOutages, xMax, 'rgba(60,60,220,0.08)', 'gateway outage');
  const windowShade = shade(report.windows, xMax, 'rgba(40,160,80,0.10)', 'maintenance window');
  const ok = s.falseOffline === 0 && s.missedOffline === 0 && s.wrongCause === 0 && s.falseIncidents === 0;
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const duplicatesBy = (s.duplicatesBy ?? {}) as Record<string, number>;
  const rows: Array<[string, string]> = [
    [
      'mode',
      `${report.mode === 'live' ? 'live (wall clock)' : 'virtual time'}, source ${report.source}, seed ${report.seed}`,
    ],
    ['scenario', `${report.scenario.name}: ${report.scenario.description}`],
    ['devices', s.devices.toLocaleString('en-US')],
    ['messages', s.messages.toLocaleString('en-US')],
    ['offline / online events', `${s.offlineEvents} / ${s.onlineEvents}`],
    ['false offline', String(s.falseOffline)],
    ['missed offline', `${s.missedOffline} (of ${s.requiredDetections} detections a completed sweep had to make)`],
    [
      'duplicate events',
      `${s.duplicateEvents}${
        Object.keys(duplicatesBy).length > 0
          ? ` (published more than once: ${Object.entries(duplicatesBy)
              .map(([k, n]) => `${k} ${n}`)
              .join(', ')})`
          : ''
      }`,
    ],
    [
      'overdue at the end',
      `${s.overdueDetections} silences past the design's bound not yet reported (up to ${secs(s.overdueMaxMs)}): slow, not missed`,
    ],
    [
      'detection lateness p50 / p99 / max',
      `${secs(s.latenessMs.p50)} / ${secs(s.latenessMs.p99)} / ${secs(s.latenessMs.max)}`,
    ],
    ['detections deferred by our own stall', String(s.stallDeferred)],
    ...(report.windows.length > 0
      ? [
          [
            'held by maintenance',
            `${s.heldByMaintenance} offline events reported at their window's end (${report.windows.map((w) => `${w.group}, ${w.devices} devices, ${w.from}–${w.to} s`).join('; ')}), up to ${secs(s.heldLatenessMaxMs)} after it`,
          ] as [string, string],
        ]
      : []),
    ...(report.gatewayOutages.length > 0 || s.behindGateway > 0
      ? [
          [
            'behind an offline gateway',
            `${s.behindGateway} offline events with cause parent-offline, ${s.reportedAgain} reported again without it once the gateway was back; wrong cause: ${s.wrongCause}`,
          ] as [string, string],
        ]
      : []),
    ...(s.fleetOutages > 0 || s.markedOutage > 0 || s.falseIncidents > 0
      ? [
          [
            'mass outage',
            `fleet.outage ${s.fleetOutages} (${s.incidents.map((i) => `${i.group}, count ${i.count}, ${i.marked} offline events marked`).join('; ')}), fleet.recovered ${s.fleetRecovered}; false incidents ${s.falseIncidents}`,
          ] as [string, string],
        ]
      : []),
    ['DynamoDB write units per message', String(s.wruPerMessage)],
  ];
  const findings = s.findings
    .map((f) => `<li><b>${esc(f.kind)}</b> ${esc(f.deviceId)}: ${esc(f.detail)}</li>`)
    .join('');
  const series = report.series;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>offline-detector run report</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:800px;color:#222}
h1{font-size:22px}h2{font-size:16px;margin-top:28px}table{border-collapse:collapse}
td{padding:3px 10px;border-bottom:1px solid #eee;vertical-align:top}td:first-child{color:#555;white-space:nowrap}
svg{font-size:11px;font-family:inherit;background:#fff}.ok{color:#17803d}.bad{color:#c0262d}.note{color:#666}
</style></head><body>
<h1>offline-detector run: <span class="${ok ? 'ok' : 'bad'}">${ok ? 'no false or missed offline' : `${s.falseOffline} false, ${s.missedOffline} missed offline, ${s.wrongCause} wrong cause, ${s.falseIncidents} false incidents`}</span></h1>
<p class="note">Started ${esc(new Date(report.startedAt).toISOString())}${report.interrupted ? ' — interrupted before the end' : ''}.
Every event received through the SNS topics was judged against the simulated fleet's truth, by message entry time;
a silence counts as missed only when a sweep whose cutoff passed the device's deadline completed without reporting it.</p>
<table>${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('')}</table>
${findings ? `<h2>Findings</h2><ul>${findings}</ul>` : ''}
<h2>Devices online and offline (as the events tell)</h2>
${lineChart(
  [
    { label: 'online', color: '#17803d', points: series.map((p) => [p.t, p.online]) },
    { label: 'offline', color: '#c0262d', points: series.map((p) => [p.t, p.offline]) },
  ],
  xMax,
  (y) => Math.round(y).toLocaleString('en-US'),
  stallShade + disconnectShade + windowShade,
)}
<p class="note">Red band: our own ingest stalled (no device may be declared offline for it). Blue band: mass disconnect or gateway outage. Green band: maintenance window.</p>
<h2>Messages and events per second</h2>
${lineChart(
  [
    { label: 'messages/s', color: '#3b6fd8', points: series.map((p) => [p.t, p.messagesPerSecond]) },
    { label: 'events/s', color: '#d8873b', points: series.map((p) => [p.t, p.eventsPerSecond]) },
  ],
  xMax,
  (y) => Math.round(y).toLocaleString('en-US'),
  stallShade + disconnectShade,
)}
<h2>Transitions per minute</h2>
${barChart(
  report.transitionsPerMinute.map((m) => ({ label: `${m.minute}`, values: [m.offline, m.online] })),
  ['#c0262d', '#17803d'],
  ['offline', 'online'],
)}
<p class="note">By minute of detection since the start.</p>
<h2>Detection lateness</h2>
${barChart(histogram(report.lateness), ['#7a4fd8'], ['offline events'])}
<p class="note">detectedAt − (last message's entry time + timeout): includes the type's precision and the sweep tick. Detections our own stall deferred (${s.stallDeferred}) are not in it.</p>
<h2>Watermark and sweep lag</h2>
${lineChart(
  [
    {
      label: 'watermark lag',
      color: '#3b6fd8',
      points: series.map((p) => [p.t, p.watermarkLagMs === undefined ? undefined : p.watermarkLagMs / 1000]),
    },
    {
      label: 'sweep lag (now − cutoff)',
      color: '#c0262d',
      points: series.map((p) => [p.t, p.sweepLagMs === undefined ? undefined : p.sweepLagMs / 1000]),
    },
  ],
  xMax,
  (y) => `${y.toFixed(0)} s`,
  stallShade,
)}
<p class="note">While ingest stalls, the watermark stops and the sweep cutoff stays behind the clock: nobody is judged on messages still waiting in our queue.</p>
<h2>Settings</h2><pre>${esc(JSON.stringify(report.settings, null, 2))}</pre>
<h2>Summary (JSON)</h2><pre>${esc(JSON.stringify({ ...s, findings: undefined }, null, 2))}</pre>
</body></html>
`;
}

export function writeReport(report: RunReport, dir = 'reports'): string {
  mkdirSync(dir, { recursive: true });
  const stamp = new Date(report.startedAt).toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const path = resolve(join(dir, `run-${report.mode}-${stamp}-${Math.random().toString(36).slice(2, 6)}.html`));
  writeFileSync(path, renderReport(report));
  return path;
}
