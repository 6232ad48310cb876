import { type DeviceState, keptForMuteUntil } from './device.js';
import { settlesAt } from './flap.js';
import type { Policy } from './policy.js';
import type { Tags } from './tags.js';

/** What this container last knew of a device's stored state. Never trusted for correctness on its own: every
 * write that relies on it carries a condition that fails when it is stale. */
export interface CachedDevice {
  /** Newest `lastSeen` known to be stored. */
  lastSeen: number;
  /** Newest message time this container saw, written or not (to estimate the device's interval). */
  lastMessageAt: number;
  deadline?: number;
  policy: Policy;
  deviceType: string;
  hasOverride: boolean;
  online: boolean;
  /** While it flaps: when it settles, which bounds its deadline (flap.ts). */
  settlesAt?: number;
  /** While muted: until when the item must be kept (device.ts `keptForMuteUntil`), which a write's `expiresAt` must
   * not cut short. */
  keepUntil?: number;
  /** The stored tags: a message carrying others is written, not coalesced. */
  tags?: Tags;
}

/** Bounded least-recently-used map; a Map keeps insertion order, so re-inserting on use makes it an LRU. */
export class DeviceCache {
  private readonly entries = new Map<string, CachedDevice>();

  constructor(readonly capacity: number) {}

  get(deviceId: string): CachedDevice | undefined {
    const entry = this.entries.get(deviceId);
    if (entry) {
      this.entries.delete(deviceId);
      this.entries.set(deviceId, entry);
    }
    return entry;
  }

  set(deviceId: string, entry: CachedDevice): void {
    if (this.capacity === 0) return;
    this.entries.delete(deviceId);
    this.entries.set(deviceId, entry);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  remember(state: DeviceState, lastMessageAt: number): void {
    this.set(state.deviceId, {
      lastSeen: state.lastSeen,
      lastMessageAt: Math.max(lastMessageAt, state.lastSeen),
      deadline: state.deadline,
      policy: { timeoutMs: state.timeoutMs, precisionMs: state.precisionMs },
      deviceType: state.deviceType,
      hasOverride: state.override !== undefined,
      online: state.status === 'ONLINE',
      settlesAt: settlesAt(state),
      keepUntil: keptForMuteUntil(state),
      tags: state.tags,
    });
  }

  get size(): number {
    return this.entries.size;
  }
}
