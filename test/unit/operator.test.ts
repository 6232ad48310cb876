// Operator features through the real ingest and sweep cores on the in-memory table, with an injected clock: the
// events that come out are exactly the expected ones. (test/integration/api.test.ts runs the API on DynamoDB Local.)
import { describe, expect, it, vi } from 'vitest';
import {
  type AdminDeps,
  forget,
  getDevice,
  listOffline,
  mute,
  setPolicy,
  stats,
  unmute,
} from '../../lambdas/core/admin.js';
import { type ApiDeps, handleApi, StatsCache } from '../../lambdas/core/api.js';
import { type Harness, harness, T0, TYPES, total } from '../support/sweep-harness.js';

const TRACKER = TYPES.tracker.timeoutMs;

function admin(h: Harness): AdminDeps {
  return {
    store: h.store,
    deviceTypes: h.config.deviceTypes,
    housekeepingTtlMs: 30 * 86_400_000,
    now: () => h.clock.t,
  };
}

/** Sweeps every shard at `t` (the cutoff is the clock: no watermark partitions). */
async function sweepAt(h: Harness, t: number) {
  h.clock.t = t;
  await h.sweepAll();
}

const summary = (h: Harness, deviceId: string) =>
  h.events.of(deviceId).map((e) => [e.type, e.seq, e.since - T0, e.detectedAt - T0] as const);

describe('per-device policy override', () => {
  it('a shorter timeout moves the deadline earlier at once: offline by the override at the next sweep', async () => {
    const h = harness();
    await h.send(['d'], T0, 'tracker');
    h.clock.t = T0 + 10_000;
    const view = await setPolicy(admin(h), 'd', { timeoutMs: 30_000, precisionMs: 0 });
    expect(view).toMatchObject({ timeoutMs: 30_000, precisionMs: 0, override: { timeoutMs: 30_000, precisionMs: 0 } });
    expect(h.store.items.get('d')!.deadline).toBe(T0 + 30_000);
    await sweepAt(h, T0 + 29_999);
    expect(h.events.of('d', 'device.offline')).toEqual([]);
    await sweepAt(h, T0 + 30_000);
    expect(summary(h, 'd')).toEqual([
      ['device.online', 1, 0, 0],
      ['device.offline', 2, 30_000, 30_000],
    ]);
    expect(h.events.of('d', 'device.offline')[0]!.timeoutMs).toBe(30_000);
  });

  it('a longer timeout leaves the (earlier) deadline to the sweep, which re-arms it; later messages keep it', async () => {
    const h = harness();
    await h.send(['d'], T0, 'tracker');
    await setPolicy(admin(h), 'd', { timeoutMs: 300_000, precisionMs: 0 });
    expect(h.store.items.get('d')!.deadline).toBe(T0 + TRACKER); // earlier than needed is allowed, never later
    await sweepAt(h, T0 + TRACKER);
    expect(h.store.items.get('d')!.deadline).toBe(T0 + 300_000);
    h.freshCache();
    await h.send(['d'], T0 + 100_000, 'tracker'); // the override survives the message (the touch allows it)
    await sweepAt(h, T0 + 300_000);
    await sweepAt(h, T0 + 399_999);
    expect(h.events.of('d', 'device.offline')).toEqual([]);
    await sweepAt(h, T0 + 400_000);
    expect(summary(h, 'd')).toEqual([
      ['device.online', 1, 0, 0],
      ['device.offline', 2, 400_000, 400_000],
    ]);
  });

  it('removing the override returns to the type policy, also for the next online transition', async () => {
    const h = harness();
    await h.send(['d'], T0, 'tracker');
    await setPolicy(admin(h), 'd', { timeoutMs: 20_000, precisionMs: 0 });
    await sweepAt(h, T0 + 20_000);
    const back = T0 + 50_000;
    h.clock.t = back;
    await h.send(['d'], back, 'tracker');
    expect(h.store.items.get('d')).toMatchObject({ status: 'ONLINE', timeoutMs: 20_000, deadline: back + 20_000 });
    const view = await setPolicy(admin(h), 'd', undefined);
    expect(view).toMatchObject({ timeoutMs: TRACKER });
    expect(view.override).toBeUndefined();
    await sweepAt(h, back + 20_000); // the old deadline: re-armed by the type policy, no event
    await sweepAt(h, back + TRACKER);
    expect(summary(h, 'd')).toEqual([
      ['device.online', 1, 0, 0],
      ['device.offline', 2, 20_000, 20_000],
      ['device.online', 3, 50_000, 50_000],
      ['device.offline', 4, 50_000 + TRACKER, 50_000 + TRACKER],
    ]);
  });
});

