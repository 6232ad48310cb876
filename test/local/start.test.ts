// `npm start` end to end, as a user runs it: the real CLI as a child process, on its own engines, with the quick
// scenario (a mass disconnect, a maintenance window and a stall of our own ingest). Its JSON summary must show no
// false and no missed offline, its report must exist, and no engine process may outlive it (also when stopped with
// Ctrl-C). A miss is judged against the sweeps that completed (sim/truth.ts), so a busy machine makes detection late,
// not missed: the test holds with other work on every core. `npm run local` fires the schedules of a maintenance
// window the CLI adds by hand.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { main as offlineDetector } from '../../bin/cli.js';

const reportDir = mkdtempSync(join(tmpdir(), 'od-start-'));
afterAll(() => rmSync(reportDir, { recursive: true, force: true }));

function cli(args: string[]): {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', 'local/main.ts', ...args, '--report-dir', reportDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FORCE_COLOR: '0' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => {
    stdout += d;
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exit };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** `npm start` on the quick scenario: exits 0 with no false and no missed offline; its JSON summary. */
async function quickRun(...args: string[]) {
  const run = cli(['start', '--scenario', 'quick', '--json', '--seed', '3', ...args]);
  const code = await run.exit;
  const summary = JSON.parse(run.stdout().trim().split('\n').at(-1)!);
  expect({ code, falseOffline: summary.falseOffline, missedOffline: summary.missedOffline }, run.stderr()).toEqual({
    code: 0,
    falseOffline: 0,
    missedOffline: 0,
  });
  return summary;
}

it('runs the quick scenario with no false or missed offline, writes the report, leaves no engine behind', async () => {
  const summary = await quickRun();
  for (const key of ['devices', 'messages', 'offlineEvents', 'onlineEvents', 'duplicateEvents', 'wruPerMessage']) {
    expect(summary).toHaveProperty(key);
  }
  expect(summary.devices).toBe(200);
  // The disconnect made detections due (completed sweeps passed the silent devices' deadlines).
  expect(summary.requiredDetections).toBeGreaterThan(10);
  expect(summary.sweepsCompleted).toBeGreaterThan(0);
  // The devices of site-0 that went offline within the maintenance window were held and reported at its end, which
  // the runtime's local scheduler fired at the dispatcher.
  expect(summary.heldByMaintenance).toBeGreaterThan(0);
  expect({ fired: summary.maintenanceEdgesFired, failed: summary.maintenanceEdgesFailed }).toEqual({
    fired: 1,
    failed: 0,
  });
  // No fault is injected (the stall only holds the cutoff, a busy machine only slows things down): every event is
  // published and received once. A duplicate names its publishers (issue 10 #11 was "sweep+ingest": a device back
  // between the sweep's commit and its clear; now one publisher per outbox).
  expect({ duplicates: summary.duplicateEvents, by: summary.duplicatesBy }).toEqual({ duplicates: 0, by: {} });
  expect(existsSync(summary.reportPath)).toBe(true);
  expect(readFileSync(summary.reportPath, 'utf8')).toContain('<svg');
  expect(summary.enginePids.length).toBeGreaterThan(0);
  for (const pid of summary.enginePids) expect(alive(pid)).toBe(false);
}, 180_000);

it('runs the quick scenario on the batched engine with no false, missed or duplicate event', async () => {
  const summary = await quickRun('--engine', 'batched');
  expect(summary.requiredDetections).toBeGreaterThan(10);
  expect(summary.onlineEvents).toBeGreaterThan(200); // every device registered, the disconnected ones came back
  expect({ duplicates: summary.duplicateEvents, by: summary.duplicatesBy }).toEqual({ duplicates: 0, by: {} });
}, 180_000);

it('stops cleanly on SIGINT: exit code 130, DynamoDB Local gone', async () => {
  const run = cli(['start', '--scenario', 'quick', '--duration', '60s']);
  const pids = await new Promise<number[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`engines not up:\n${run.stderr()}`)), 60_000);
    const check = () => {
      const match = /child process ids: ([\d, ]+)\)/.exec(run.stderr());
      if (match && run.stderr().includes('ONLINE')) {
        clearTimeout(timer);
        resolve(match[1]!.split(',').map((p) => Number(p.trim())));
      } else setTimeout(check, 100);
    };
    check();
  });
  expect(pids.every(alive)).toBe(true);
  run.child.kill('SIGINT');
  expect(await run.exit).toBe(130);
  for (const pid of pids) expect(alive(pid)).toBe(false);
}, 90_000);

it('npm run local fires the schedule of a maintenance window the CLI adds to its table', async () => {
  const run = cli(['local']);
  try {
    const endpoint = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no endpoints printed:\n${run.stderr()}`)), 60_000);
      const check = () => {
        const match = /DynamoDB\s+(http:\/\/127\.0\.0\.1:\d+)\s+table/.exec(run.stderr());
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        } else setTimeout(check, 100);
      };
      check();
    });
    const target = ['--endpoint', endpoint, '--table', 'offline-detector-devices'];
    const printed: string[] = [];
    const print = (line: string) => printed.push(line);
    expect(await offlineDetector(['maintenance', 'add', '--all', '--for', '2s', ...target], print)).toBe(0);
    const { id } = JSON.parse(printed.join('\n')) as { id: string };
    // Fired by the runtime's scheduler (every second), the dispatcher removing the window at its end.
    await expect
      .poll(() => run.stderr(), { timeout: 30_000, interval: 200 })
      .toContain(`maintenance window ${id}: end (its schedule fired)`);
    printed.length = 0;
    expect(await offlineDetector(['maintenance', 'list', ...target], print)).toBe(0);
    expect(JSON.parse(printed.join('\n'))).toEqual({ windows: [] });
  } finally {
    run.child.kill('SIGINT');
    await run.exit;
  }
}, 120_000);
