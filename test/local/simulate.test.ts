// `npm run simulate` as a user runs it: the real CLI in virtual time on a small fleet (silences, a mass disconnect
// and a 4-minute ingest stall over 20 virtual minutes; sites, gateways and maintenance in the groups scenario; one
// incident for a mass outage in the outage scenario). No false and no missed offline, no wrong cause, a report, no
// engine left.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';

const reportDir = mkdtempSync(join(tmpdir(), 'od-simulate-'));
afterAll(() => rmSync(reportDir, { recursive: true, force: true }));

/** `npm run simulate -- <args> --json`: its exit code must be 0; its JSON summary. */
function simulate(args: string[], timeout: number) {
  const run = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'local/main.ts', 'simulate', ...args, '--json', '--report-dir', reportDir],
    { encoding: 'utf8', timeout },
  );
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout.trim().split('\n').at(-1)!);
}

it.each(['per-device', 'batched'])(
  'simulates 20 virtual minutes of 300 devices with no false or missed offline (%s engine)',
  (engine) => {
    // Twice what it takes on an idle 2-CPU machine: the suite must also pass on a busy one.
    const summary = simulate(['--devices', '300', '--duration', '20m', '--engine', engine], 170_000);
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

it.each(['per-device', 'batched'])(
  'simulates a maintenance window and a gateway outage with no false, missed or duplicate event and no wrong cause (%s engine)',
  (engine) => {
    const summary = simulate(['--scenario', 'groups', '--devices', '400', '--engine', engine], 110_000);
    expect(summary).toMatchObject({
      devices: 404, // and the four gateways
      falseOffline: 0,
      missedOffline: 0,
      wrongCause: 0,
      duplicateEvents: 0,
      // The window's end schedule, kept in the table, fired at the dispatcher in virtual time.
      maintenanceEdgesFired: 1,
    });
    // Devices of site-0 went offline within the window and were reported at its end; the devices behind gw-1 were
    // reported with cause parent-offline, the stragglers again without it once gw-1 was back.
    expect(summary.heldByMaintenance).toBeGreaterThan(10);
    expect(summary.behindGateway).toBeGreaterThan(10);
    expect(summary.reportedAgain).toBeGreaterThan(0);
    for (const pid of summary.enginePids) expect(() => process.kill(pid, 0)).toThrow();
  },
  120_000,
);

it.each(['per-device', 'batched'])(
  'simulates a mass outage of one site as one incident, its offline events held and marked (%s engine)',
  (engine) => {
    const summary = simulate(['--scenario', 'outage', '--engine', engine], 110_000);
    expect(summary).toMatchObject({
      devices: 600,
      falseOffline: 0,
      missedOffline: 0,
      wrongCause: 0,
      duplicateEvents: 0,
      falseIncidents: 0,
      // One fleet.outage, for the site cut off, and its recovery once the site is back.
      fleetOutages: 1,
      fleetRecovered: 1,
    });
    const [incident] = summary.incidents;
    expect(incident).toMatchObject({ group: 'site-1' });
    expect(incident.count).toBeGreaterThanOrEqual(50);
    // The site is back at 210 s: the recovery is announced by the next evaluations.
    expect(incident.recoveredAt - summary.startedAt).toBeGreaterThan(210_000);
    // The site's offline events came out marked with the incident; held 90 s, they are not later for it.
    expect(summary.markedOutage).toBeGreaterThan(50);
    expect(incident.marked).toBe(summary.markedOutage);
    expect(summary.latenessByType.tracker.p99).toBeLessThanOrEqual(5_000 + 10_000);
    for (const pid of summary.enginePids) expect(() => process.kill(pid, 0)).toThrow();
  },
  120_000,
);
