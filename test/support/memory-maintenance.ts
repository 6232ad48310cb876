// The maintenance windows' item and schedules in memory, with the DynamoDB adapter's versioned writes.
import {
  type MaintenanceStore,
  type MaintenanceWindow,
  type WindowEdge,
  type WindowSchedules,
  windowEdges,
} from '../../lambdas/core/maintenance.js';

export class MemoryMaintenanceStore implements MaintenanceStore {
  windows: MaintenanceWindow[] = [];
  version = 0;
  reads = 0;

  async read() {
    this.reads++;
    return { windows: structuredClone(this.windows), version: this.version };
  }

  async write(windows: MaintenanceWindow[], version: number) {
    if (version !== this.version) return false;
    this.windows = structuredClone(windows);
    this.version++;
    return true;
  }
}

/** Records the schedules a window would have: what fires when. */
export class RecordedSchedules implements WindowSchedules {
  readonly pending = new Map<string, Array<{ at: number; edge: WindowEdge }>>();

  async create(window: MaintenanceWindow, now: number) {
    this.pending.set(window.id, windowEdges(window, now));
  }

  async remove(windowId: string) {
    this.pending.delete(windowId);
  }

  /** The edges due by `t`, taken off (a one-time schedule deletes itself once it fired). */
  due(t: number): WindowEdge[] {
    const due: WindowEdge[] = [];
    for (const [id, edges] of this.pending) {
      due.push(...edges.filter((e) => e.at <= t).map((e) => e.edge));
      const left = edges.filter((e) => e.at > t);
      if (left.length > 0) this.pending.set(id, left);
      else this.pending.delete(id);
    }
    return due;
  }
}
