// What a run shows while it runs: a live status line on a terminal (a line every 10 s otherwise), and compact
// transition lines, sampled when there are many. Everything goes to stderr, so `--json` keeps stdout to one line.
import type { DeviceEvent } from '../lambdas/core/device.js';
import type { FleetEvent } from '../lambdas/core/outage.js';
import type { SeriesPoint } from './report.js';
import type { EventNote } from './truth.js';

/** What the status line shows: the report's sample of the moment, plus the run's progress. */
export interface Status extends Omit<SeriesPoint, 't'> {
  elapsedMs: number;
  totalMs: number;
  note?: string;
}

/** A time of the run, `m:ss` from its start. */
export const clock = (ms: number) => {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};
const seconds = (ms: number | undefined) => (ms === undefined ? '—' : `${(ms / 1000).toFixed(1)} s`);
const n = (x: number) => Math.round(x).toLocaleString('en-US');

/** A fleet event received, for a milestone line: `fleet.outage for site-1 (count 212, incident 3f2a9c1e)`. */
export function fleetLine(event: FleetEvent): string {
  const incident = `incident ${event.incidentId.slice(0, 8)}`;
  return event.type === 'fleet.outage'
    ? `fleet.outage for ${event.group} (count ${event.count}, ${incident}): its offline events follow, marked cause outage`
    : `fleet.recovered for ${event.group} (${event.count} still offline, ${incident})`;
}

/** Whether an event received on the offline topic is a fleet event (it has no device). */
export function isFleetEvent(event: DeviceEvent | FleetEvent): event is FleetEvent {
  return event.type === 'fleet.outage' || event.type === 'fleet.recovered';
}

export class RunConsole {
  private readonly tty: boolean;
  private statusShown = false;
  private lastPlainStatus = 0;
  private printedThisSecond = 0;
  private second = 0;
  private suppressed = 0;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly maxLinesPerSecond = 4,
    private readonly quiet = false,
  ) {
    this.tty = Boolean(out.isTTY) && !quiet;
  }

  line(text: string): void {
    if (this.quiet) return;
    this.clearStatus();
    this.out.write(`${text}\n`);
  }

  /** Something the scenario or the runtime did: `  1:05 ── text ──`. */
  milestone(elapsedMs: number, text: string): void {
    this.line(`  ${clock(elapsedMs).padStart(5)} ── ${text} ──`);
  }

  transition(event: DeviceEvent, elapsedMs: number, startedAt: number, note?: EventNote): void {
    if (this.quiet) return;
    const second = Math.floor(elapsedMs / 1000);
    if (second !== this.second) {
      if (this.suppressed > 0) this.line(`       … ${n(this.suppressed)} more transitions`);
      this.second = second;
      this.printedThisSecond = 0;
      this.suppressed = 0;
    }
    if (this.printedThisSecond >= this.maxLinesPerSecond) {
      this.suppressed++;
      return;
    }
    this.printedThisSecond++;
    const detail =
      event.type === 'device.offline'
        ? `silent since ${clock(event.lastSeen - startedAt)}, offline at ${clock(event.since - startedAt)}, detected +${seconds(event.detectedAt - event.since)}`
        : `back at ${clock(event.since - startedAt)}`;
    const label = event.type === 'device.offline' ? 'OFFLINE' : event.type === 'device.online' ? 'ONLINE ' : 'FLAPPING';
    const why =
      note?.kind === 'held'
        ? `held by maintenance, reported at its end (${clock(note.until - startedAt)})`
        : note?.kind === 'behind-gateway'
          ? `cause: its gateway ${note.parentId} is offline`
          : note?.kind === 'reported-again'
            ? 'still silent after its gateway came back: reported again, no cause'
            : note?.kind === 'outage'
              ? `cause: outage, incident ${note.incidentId.slice(0, 8)}`
              : undefined;
    this.line(
      `  ${clock(elapsedMs).padStart(5)} ${label} ${event.deviceId.padEnd(14)} ${detail}${why ? ` │ ${why}` : ''}`,
    );
  }

  status(status: Status): void {
    if (this.quiet) return;
    const text =
      `${clock(status.elapsedMs)}/${clock(status.totalMs)} │ online ${n(status.online)} offline ${n(status.offline)}` +
      ` │ ${n(status.messagesPerSecond)} msg/s │ ${n(status.eventsPerSecond)} events/s` +
      ` │ watermark lag ${seconds(status.watermarkLagMs)} │ sweep lag ${seconds(status.sweepLagMs)}` +
      (status.note ? ` │ ${status.note}` : '');
    if (this.tty) {
      this.out.write(`\r\x1b[2K${text.slice(0, (this.out.columns ?? 160) - 1)}`);
      this.statusShown = true;
    } else if (status.elapsedMs - this.lastPlainStatus >= 10_000) {
      this.lastPlainStatus = status.elapsedMs;
      this.out.write(`  status ${text}\n`);
    }
  }

  clearStatus(): void {
    if (this.statusShown) {
      this.out.write('\r\x1b[2K');
      this.statusShown = false;
    }
  }
}
