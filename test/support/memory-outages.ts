// The outage incidents' item in memory (the DynamoDB adapter's versioned writes) and a fleet-event log.
import type { FleetEvent, FleetEventPublisher, Incident, OutageStore } from '../../lambdas/core/outage.js';

export class MemoryOutageStore implements OutageStore {
  incidents: Incident[] = [];
  version = 0;

  async read() {
    return { incidents: structuredClone(this.incidents), version: this.version };
  }

  async write(incidents: Incident[], version: number) {
    if (version !== this.version) return false;
    this.incidents = structuredClone(incidents);
    this.version++;
    return true;
  }
}

export class FleetLog implements FleetEventPublisher {
  readonly events: FleetEvent[] = [];
  async publishFleet(events: FleetEvent[]) {
    this.events.push(...structuredClone(events));
    return { failed: [] };
  }
}
