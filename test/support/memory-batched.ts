// In-memory models of the batched engine's two stores (shard logs and shard states), with the semantics the
// DynamoDB adapters give: appends stamped by the writer's clock, reads of what was stamped after a bound, and
// versioned saves that apply only at the expected version.
import type { ShardEntry } from '../../lambdas/core/batched.js';
import type {
  LogRead,
  ShardChange,
  ShardStateStore,
  Sighting,
  SightingLog,
  StoredShard,
} from '../../lambdas/core/ports.js';

interface LogRecord {
  shard: string;
  stamp: number;
  sightings: Sighting[];
  notes: string[];
}

export class MemorySightingLog implements SightingLog {
  readonly records: LogRecord[] = [];

  constructor(private readonly now: () => number) {}

  async append(shard: string, record: { sightings?: Sighting[]; notes?: string[] }) {
    this.records.push({
      shard,
      stamp: this.now(),
      sightings: structuredClone(record.sightings ?? []),
      notes: [...(record.notes ?? [])],
    });
    return {};
  }

  async read(shard: string, after: number): Promise<LogRead> {
    const records = this.records.filter((r) => r.shard === shard && r.stamp > after);
    return {
      sightings: records.flatMap((r) => structuredClone(r.sightings)),
      notes: [...new Set(records.flatMap((r) => r.notes))],
    };
  }
}

interface StoredState {
  version: number;
  position: number;
  checkpoint: Map<string, ShardEntry>;
  journals: Map<string, ShardEntry | undefined>[];
}

export class MemoryShardStates implements ShardStateStore<ShardEntry> {
  readonly shards = new Map<string, StoredState>();
  readonly counts = { loads: 0, journals: 0, checkpoints: 0, conflicts: 0 };

  async version(shard: string): Promise<number> {
    return this.shards.get(shard)?.version ?? 0;
  }

  async load(shard: string): Promise<StoredShard<ShardEntry> | undefined> {
    const stored = this.shards.get(shard);
    if (!stored) return undefined;
    this.counts.loads++;
    const entries = structuredClone(stored.checkpoint);
    for (const journal of stored.journals) {
      for (const [deviceId, entry] of journal) {
        if (entry) entries.set(deviceId, structuredClone(entry));
        else entries.delete(deviceId);
      }
    }
    return { version: stored.version, position: stored.position, entries, journals: stored.journals.length };
  }

  async save(shard: string, expectVersion: number, change: ShardChange<ShardEntry>): Promise<boolean> {
    const stored: StoredState = this.shards.get(shard) ?? {
      version: 0,
      position: Number.NEGATIVE_INFINITY,
      checkpoint: new Map(),
      journals: [],
    };
    if (stored.version !== expectVersion) {
      this.counts.conflicts++;
      return false;
    }
    if ('journal' in change) {
      stored.journals.push(structuredClone(change.journal));
      this.counts.journals++;
    } else {
      stored.checkpoint = structuredClone(change.checkpoint);
      stored.position = change.position;
      stored.journals = [];
      this.counts.checkpoints++;
    }
    stored.version++;
    this.shards.set(shard, stored);
    return true;
  }
}
