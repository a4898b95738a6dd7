import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ardupilotmegaDialect } from '../../src/mavlink/dialect.js';
import { encodeFrame } from '../../src/mavlink/encode.js';
import { describeFrame, type Frame } from '../../src/mavlink/framer.js';
import { LinkBudget, budgetSchema, CRITICAL, NORMAL, BULK, type BudgetConfigInput } from '../../src/uplink/budget.js';
import { requestedMsgids } from '../../src/uplink/budget-requests.js';
import { airConfigSchema } from '../../src/config/schema.js';

const dialect = ardupilotmegaDialect();
const id = (name: string): number => {
  const v = dialect.msgidByName(name);
  assert.ok(v !== undefined, name);
  return v;
};

let seqNo = 0;
/** A frame of `name` whose payload starts with `value` (u32) and is otherwise deterministic filler. */
function frame(name: string, value = 0, sysid = 1, compid = 1, patch?: (p: Buffer) => void): Frame {
  const msgid = id(name);
  const p = Buffer.alloc(dialect.maxPayloadLength(msgid));
  for (let i = 0; i < p.length; i++) p[i] = (i * 31 + 7) & 0xff;
  if (p.length >= 4) p.writeUInt32LE(value >>> 0, 0);
  patch?.(p);
  return describeFrame(encodeFrame(dialect, { version: 2, seq: seqNo++ & 0xff, sysid, compid, msgid }, p));
}

/** PRNG for reproducible schedules. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

interface Sent {
  t: number;
  f: Frame;
}

/** Max bytes in any closed window [a, a + windowMs] over send events. */
function maxWindowBytes(sent: Sent[], windowMs: number): number {
  let max = 0;
  let sum = 0;
  let j = 0;
  for (let i = 0; i < sent.length; i++) {
    while (j < sent.length && (sent[j] as Sent).t <= (sent[i] as Sent).t + windowMs) {
      sum += (sent[j] as Sent).f.bytes.length;
      j++;
    }
    max = Math.max(max, sum);
    sum -= (sent[i] as Sent).f.bytes.length;
  }
  return max;
}

/** Streams: [name, Hz, sysid, compid, instance (BATTERY_STATUS id)]. */
const FLOOD: [string, number, number, number, number?][] = [
  ['ATTITUDE', 50, 1, 1], ['RAW_IMU', 50, 1, 1], ['SCALED_IMU2', 50, 1, 1], ['GLOBAL_POSITION_INT', 10, 1, 1], ['VFR_HUD', 10, 1, 1],
  ['SYS_STATUS', 5, 1, 1], ['GPS_RAW_INT', 5, 1, 1], ['SERVO_OUTPUT_RAW', 10, 1, 1], ['NAV_CONTROLLER_OUTPUT', 10, 1, 1],
  ['RC_CHANNELS', 10, 1, 1], ['VIBRATION', 5, 1, 1], ['EKF_STATUS_REPORT', 5, 1, 1], ['MISSION_CURRENT', 2, 1, 1],
  ['BATTERY_STATUS', 5, 1, 1, 0], ['BATTERY_STATUS', 5, 1, 1, 1],
  ['HEARTBEAT', 1, 1, 1], ['HEARTBEAT', 1, 1, 191],
];

interface SimResult {
  sent: Sent[];
  offered: Map<string, Frame[]>;
  offeredAt: Map<string, number>;
  budget: LinkBudget;
}

/**
 * Drive a budget like the relay would: frames arrive on their schedules, drain() runs on an
 * irregular tick and when nextDrainMs() says so.
 */