describe('mute', () => {
  it('holds the offline event of a device silent during the mute and reports it once when the mute ends', async () => {
    const h = harness();
    await h.send(['d'], T0, 'tracker');
    const until = T0 + 200_000;
    expect(await mute(admin(h), 'd', until)).toMatchObject({ mutedUntil: until, status: 'ONLINE' });
    for (const t of [T0 + TRACKER, T0 + 150_000, until - 1]) await sweepAt(h, t);
    expect(h.events.of('d', 'device.offline')).toEqual([]);
    expect(h.store.items.get('d')).toMatchObject({ status: 'ONLINE', deadline: until });
    await sweepAt(h, until);
    await sweepAt(h, until + 60_000);
    expect(summary(h, 'd')).toEqual([
      ['device.online', 1, 0, 0],
      ['device.offline', 2, TRACKER, 200_000], // since: when it really went silent; detected when the mute ended
    ]);
  });

  it('a device that comes back during the mute produces no events at all', async () => {
    const h = harness();
    await h.send(['d'], T0, 'tracker');
    await mute(admin(h), 'd', T0 + 200_000);
    await sweepAt(h, T0 + 120_000);
    h.freshCache();
    await h.send(['d'], T0 + 150_000, 'tracker');
    await sweepAt(h, T0 + 200_000);
    await sweepAt(h, T0 + 150_000 + TRACKER - 1);
    expect(summary(h, 'd')).toEqual([['device.online', 1, 0, 0]]);
    await sweepAt(h, T0 + 150_000 + TRACKER); // muted no more: silence is reported as usual
    expect(h.events.of('d').map((e) => e.type)).toEqual(['device.online', 'device.offline']);
  });

  it('unmute reports a still-silent device at the next sweep; online events are never muted', async () => {
    const h = harness();
    await h.send(['d'], T0, 'tracker');
    await mute(admin(h), 'd', T0 + 3_600_000);
    await sweepAt(h, T0 + 120_000);
    h.clock.t = T0 + 130_000;
    const view = await unmute(admin(h), 'd');
    expect(view.mutedUntil).toBeUndefined();
    await sweepAt(h, T0 + 130_000);
    expect(summary(h, 'd')).toEqual([
      ['device.online', 1, 0, 0],
      ['device.offline', 2, TRACKER, 130_000],
    ]);
    await mute(admin(h), 'd', T0 + 3_600_000);
    await h.send(['d'], T0 + 140_000, 'tracker');
    expect(h.events.of('d').map((e) => e.type)).toEqual(['device.online', 'device.offline', 'device.online']);
  });
});

describe('decommission', () => {
  it('leaves every index, produces no events, and a later message registers a new device with fresh event ids', async () => {
    const h = harness();
    await h.send(['d', 'other'], T0, 'tracker');
    await sweepAt(h, T0 + TRACKER); // both offline: d#2
    await h.send(['d'], T0 + 100_000, 'tracker'); // d#3 online
    h.clock.t = T0 + 110_000;
    await forget(admin(h), 'd');
    const item = h.store.items.get('d')!;
    expect(item).toMatchObject({ status: 'RETIRED', seq: 3, lastSeen: T0 + 110_000 });
    for (const key of ['shard', 'deadline', 'offlineShard', 'offlineKey'] as const) expect(item[key]).toBeUndefined();
    await expect(getDevice(admin(h), 'd')).rejects.toMatchObject({ code: 'not-found', status: 404 });
    expect((await stats(admin(h))).deviceTypes.tracker).toEqual({ online: 0, offline: 1 });

    await sweepAt(h, T0 + 100_000 + TRACKER);
    h.freshCache();
    await h.send(['d'], T0 + 105_000, 'tracker'); // entered before the decommission: stale, nothing happens
    expect(h.events.of('d').map((e) => e.eventId)).toEqual(['d#1', 'd#2', 'd#3']);

    const again = T0 + 500_000;
    await h.send(['d'], again, 'tracker');
    await sweepAt(h, again + TRACKER);
    expect(h.events.of('d').map((e) => [e.eventId, e.type])).toEqual([
      ['d#1', 'device.online'],
      ['d#2', 'device.offline'],
      ['d#3', 'device.online'],
      ['d#4', 'device.online'], // the new device: its ids continue rather than repeat d#1..
      ['d#5', 'device.offline'],
    ]);
    expect(h.events.of('d', 'device.online')[2]).toMatchObject({ since: again });
    expect((await stats(admin(h))).deviceTypes.tracker).toEqual({ online: 0, offline: 2 });
  });
});

