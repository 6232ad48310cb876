// Per-type online/offline counts, moved by the commits that change a device's status or type (see COUNTER in
// table-schema.ts for how they are stored).
import type { CommitRequest, Expectation } from './ports.js';
import { STATUS, type Status } from './table-schema.js';

export interface CountDelta {
  deviceType: string;
  online: number;
  offline: number;
}

type Counted = { status: Status; deviceType: string } | undefined;

/** How a device moving from `before` to `after` changes the counts; absent and retired devices count nowhere. */
export function countDeltas(before: Counted, after: Counted): CountDelta[] {
  const deltas = new Map<string, CountDelta>();
  const add = (side: Counted, sign: number) => {
    if (!side || side.status === STATUS.retired) return;
    const delta = deltas.get(side.deviceType) ?? { deviceType: side.deviceType, online: 0, offline: 0 };
    if (side.status === STATUS.online) delta.online += sign;
    else delta.offline += sign;
    deltas.set(side.deviceType, delta);
  };
  add(before, -1);
  add(after, 1);
  return [...deltas.values()].filter((d) => d.online !== 0 || d.offline !== 0);
}

/** The count change of a commit. The core states the stored type in the expectation whenever it knows it; an
 * expectation without one means the type does not change. */
export function commitDeltas(request: Pick<CommitRequest, 'expect' | 'state'>): CountDelta[] {
  const { expect, state } = request;
  const before = beforeOf(expect, state.deviceType);
  return countDeltas(before, { status: state.status, deviceType: state.deviceType });
}

function beforeOf(expect: Expectation, deviceType: string): Counted {
  if ('absent' in expect) return undefined;
  return { status: expect.status, deviceType: expect.deviceType ?? deviceType };
}