function simulate(config: BudgetConfigInput, seconds: number, seed: number, extra?: (t: number, offer: (f: Frame) => void, b: LinkBudget) => void): SimResult {
  const budget = new LinkBudget(config);
  const r = rng(seed);
  const sent: Sent[] = [];
  const offered = new Map<string, Frame[]>();
  const offeredAt = new Map<string, number>();
  const counters = FLOOD.map(() => 0);
  const nextAt = FLOOD.map(() => r() * 100);
  let nextTick = 0;
  const offer = (t: number, f: Frame): void => {
    const key = dialect.messageName(f.msgid);
    const list = offered.get(key);
    if (list === undefined) offered.set(key, [f]);
    else list.push(f);
    offeredAt.set(hex(f), t);
    if (budget.offer(f, t)) sent.push({ t, f });
  };
  for (let t = 0; t <= seconds * 1000; t++) {
    FLOOD.forEach(([name, hz, sysid, compid, inst], i) => {
      while ((nextAt[i] as number) <= t) {
        const n = (counters[i] = (counters[i] as number) + 1);
        offer(t, frame(name, n, sysid, compid, inst === undefined ? undefined : (p) => { p[32] = inst; }));
        nextAt[i] = (nextAt[i] as number) + (1000 / hz) * (0.9 + 0.2 * r());
      }
    });
    extra?.(t, (f) => offer(t, f), budget);
    const due = budget.nextDrainMs(t);
    if (t >= nextTick || (due !== null && due <= t)) {
      for (const f of budget.drain(t)) sent.push({ t, f });
      nextTick = t + 5 + Math.floor(r() * 35);
    }
  }
  // Let the queues run dry (critical must all come out eventually).
  for (let t = seconds * 1000 + 1; t <= seconds * 1000 + 60_000; t += 10) for (const f of budget.drain(t)) sent.push({ t, f });
  return { sent, offered, offeredAt, budget };
}

const hex = (f: Frame): string => f.bytes.toString('hex');