describe('queries', () => {
  it('lists offline devices newest first over pages, per type or all, and counts per type', async () => {
    const h = harness();
    const trackers = Array.from({ length: 7 }, (_, i) => `t${i}`);
    for (const [i, id] of trackers.entries()) await h.send([id], T0 + i * 1000, 'tracker');
    await h.send(['m0', 'm1'], T0, 'meter');
    await h.send(['alive'], T0 + 500_000, 'tracker');
    await sweepAt(h, T0 + 500_000);
    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await listOffline(admin(h), { limit: 3, ...(cursor ? { cursor } : {}) });
      pages.push(page.devices.map((d) => d.deviceId));
      cursor = page.cursor;
    } while (cursor);
    expect(pages.flat()).toEqual(['m1', 'm0', 't6', 't5', 't4', 't3', 't2', 't1', 't0'].sort(bySinceThenId(h)));
    expect(pages.map((p) => p.length)).toEqual([3, 3, 3]);
    const meters = await listOffline(admin(h), { deviceType: 'meter', limit: 10 });
    expect(meters.devices.map((d) => d.deviceId).sort()).toEqual(['m0', 'm1']);
    expect(meters.cursor).toBeUndefined();
    expect(await stats(admin(h))).toEqual({
      deviceTypes: { tracker: { online: 1, offline: 7 }, meter: { online: 0, offline: 2 } },
      total: { online: 1, offline: 9 },
      asOf: h.clock.t,
    });
  });
});

describe('GET /stats cache (issue 14: a loop of calls must not read the whole fleet each time)', () => {
  it('answers from the counts read last for the cache time, says when they were read, then reads again', async () => {
    const h = harness();
    await h.send(['a', 'b'], T0, 'tracker');
    const reads = vi.spyOn(h.store, 'counts');
    const deps: ApiDeps = { ...admin(h), statsCache: new StatsCache(60_000) };
    const call = async () => (await handleApi({ method: 'GET', path: '/stats', query: {} }, deps)).body;

    h.clock.t = T0 + 1_000;
    expect(await call()).toEqual({
      deviceTypes: { tracker: { online: 2, offline: 0 }, meter: { online: 0, offline: 0 } },
      total: { online: 2, offline: 0 },
      asOf: T0 + 1_000,
      maxAgeMs: 60_000,
    });
    await h.send(['c'], T0 + 2_000, 'tracker');
    h.clock.t = T0 + 60_999; // still within the minute: the same answer, no read
    for (let i = 0; i < 100; i++) expect(await call()).toMatchObject({ total: { online: 2 }, asOf: T0 + 1_000 });
    expect(reads).toHaveBeenCalledTimes(1);

    h.clock.t = T0 + 61_000; // a minute old: read again, and c is counted
    expect(await call()).toMatchObject({ total: { online: 3, offline: 0 }, asOf: T0 + 61_000 });
    expect(reads).toHaveBeenCalledTimes(2);
  });

  it('shares one read among calls that arrive while it runs, and keeps no failed read', async () => {
    const h = harness();
    await h.send(['a'], T0, 'tracker');
    const cache = new StatsCache(60_000);
    const deps: ApiDeps = { ...admin(h), statsCache: cache };
    const reads = vi.spyOn(h.store, 'counts').mockRejectedValueOnce(new Error('throttled'));
    await expect(cache.get(deps)).rejects.toThrow('throttled');
    const [x, y] = await Promise.all([cache.get(deps), cache.get(deps)]);
    expect(x).toBe(y);
    expect(reads).toHaveBeenCalledTimes(2); // the failed one, then one for both calls
  });

  it('reads on every call without a cache (the CLI on a local table), and says so', async () => {
    const h = harness();
    const reads = vi.spyOn(h.store, 'counts');
    const deps: ApiDeps = admin(h);
    for (let i = 0; i < 3; i++) {
      expect((await handleApi({ method: 'GET', path: '/stats', query: {} }, deps)).body).toMatchObject({ maxAgeMs: 0 });
    }
    expect(reads).toHaveBeenCalledTimes(3);
  });
});

