// `npm run simulate` as a user runs it: the real CLI in virtual time on a small fleet (silences, a mass disconnect
// and a 4-minute ingest stall over 20 virtual minutes). No false and no missed offline, a report, no engine left.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';

const reportDir = mkdtempSync(join(tmpdir(), 'od-simulate-'));
afterAll(() => rmSync(reportDir, { recursive: true, force: true }));

it.each(['per-device', 'batched'])(
  'simulates 20 virtual minutes of 300 devices with no false or missed offline (%s engine)',
  (engine) => {
    const run = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'local/main.ts',
        'simulate',
        '--devices',
        '300',
        '--duration',
        '20m',
        '--engine',
        engine,
        '--json',
        '--report-dir',
        reportDir,
      ],
      // Twice what it takes on an idle 2-CPU machine: the suite must also pass on a busy one.
      { encoding: 'utf8', timeout: 170_000 },
    );
    expect(run.status, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
    expect(summary).toMatchObject({ devices: 300, falseOffline: 0, missedOffline: 0, mode: 'virtual', engine });
    expect(summary.requiredDetections).toBeGreaterThan(10);
    // Ingest and sweep take turns in virtual time, and nothing fails: every event is published and received once.
    expect({ duplicates: summary.duplicateEvents, by: summary.duplicatesBy }).toEqual({ duplicates: 0, by: {} });
    expect(summary.stallDeferred).toBeGreaterThan(0);
    expect(summary.latenessByType.tracker.p99).toBeLessThanOrEqual(10_000 + 5_000);
    expect(existsSync(summary.reportPath)).toBe(true);
    for (const pid of summary.enginePids) expect(() => process.kill(pid, 0)).toThrow();
  },
  180_000,
);