describe('link budget', () => {
  test('no budget configured: every frame passes untouched, nothing is kept', () => {
    for (const b of [new LinkBudget(undefined), new LinkBudget({})]) {
      assert.equal(b.active, false);
      for (let i = 0; i < 1000; i++) assert.equal(b.offer(frame('ATTITUDE', i), i), true);
      assert.deepEqual(b.drain(5000), []);
      assert.equal(b.nextDrainMs(5000), null);
      assert.equal(b.stats().offered, 0, 'the disabled path does not even count');
      assert.equal(b.spare(0), Number.POSITIVE_INFINITY);
    }
  });

  test('5 kbit/s under a realistic flood: never over budget in any 10 s window; critical always through, in order', () => {
    const bytesPerSecond = 625;
    const statusTexts: Frame[] = [];
    const acks: Frame[] = [];
    const params: Frame[] = [];
    // A 40-parameter burst is ~1.5 kB: more than 2 s of this budget, so let critical wait up to 10 s before forcing.
    const { sent, offered, offeredAt, budget } = simulate({ bytesPerSecond, criticalMaxDelayMs: 10_000, messageRatesHz: { ATTITUDE: 4 } }, 120, 42, (t, offer, b) => {
      if (t % 7000 === 3500) offer(statusTexts[statusTexts.push(frame('STATUSTEXT', t)) - 1] as Frame);
      if (t % 9000 === 100) offer(acks[acks.push(frame('COMMAND_ACK', t)) - 1] as Frame);
      // The ground asks for the parameter list at t = 30 s: 40 PARAM_VALUEs follow within 200 ms.
      if (t === 30_000) b.noteDownlink(frame('PARAM_REQUEST_LIST'), t);
      if (t >= 30_010 && t < 30_210 && t % 5 === 0) offer(params[params.push(frame('PARAM_VALUE', t)) - 1] as Frame);
    });
    const s = budget.stats();
    const offeredBytes = [...offered.values()].flat().reduce((n, f) => n + f.bytes.length, 0);
    assert.ok(offeredBytes > 120 * bytesPerSecond * 8, `the flood must be far over budget (${offeredBytes} B offered)`);
    const worst = maxWindowBytes(sent, 10_000);
    assert.ok(worst <= bytesPerSecond * 10, `worst 10 s window: ${worst} bytes > ${bytesPerSecond * 10}`);
    assert.equal(s.overBudgetBytes, 0);
    // The budget is used, not just respected: over 2 minutes at least 85% of the refill went out.
    const total = sent.filter((x) => x.t <= 120_000).reduce((n, x) => n + x.f.bytes.length, 0);
    assert.ok(total >= 0.85 * 120 * (s.refillBytesPerSecond ?? 0), `only ${total} bytes in 120 s`);
    // Every critical frame came out exactly once and in order (per message).
    for (const name of ['HEARTBEAT', 'STATUSTEXT', 'COMMAND_ACK', 'PARAM_VALUE']) {
      const out = sent.filter((x) => dialect.messageName(x.f.msgid) === name).map((x) => hex(x.f));
      assert.deepEqual(out, (offered.get(name) ?? []).map(hex), `${name} lost, duplicated or reordered`);
    }
    assert.equal(params.length, 40);
    // Latency-critical frames are not just delivered but delivered promptly.
    assert.ok((offered.get('HEARTBEAT') ?? []).length >= 230);
    for (const x of sent) {
      if (x.f.msgid !== id('HEARTBEAT') && x.f.msgid !== id('COMMAND_ACK')) continue;
      const delay = x.t - (offeredAt.get(hex(x.f)) as number);
      assert.ok(delay <= 100, `${dialect.messageName(x.f.msgid)} waited ${delay} ms`);
    }
    // Bulk is what gave way: coalesced and rate-capped, and both battery instances still reported.
    assert.ok(s.coalesced > 10_000, `coalesced ${s.coalesced}`);
    const batteries = new Set(sent.filter((x) => x.f.msgid === id('BATTERY_STATUS')).map((x) => x.f.bytes[10 + 32]));
    assert.deepEqual([...batteries].sort(), [0, 1]);
    // ATTITUDE rate cap (4 Hz) holds on top of the budget.
    const att = sent.filter((x) => x.f.msgid === id('ATTITUDE')).map((x) => x.t);
    for (let i = 1; i < att.length; i++) assert.ok((att[i] as number) - (att[i - 1] as number) >= 240, `ATTITUDE ${att[i - 1]} -> ${att[i]}`);
    assert.deepEqual(s.dropped, { normal: 0, bulk: s.droppedBy.stale + s.droppedBy.bulkKeys + s.droppedBy.rateZero });
  });

  test('critical latency: HEARTBEAT and COMMAND_ACK go out at once even while bulk saturates the bucket', () => {
    const b = new LinkBudget({ bytesPerSecond: 625 });
    let t = 0;
    for (; t < 10_000; t += 2) {
      b.offer(frame('RAW_IMU', t), t);
      b.drain(t);
    }
    assert.ok(b.stats().backlog.bulkReady > 0, 'bulk is waiting');
    assert.equal(b.offer(frame('HEARTBEAT', 1), t), true, 'HEARTBEAT passes immediately (overdraft)');
    assert.equal(b.offer(frame('COMMAND_ACK', 1), t), true);
    assert.equal(b.classify(id('RAW_IMU'), t), BULK);
    assert.equal(b.classify(id('PARAM_VALUE'), t), NORMAL);
    assert.equal(b.classify(id('STATUSTEXT'), t), CRITICAL);
  });

  test('coalescing keeps the latest value per (msgid, sysid, compid) and sends it when the flood stops', () => {
    const b = new LinkBudget({ bytesPerSecond: 2000 });
    const sent: Frame[] = [];
    let last = 0;
    for (let t = 0; t < 5000; t++) {
      last = t + 1;
      const f = frame('ATTITUDE', last, 1, 1);
      if (b.offer(f, t)) sent.push(f);
      const g = frame('ATTITUDE', 1_000_000 + last, 2, 1); // another vehicle: its own key
      if (b.offer(g, t)) sent.push(g);
      const h = frame('RAW_IMU', last);
      if (b.offer(h, t)) sent.push(h);
      sent.push(...b.drain(t));
    }
    for (let t = 5000; t < 8000; t += 5) sent.push(...b.drain(t));
    const values = (sysid: number): number[] => sent.filter((f) => f.msgid === id('ATTITUDE') && f.sysid === sysid).map((f) => f.bytes.readUInt32LE(10));
    const v1 = values(1);
    const v2 = values(2);
    assert.equal(v1.at(-1), last, 'the last ATTITUDE of sysid 1 got out');
    assert.equal(v2.at(-1), 1_000_000 + last, 'and that of sysid 2');
    for (const v of [v1, v2]) for (let i = 1; i < v.length; i++) assert.ok((v[i] as number) > (v[i - 1] as number), 'values only move forward');
    assert.ok(v1.length < 1000, 'most samples were coalesced');
    assert.ok(b.stats().coalesced > 5000);
  });

  test('rate caps without a byte budget: 4 Hz exactly, latest value, 0 blocks, critical is never capped', () => {
    const b = new LinkBudget({ messageRatesHz: { ATTITUDE: 4, RAW_IMU: 0, HEARTBEAT: 0.1 } });
    assert.match(b.stats().warnings.join('\n'), /HEARTBEAT: critical messages are never rate-capped/);
    const out: { t: number; f: Frame }[] = [];
    let last = 0;
    for (let t = 0; t < 10_000; t += 20) {
      last = t;
      const f = frame('ATTITUDE', t);
      if (b.offer(f, t)) out.push({ t, f });
      assert.equal(b.offer(frame('RAW_IMU', t), t), false);
      if (t % 1000 === 0) assert.equal(b.offer(frame('HEARTBEAT', t), t), true);
      for (let u = t; u < t + 20; u += 10) for (const g of b.drain(u)) out.push({ t: u, f: g });
    }
    for (const g of b.drain(20_000)) out.push({ t: 20_000, f: g });
    assert.ok(out.length >= 40 && out.length <= 42, `${out.length} ATTITUDE in 10 s at 4 Hz`);
    for (let i = 1; i < out.length - 1; i++) assert.ok((out[i] as Sent).t - (out[i - 1] as Sent).t >= 240);
    assert.equal(out.at(-1)?.f.bytes.readUInt32LE(10), last, 'the final value is delivered');
    assert.equal(b.stats().droppedBy.rateZero, 500);
  });

  test('critical alone over budget: nothing dropped, memory bounded, the excess counted', () => {
    const b = new LinkBudget({ bytesPerSecond: 625, criticalMaxBacklogBytes: 4096 });
    const texts: Frame[] = [];
    const out: Frame[] = [];
    for (let t = 0; t < 20_000; t += 10) {
      const f = frame('STATUSTEXT', t); // ~66 B every 10 ms: ~6.6 kB/s of critical
      texts.push(f);
      if (b.offer(f, t)) out.push(f);
      out.push(...b.drain(t));
      b.offer(frame('ATTITUDE', t), t);
      assert.ok(b.stats().backlog.criticalBytes <= 4096 + 300, 'critical backlog bounded');
    }
    for (let t = 20_000; t < 40_000; t += 10) out.push(...b.drain(t));
    const got = out.filter((f) => f.msgid === id('STATUSTEXT'));
    assert.deepEqual(got.map(hex), texts.map(hex), 'every STATUSTEXT, in order');
    assert.ok(b.stats().overBudgetBytes > 0);
  });

  test('requested msgids are critical for a while, then normal again', () => {
    const b = new LinkBudget({ bytesPerSecond: 1000, requestTtlMs: 1000, requestMaxMs: 5000 });
    const pv = id('PARAM_VALUE');
    assert.equal(b.classify(pv, 0), NORMAL);
    b.noteDownlink(frame('PARAM_REQUEST_READ'), 0);
    assert.equal(b.classify(pv, 500), CRITICAL);
    assert.equal(b.classify(pv, 1400), CRITICAL, 'extended by the answer at 500');
    assert.equal(b.classify(pv, 3000), NORMAL, 'expired');
    b.markRequested(pv, 10_000);
    for (let t = 10_000; t < 14_900; t += 500) assert.equal(b.classify(pv, t), CRITICAL);
    assert.equal(b.classify(pv, 15_600), NORMAL, 'hard limit after requestMaxMs');
  });

  test('requestedMsgids: what a ground frame asks for', () => {
    const reqMsg = frame('COMMAND_LONG', 0, 255, 190, (p) => {
      p.writeFloatLE(148, 0);
      p.writeUInt16LE(512, 28);
    });
    assert.deepEqual(requestedMsgids(reqMsg), [148]);
    const caps = frame('COMMAND_INT', 0, 255, 190, (p) => p.writeUInt16LE(520, 28));
    assert.deepEqual(requestedMsgids(caps), [148]);
    assert.deepEqual(requestedMsgids(frame('PARAM_REQUEST_LIST')), [22]);
    assert.deepEqual(requestedMsgids(frame('LOG_REQUEST_DATA')), [120]);
    assert.deepEqual(requestedMsgids(frame('ATTITUDE')), []);
    const arm = frame('COMMAND_LONG', 0, 255, 190, (p) => p.writeUInt16LE(400, 28));
    assert.deepEqual(requestedMsgids(arm), []);
  });

  test('bounded memory under many sources and a normal flood', () => {
    const b = new LinkBudget({ bytesPerSecond: 1000, maxBulkKeys: 128, normalMaxBacklogBytes: 4096 });
    for (let t = 0; t < 5000; t++) {
      b.offer(frame('ATTITUDE', t, 1 + (t % 250), t % 200), t);
      b.offer(frame('PARAM_VALUE', t), t);
      if (t % 50 === 0) b.drain(t);
    }
    const s = b.stats();
    assert.ok(s.backlog.bulkReady + s.backlog.bulkHeld <= 128);
    assert.ok(s.backlog.normalBytes <= 4096);
    assert.ok(s.droppedBy.bulkKeys > 0 && s.droppedBy.normalOverflow > 0);
  });

  test('schema: rejects a budget too small for its window, accepts sane input', () => {
    assert.equal(budgetSchema.safeParse({ bytesPerSecond: 50 }).success, false);
    assert.equal(budgetSchema.safeParse({ bytesPerSecond: 625, messageRatesHz: { attitude: 4 } }).success, false);
    assert.equal(budgetSchema.safeParse({ bytesPerSecond: 625, messageRatesHz: { ATTITUDE: 4 } }).success, true);
    assert.equal(budgetSchema.safeParse({ bytesPerSecond: 625, bogus: 1 }).success, false);
  });
});