describe('read-only API', () => {
  it('refuses every change with 403 before reading anything, and answers the GET routes', async () => {
    const h = harness();
    await h.send(['a'], T0, 'tracker');
    const deps: ApiDeps = { ...admin(h), access: 'read' };
    const before = structuredClone(h.store.items.get('a'));
    const get = vi.spyOn(h.store, 'get');
    for (const [method, path, body] of [
      ['POST', '/devices/a/mute', JSON.stringify({ until: T0 + 3_600_000 })],
      ['DELETE', '/devices/a/mute', undefined],
      ['PUT', '/devices/a/policy', JSON.stringify({ timeout: '30s' })],
      ['DELETE', '/devices/a/policy', undefined],
      ['DELETE', '/devices/a', undefined],
      ['PATCH', '/nowhere', 'x'.repeat(5000)],
    ] as const) {
      const response = await handleApi({ method, path, query: {}, ...(body ? { body } : {}) }, deps);
      expect(response, `${method} ${path}`).toMatchObject({ status: 403, body: { error: 'read-only' } });
    }
    expect(get).not.toHaveBeenCalled();
    expect(h.store.items.get('a')).toEqual(before);
    expect(await handleApi({ method: 'GET', path: '/devices/a', query: {} }, deps)).toMatchObject({
      status: 200,
      body: { deviceId: 'a', status: 'ONLINE' },
    });
    expect(await handleApi({ method: 'GET', path: '/stats', query: {} }, deps)).toMatchObject({ status: 200 });
  });
});

/** Newest `since` first, ties by id descending: the offline index's order. */
function bySinceThenId(h: Harness) {
  return (a: string, b: string) => {
    const x = h.store.items.get(a)!;
    const y = h.store.items.get(b)!;
    return y.since - x.since || (a < b ? 1 : -1);
  };
}

describe('flap damping', () => {
  const WINDOW = 300_000;
  /** tracker flaps after 3 transitions within 5 min; meter has no damping. */
  const flappy = (transitions = 3) =>
    harness({ types: { tracker: { ...TYPES.tracker, flap: { transitions, windowMs: WINDOW } }, meter: TYPES.meter } });
  const flapSummary = (h: Harness, deviceId: string) =>
    h.events.of(deviceId).map((e) => [e.type, e.seq, e.since - T0, e.status ?? (e.settled ? 'settled' : '-')] as const);

  /** online#1 at 0, offline#2 at 90 s, back at 100 s: the third transition within the window. */
  async function startFlapping(h: Harness) {
    await h.send(['d'], T0, 'tracker');
    await sweepAt(h, T0 + TRACKER);
    h.clock.t = T0 + 100_000;
    return h.send(['d'], T0 + 100_000, 'tracker');
  }

  it('K transitions within W publish one device.flapping; later ones publish nothing; stable for W, the settled state goes out once', async () => {
    const h = flappy();
    expect((await startFlapping(h)).stats).toMatchObject({ onlineTransitions: 1, flapStarted: 1 });
    expect(flapSummary(h, 'd')).toEqual([
      ['device.online', 1, 0, '-'],
      ['device.offline', 2, TRACKER, '-'],
      ['device.flapping', 3, 100_000, 'ONLINE'],
    ]);
    expect(h.events.of('d', 'device.flapping')[0]).toMatchObject({ windowMs: WINDOW, eventId: 'd#3' });
    // Flapping: the deadline is bounded by when it would settle, and the ingest never moves it later.
    expect(h.store.items.get('d')).toMatchObject({
      deadline: T0 + 100_000 + TRACKER,
      flapping: { since: T0 + 100_000 },
    });

    await sweepAt(h, T0 + 190_000); // silent: offline (seq 4), held
    expect(h.store.items.get('d')).toMatchObject({ status: 'OFFLINE', seq: 4, deadline: T0 + 190_000 + WINDOW });
    expect(await stats(admin(h))).toMatchObject({ deviceTypes: { tracker: { online: 0, offline: 1 } } });
    expect((await listOffline(admin(h), { limit: 10 })).devices.map((d) => d.deviceId)).toEqual(['d']);

    const back = T0 + 200_000; // online again (seq 5), held; then it keeps sending every minute
    for (let t = back; t <= T0 + 560_000; t += 60_000) {
      h.clock.t = t;
      await h.send(['d'], t, 'tracker');
      await sweepAt(h, t + 30_000);
    }
    expect(h.store.items.get('d')).toMatchObject({ status: 'ONLINE', seq: 6 });
    expect(await getDevice(admin(h), 'd')).not.toHaveProperty('flapping');
    expect(await stats(admin(h))).toMatchObject({ deviceTypes: { tracker: { online: 1, offline: 0 } } });
    expect(flapSummary(h, 'd')).toEqual([
      ['device.online', 1, 0, '-'],
      ['device.offline', 2, TRACKER, '-'],
      ['device.flapping', 3, 100_000, 'ONLINE'],
      ['device.online', 6, 200_000, 'settled'], // since: its last transition; detected when stable for W
    ]);
    expect(h.events.of('d').at(-1)!.detectedAt).toBe(T0 + 530_000); // the first sweep at or after 200 s + W

    await sweepAt(h, T0 + 560_000 + TRACKER); // settled: a silence is reported as usual
    expect(flapSummary(h, 'd').at(-1)).toEqual(['device.offline', 7, 560_000 + TRACKER, '-']);
  });

  it('shows the flapping in GET /devices, and settles offline W after the last transition of a silent device', async () => {
    const h = flappy();
    await startFlapping(h);
    expect((await getDevice(admin(h), 'd')).flapping).toEqual({
      since: T0 + 100_000,
      settlesAt: T0 + 100_000 + WINDOW,
    });
    await sweepAt(h, T0 + 190_000); // offline at 190 s, held
    expect((await getDevice(admin(h), 'd')).flapping).toEqual({
      since: T0 + 100_000,
      settlesAt: T0 + 190_000 + WINDOW,
    });
    await sweepAt(h, T0 + 190_000 + WINDOW - 1);
    expect(h.events.of('d')).toHaveLength(3);
    await sweepAt(h, T0 + 190_000 + WINDOW);
    await sweepAt(h, T0 + 900_000);
    expect(flapSummary(h, 'd').slice(3)).toEqual([['device.offline', 5, 190_000, 'settled']]);
    expect(h.store.items.get('d')).toMatchObject({ status: 'OFFLINE' });
    expect(h.store.items.get('d')!.deadline).toBeUndefined(); // settled offline: out of the deadline index
    expect(await stats(admin(h))).toMatchObject({ deviceTypes: { tracker: { online: 0, offline: 1 } } });
  });

  it('an offline transition can start the flapping; a mute holds the settled offline event until it ends', async () => {
    const h = flappy(4);
    expect((await startFlapping(h)).stats.flapStarted).toBe(0); // three transitions: not yet
    h.clock.t = T0 + 190_000;
    expect(total(await h.sweepAll(), 'flapStarted')).toBe(1); // the fourth
    expect(flapSummary(h, 'd')).toEqual([
      ['device.online', 1, 0, '-'],
      ['device.offline', 2, TRACKER, '-'],
      ['device.online', 3, 100_000, '-'],
      ['device.flapping', 4, 190_000, 'OFFLINE'],
    ]);
    const until = T0 + 700_000;
    h.clock.t = T0 + 200_000;
    await mute(admin(h), 'd', until);
    await sweepAt(h, T0 + 190_000 + WINDOW); // would settle, but the settled state is an offline event: muted
    expect(h.store.items.get('d')).toMatchObject({ deadline: until });
    await sweepAt(h, until - 1);
    expect(h.events.of('d')).toHaveLength(4);
    await sweepAt(h, until);
    expect(flapSummary(h, 'd').slice(4)).toEqual([['device.offline', 5, 190_000, 'settled']]);
    expect(h.events.of('d').at(-1)!.detectedAt).toBe(until);
  });

  it('unmute lets a flapping device held by the mute settle at the next sweep', async () => {
    const h = flappy(4);
    await startFlapping(h);
    await sweepAt(h, T0 + 190_000); // flapping, offline
    h.clock.t = T0 + 200_000;
    await mute(admin(h), 'd', T0 + 3_600_000);
    await sweepAt(h, T0 + 190_000 + WINDOW); // held at the mute's end
    h.clock.t = T0 + 600_000;
    await unmute(admin(h), 'd');
    expect(h.store.items.get('d')!.deadline).toBe(T0 + 190_000 + WINDOW);
    await sweepAt(h, T0 + 600_000);
    expect(flapSummary(h, 'd').slice(4)).toEqual([['device.offline', 5, 190_000, 'settled']]);
  });

  it('decommission ends the flapping: the device comes back as a new one with a fresh history', async () => {
    const h = flappy();
    await startFlapping(h);
    await forget(admin(h), 'd');
    expect(h.store.items.get('d')).not.toHaveProperty('flapping');
    expect(h.store.items.get('d')).not.toHaveProperty('transitions');
    await sweepAt(h, T0 + 1_000_000);
    const again = T0 + 1_100_000;
    h.clock.t = again;
    await h.send(['d'], again, 'tracker');
    await sweepAt(h, again + TRACKER);
    expect(flapSummary(h, 'd').slice(3)).toEqual([
      ['device.online', 4, 1_100_000, '-'],
      ['device.offline', 5, 1_100_000 + TRACKER, '-'],
    ]);
  });

  it('K transitions spread over more than W are not flapping', async () => {
    const h = flappy();
    await h.send(['d'], T0, 'tracker');
    await sweepAt(h, T0 + TRACKER);
    h.clock.t = T0 + WINDOW + 1;
    await h.send(['d'], T0 + WINDOW + 1, 'tracker'); // third transition, 1 ms too late to flap
    await sweepAt(h, T0 + WINDOW + 1 + TRACKER);
    expect(h.events.of('d').map((e) => e.type)).toEqual([
      'device.online',
      'device.offline',
      'device.online',
      'device.offline', // the 2nd to 4th transitions span 300,001 ms: not within W either
    ]);
  });

  it("refuses an override whose timeout + precision + the type's flap window reaches the housekeeping TTL", async () => {
    // checkInvariants refuses such a TTL for the type itself: a flapping device goes offline held and settles W
    // later, so TTL could delete it before its settled offline event goes out.
    const h = flappy();
    await h.send(['d'], T0, 'tracker');
    await h.send(['m'], T0, 'meter');
    const day = 86_400_000;
    const deps = { ...admin(h), housekeepingTtlMs: day };
    const put = (deviceId: string, timeoutMs: number) =>
      handleApi(
        { method: 'PUT', path: `/devices/${deviceId}/policy`, query: {}, body: `{"timeout":${timeoutMs}}` },
        deps,
      );
    const before = structuredClone(h.store.items.get('d'));
    // timeout + precision < TTL, but the tracker's flap window on top reaches it.
    expect(await put('d', day - WINDOW)).toMatchObject({
      status: 400,
      body: { error: 'bad-duration', message: expect.stringContaining('flap window') },
    });
    expect(h.store.items.get('d')).toEqual(before);
    expect(await put('d', day - WINDOW - 1)).toMatchObject({ status: 200, body: { timeoutMs: day - WINDOW - 1 } });
    // A type without damping needs only timeout + precision below the TTL.
    expect(await put('m', day - WINDOW)).toMatchObject({ status: 200, body: { timeoutMs: day - WINDOW } });
    expect((await put('m', day)).status).toBe(400);
  });

  it('types without damping report every transition', async () => {
    const h = flappy();
    for (let i = 0; i < 3; i++) {
      const t = T0 + i * 400_000;
      h.clock.t = t;
      await h.send(['m'], t, 'meter');
      await sweepAt(h, t + 360_000);
    }
    expect(h.events.of('m').map((e) => e.type)).toEqual([
      'device.online',
      'device.offline',
      'device.online',
      'device.offline',
      'device.online',
      'device.offline',
    ]);
  });
});