describe('link profiles (config/profiles/*.yaml)', () => {
  const dir = new URL('../../config/profiles/', import.meta.url);
  const files = readdirSync(dir).filter((n) => n.endsWith('.yaml'));

  test('radio, lte and satellite exist', () => {
    assert.deepEqual(files.sort(), ['lte.yaml', 'radio.yaml', 'satellite.yaml']);
  });

  for (const name of files) {
    test(`${name}: a valid air config fragment whose listed rates fit its budget`, () => {
      const doc = parseYaml(readFileSync(new URL(name, dir), 'utf8')) as Record<string, unknown>;
      const { budget, ...rest } = doc;
      const parsed = budgetSchema.parse(budget);
      const b = new LinkBudget(parsed);
      assert.deepEqual(b.stats().warnings, [], 'every message name is known and capped ones are bulk');
      // The rest must be valid air config as it exists today (the lead adds `budget`).
      const air = airConfigSchema.safeParse({ link: { url: 'tcp://127.0.0.1:5760' }, ...rest });
      assert.ok(air.success, JSON.stringify(air.error?.issues));
      // The capped telemetry (worst-case frame sizes) plus 1 Hz HEARTBEATs from two components plus
      // envelope overhead per batching window must leave room under the refill rate.
      const refill = b.stats().refillBytesPerSecond ?? Number.POSITIVE_INFINITY;
      let bytes = 2 * 21;
      for (const [msg, hz] of Object.entries(parsed.messageRatesHz)) bytes += hz * (dialect.maxPayloadLength(id(msg)) + 12);
      const batching = air.success ? air.data.batching : { maxDelayMs: 20 };
      bytes += 2 * 80 * Math.min(50, 1000 / Math.max(1, batching.maxDelayMs));
      assert.ok(bytes <= 0.8 * refill, `${name}: telemetry ${bytes.toFixed(0)} B/s vs refill ${refill} B/s`);
      // And under the flood the profile holds its promise.
      const { sent, offered } = simulate(parsed, 40, 7);
      const worst = maxWindowBytes(sent, parsed.windowMs);
      assert.ok(parsed.bytesPerSecond !== undefined && worst <= (parsed.bytesPerSecond * parsed.windowMs) / 1000, `${name}: worst window ${worst}`);
      const hb = sent.filter((x) => x.f.msgid === 0).map((x) => hex(x.f));
      assert.deepEqual(hb, (offered.get('HEARTBEAT') ?? []).map(hex));
    });
  }
});
