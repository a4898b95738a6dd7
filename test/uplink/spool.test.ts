import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, writeFile, truncate, stat, rm, rename, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool, type SpoolRecord, type SpoolClassName } from '../../src/uplink/spool.js';
import { nodeSpoolFs, type SpoolFs, type SpoolFile } from '../../src/uplink/spool-fs.js';
import { crc32, crc32Js } from '../../src/uplink/spool-crc32.js';
import { sealedSegmentName, openSegmentName, parseSegmentName } from '../../src/uplink/spool-format.js';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'mavmq-spool-'));
}

async function drainAll(s: Spool, chunk = 64 * 1024): Promise<SpoolRecord[]> {
  const out: SpoolRecord[] = [];
  for (;;) {
    const r = await s.next(chunk);
    if (r.length === 0) return out;
    out.push(...r);
  }
}

const CLASSES: SpoolClassName[] = ['critical', 'normal', 'bulk'];

/** Append `n` records with self-checking bodies; returns seq -> class. */
function fill(s: Spool, n: number, pick: (i: number) => SpoolClassName, size = (i: number): number => 200 + ((i * 37) % 900)): Map<number, SpoolClassName> {
  const m = new Map<number, SpoolClassName>();
  for (let i = 0; i < n; i++) {
    const cls = pick(i);
    const seq = s.lastAppendedSeq + 1;
    assert.equal(s.append(cls, spoolBody(seq, cls, size(i))), seq);
    m.set(seq, cls);
  }
  return m;
}

function assertInOrder(recs: SpoolRecord[]): void {
  for (let i = 0; i < recs.length; i++) {
    const r = recs[i] as SpoolRecord;
    assert.equal(checkSpoolBody(r.body), r.seq, `record ${r.seq}: body does not belong to it`);
    assert.equal(r.body[8], CLASSES.indexOf(r.cls), `record ${r.seq}: class`);
    if (i > 0) assert.ok(r.seq > (recs[i - 1] as SpoolRecord).seq, 'oldest first, strictly increasing');
  }
}

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const name of await readdir(dir)) if (name.endsWith('.seg')) n += (await stat(join(dir, name))).size;
  return n;
}

/** A disk of `capacity` bytes (segment files only): writes beyond it write what fits, then fail with ENOSPC. */
function quotaFs(capacity: { bytes: number }): SpoolFs & { used(): number } {
  const sizes = new Map<string, number>();
  const used = (): number => [...sizes.values()].reduce((a, b) => a + b, 0);
  const wrap = (path: string, f: SpoolFile): SpoolFile => ({
    async write(buf, position) {
      const cur = sizes.get(path) ?? 0;
      const grow = Math.max(0, position + buf.length - cur);
      const free = capacity.bytes - used();
      if (grow > free) {
        const part = Math.max(0, free - Math.max(0, cur - position));
        if (part > 0) {
          await f.write(buf.subarray(0, part), position);
          sizes.set(path, Math.max(cur, position + part));
        }
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      }
      await f.write(buf, position);
      sizes.set(path, Math.max(cur, position + buf.length));
    },
    read: (b, o, l, p) => f.read(b, o, l, p),
    datasync: () => f.datasync(),
    async truncate(len) {
      await f.truncate(len);
      sizes.set(path, len);
    },
    size: () => f.size(),
    close: () => f.close(),
  });
  return {
    ...nodeSpoolFs,
    used,
    async open(path, mode) {
      const f = await nodeSpoolFs.open(path, mode);
      if (path.endsWith('.seg')) {
        if (mode === 'create') sizes.set(path, 0);
        else sizes.set(path, await f.size());
        return wrap(path, f);
      }
      return f;
    },
    async unlink(path) {
      await nodeSpoolFs.unlink(path);
      sizes.delete(path);
    },
    async rename(from, to) {
      await nodeSpoolFs.rename(from, to);
      const n = sizes.get(from);
      sizes.delete(from);
      if (n !== undefined) sizes.set(to, n);
    },
  };
}


// ---------------------------------------------------------------------------------------------
// Self-checking record bodies: seq (f64) | class (u8) | filler derived from seq. The kill-test
// child has its own copy of this in CHILD below: keep them identical.

const CLASS_CODE: Record<SpoolClassName, number> = { critical: 0, normal: 1, bulk: 2 };

function spoolBody(seq: number, cls: SpoolClassName, size: number): Buffer {
  const b = Buffer.alloc(Math.max(16, size));
  b.writeDoubleLE(seq, 0);
  b[8] = CLASS_CODE[cls];
  for (let i = 9; i < b.length; i++) b[i] = (seq * 131 + i * 17) & 255;
  return b;
}

/** The seq a body claims, if the body is intact; -1 otherwise. */
function checkSpoolBody(b: Buffer): number {
  if (b.length < 16) return -1;
  const seq = b.readDoubleLE(0);
  for (let i = 9; i < b.length; i++) if (b[i] !== ((seq * 131 + i * 17) & 255)) return -1;
  return seq;
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

/**
 * The child: waits for "go", opens the spool, appends 1-2 records every 3 ms (all classes, 16 B to
 * 1 kB), and after a random outage (0-700 ms) drains and acks (70%) or rewinds (5%) every 10 ms;
 * segment writes go out in small pieces. It reports on stdout (a pipe:
 * synchronous on Linux, so a reported line is never lost to the kill):
 *   R            loaded          O <seq>   opened; its appends start after seq
 *   P <seq>      appended up to  D <seq>   durableSeq (all <= seq fdatasynced)
 *   N <seq>      received up to  A <seq>   ack(seq) resolved durable
 */
const CHILD = (spoolUrl: string, fsUrl: string): string => `
import { Spool } from ${JSON.stringify(spoolUrl)};
import { nodeSpoolFs } from ${JSON.stringify(fsUrl)};
let x = Number(process.env.SEED) >>> 0 || 1;
const rnd = () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return (x >>> 0) / 4294967296; };
// Segment writes in small pieces with a turn of the event loop between them, so a kill lands
// inside records and leaves torn tails (one pwrite is never torn by a kill: it needs a power cut).
const fs = { ...nodeSpoolFs, async open(path, mode) {
  const f = await nodeSpoolFs.open(path, mode);
  if (!path.endsWith('.seg')) return f;
  return {
    async write(buf, pos) {
      for (let i = 0; i < buf.length;) {
        const n = Math.min(buf.length - i, 64 + Math.floor(rnd() * 1500));
        await f.write(buf.subarray(i, i + n), pos + i);
        i += n;
        await new Promise((r) => (rnd() < 0.5 ? setImmediate(r) : setTimeout(r, 1)));
      }
    },
    read: (b, o, l, p) => f.read(b, o, l, p), datasync: () => f.datasync(), truncate: (l) => f.truncate(l), size: () => f.size(), close: () => f.close(),
  };
} };
const CL = ['critical', 'normal', 'bulk'];
function body(seq, c, size) {
  const b = Buffer.alloc(Math.max(16, size));
  b.writeDoubleLE(seq, 0);
  b[8] = c;
  for (let i = 9; i < b.length; i++) b[i] = (seq * 131 + i * 17) & 255;
  return b;
}
const out = (l) => process.stdout.write(l + '\\n');
process.stdin.once('data', async () => {
  const s = await Spool.open({ dir: process.env.DIR, fs, segmentBytes: 16384, maxTotalBytes: 1 << 28, syncIntervalMs: 100 });
  out('O ' + s.lastAppendedSeq);
  let lastD = -1;
  setInterval(() => { const d = s.stats().durableSeq; if (d !== lastD) { lastD = d; out('D ' + d); } }, 3);
  setInterval(() => {
    const n = 1 + Math.floor(rnd() * 2);
    for (let i = 0; i < n; i++) {
      const c = Math.floor(rnd() * 3);
      const seq = s.lastAppendedSeq + 1;
      if (s.append(CL[c], body(seq, c, 16 + Math.floor(rnd() * 1000))) !== seq) throw new Error('seq');
    }
    out('P ' + s.lastAppendedSeq);
  }, 3);
  let busy = false;
  const linkDownUntil = performance.now() + rnd() * 700; // an outage first: records pile up unacknowledged
  setInterval(async () => {
    if (busy || performance.now() < linkDownUntil) return;
    busy = true;
    try {
      if (rnd() < 0.05) s.rewind();
      const recs = await s.next(1 + Math.floor(rnd() * 16000));
      if (recs.length > 0) {
        const upto = recs[recs.length - 1].seq;
        out('N ' + upto);
        if (rnd() < 0.7 && await s.ack(upto)) out('A ' + upto);
      }
    } finally { busy = false; }
  }, 10);
});
out('R');
`;

interface ChildRun {
  proc: ChildProcessWithoutNullStreams;
  lines: { t: number; kind: string; seq: number }[];
  ready: Promise<void>;
  exited: Promise<void>;
}

function startChild(dir: string, seed: number): ChildRun {
  const url = (p: string): string => new URL(`../../src/uplink/${p}`, import.meta.url).href;
  const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD(url('spool.ts'), url('spool-fs.ts'))], {
    env: { ...process.env, DIR: dir, SEED: String(seed) }, stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: ChildRun['lines'] = [];
  let buf = '';
  let stderr = '';
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  proc.stdout.on('data', (d: Buffer) => {
    const t = performance.now();
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const [kind = '', seq = '0'] = buf.slice(0, i).split(' ');
      buf = buf.slice(i + 1);
      if (kind === 'R') onReady();
      else lines.push({ t, kind, seq: Number(seq) });
    }
  });
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve, reject) => {
    proc.once('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`spool child exited by itself (${code}): ${stderr}`));
    });
  });
  exited.catch(() => undefined);
  return { proc, lines, ready: Promise.race([ready, exited]), exited };
}

interface KillResult {
  cycles: number;
  tornTails: number;
  appended: number;
  acked: number;
  checkedDurable: number;
  checkedByTime: number;
}

/**
 * Kill -9 a spooling child at random points, reopen after each kill and check:
 *   - it always opens;
 *   - records come back strictly increasing and intact;
 *   - every ack a child saw resolve is durable: never returned again;
 *   - the durable position never exceeds what a child actually received;
 *   - every record a child saw fdatasynced (D) and every record appended more than
 *     syncIntervalMs + 400 ms before the kill is still there unless acknowledged.
 * The next child is loaded while the current one runs, so a cycle costs its run time only.
 */
async function runKillCycles(opts: { dir: string; cycles: number; seed: number }): Promise<KillResult> {
  const r = rng(opts.seed);
  const durable: [number, number][] = [];
  const byTime: [number, number][] = [];
  let reportedAcked = 0;
  let received = 0;
  let appended = 0;
  let checkedDurable = 0;
  let checkedByTime = 0;
  let tornTails = 0;
  const timing = { ready: 0, verify: 0 };
  const children: ChildRun[] = [];
  const spawnChild = (): ChildRun => {
    const c = startChild(opts.dir, Math.floor(r() * 1e9));
    children.push(c);
    return c;
  };
  let next = spawnChild();
  try {
    for (let cycle = 0; cycle < opts.cycles; cycle++) {
      const child = next;
      const t0 = performance.now();
      await child.ready;
      timing.ready += performance.now() - t0;
      child.proc.stdin.write('go\n');
      next = spawnChild();
      await new Promise((res) => setTimeout(res, 150 + r() * 650));
      const killAt = performance.now();
      child.proc.kill('SIGKILL');
      await child.exited;
      const ctx = `cycle ${cycle} (seed ${opts.seed})`;
      const open = child.lines.find((l) => l.kind === 'O');
      if (open !== undefined) {
        let d = open.seq;
        let p = open.seq;
        let pOld = open.seq;
        for (const l of child.lines) {
          if (l.kind === 'D') d = Math.max(d, l.seq);
          if (l.kind === 'P') {
            p = Math.max(p, l.seq);
            if (l.t < killAt - 500) pOld = Math.max(pOld, l.seq);
          }
          if (l.kind === 'A') reportedAcked = Math.max(reportedAcked, l.seq);
          if (l.kind === 'N') received = Math.max(received, l.seq);
        }
        assert.ok(d <= p, `${ctx}: durableSeq ${d} beyond the last append ${p}`);
        if (d > open.seq) durable.push([open.seq + 1, d]);
        if (pOld > open.seq) byTime.push([open.seq + 1, pOld]);
        appended += p - open.seq;
      }
      const t1 = performance.now();
      // Reopen in this process, as the daemon would after the crash.
      const s = await Spool.open({ dir: opts.dir, segmentBytes: 16384, maxTotalBytes: 1 << 28, syncIntervalMs: 100 });
      const acked = s.stats().ackedSeq;
      if (s.stats().truncatedBytes > 0) tornTails++;
      assert.ok(acked >= reportedAcked, `${ctx}: an ack that resolved (${reportedAcked}) was lost: position ${acked}`);
      assert.ok(acked <= received, `${ctx}: position ${acked} beyond anything delivered (${received})`);
      const t2 = performance.now();
      const recs = await drainAll(s, 1 << 20);
      const t3 = performance.now();
      const last = recs.at(-1);
      if (cycle % 5 === 4 && last !== undefined) {
        // Now and then a long connected stretch: everything is delivered and acknowledged.
        received = Math.max(received, last.seq);
        assert.equal(await s.ack(last.seq), true);
        reportedAcked = Math.max(reportedAcked, last.seq);
      }
      await s.close();
      if (process.env['MAVMQ_SPOOL_TIMING']) console.log(cycle, Math.round(t2 - t1), Math.round(t3 - t2), Math.round(performance.now() - t3), recs.length, s.stats().segments, s.stats().diskBytes);
      const have = new Set<number>();
      let prev = acked;
      for (const rec of recs) {
        assert.ok(rec.seq > prev, `${ctx}: record ${rec.seq} after ${prev} (acknowledged or out of order)`);
        assert.equal(checkSpoolBody(rec.body), rec.seq, `${ctx}: record ${rec.seq} is damaged`);
        assert.equal(rec.body[8], CLASS_CODE[rec.cls], `${ctx}: record ${rec.seq} in the wrong class`);
        have.add(rec.seq);
        prev = rec.seq;
      }
      for (const [lo, hi] of durable) {
        for (let q = Math.max(lo, acked + 1); q <= hi; q++) {
          assert.ok(have.has(q), `${ctx}: record ${q} was reported fdatasynced and is gone (position ${acked})`);
          checkedDurable++;
        }
      }
      for (const [lo, hi] of byTime) {
        for (let q = Math.max(lo, acked + 1); q <= hi; q++) {
          assert.ok(have.has(q), `${ctx}: record ${q} was appended > 500 ms before the kill and is gone`);
          checkedByTime++;
        }
      }
      timing.verify += performance.now() - t1;
      for (const list of [durable, byTime]) {
        for (let i = list.length - 1; i >= 0; i--) if ((list[i] as [number, number])[1] <= Math.max(acked, reportedAcked)) list.splice(i, 1);
      }
    }
  } finally {
    // Never leave a child behind (a failed assertion would otherwise keep the runner waiting on it).
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited.catch(() => undefined)));
  }
  if (process.env['MAVMQ_SPOOL_TIMING']) console.log(timing);
  // Finally: drain and acknowledge everything; nothing is left.
  let s = await Spool.open({ dir: opts.dir });
  await drainAll(s, 1 << 20);
  assert.equal(await s.ack(s.lastAppendedSeq), true);
  await s.close();
  s = await Spool.open({ dir: opts.dir });
  assert.deepEqual(await drainAll(s), []);
  await s.close();
  assert.deepEqual((await readdir(opts.dir)).filter((n) => n.endsWith('.seg')), []);
  return { cycles: opts.cycles, tornTails, appended, acked: reportedAcked, checkedDurable, checkedByTime };
}

describe('spool', () => {
  test('crc32: check value, chaining, and the JS and native versions agree', () => {
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
    assert.equal(crc32Js(Buffer.from('123456789')), 0xcbf43926);
    const b = Buffer.alloc(10_007);
    for (let i = 0; i < b.length; i++) b[i] = (i * 7919 + 3) & 0xff;
    for (const [s, e] of [[0, b.length], [3, 17], [5, 9001], [0, 0], [1, 8], [9, 10]] as const) assert.equal(crc32(b, s, e), crc32Js(b, s, e));
    assert.equal(crc32Js(b, 100, 5000, crc32Js(b, 0, 100)), crc32(b, 0, 5000));
  });

  test('segment names round-trip', () => {
    assert.deepEqual(parseSegmentName(openSegmentName(2, 42)), { sealed: false, cls: 2, firstSeq: 42 });
    assert.deepEqual(parseSegmentName(sealedSegmentName(0, 5, 90, 33)), { sealed: true, cls: 0, firstSeq: 5, lastSeq: 90, records: 33 });
    assert.equal(parseSegmentName('notes.txt'), null);
    assert.deepEqual(parseSegmentName(sealedSegmentName(1, 90, 5, 3)), { sealed: false, cls: 1, firstSeq: 90 }, 'inconsistent sealed name: rescan');
  });

  test('round trip: oldest first across classes; ack persists across reopen; rewind resends; all acked leaves no segments', async () => {
    const dir = await tmp();
    let s = await Spool.open({ dir, segmentBytes: 16 * 1024 });
    const written = fill(s, 600, (i) => CLASSES[(i * 7) % 3] as SpoolClassName);
    assert.deepEqual(await s.next(1 << 20), [], 'nothing before the group commit');
    await s.flush();
    const first = await s.next(20_000);
    assert.ok(first.length > 5 && first.length < 100);
    assertInOrder(first);
    assert.equal(first[0]?.seq, 1);
    s.rewind();
    const again = await s.next(20_000);
    assert.deepEqual(again.map((r) => r.seq), first.map((r) => r.seq), 'rewind delivers the same records again');
    const ackAt = (first.at(-1) as SpoolRecord).seq;
    assert.equal(await s.ack(ackAt), true);
    const rest1 = await drainAll(s);
    assert.equal(rest1[0]?.seq, ackAt + 1);
    await s.close();
    assert.ok((await readdir(dir)).some((n) => /^bulk-\d{16}-\d{16}-\d+\.seg$/.test(n)), 'closed segments are sealed');

    s = await Spool.open({ dir, segmentBytes: 16 * 1024 });
    const rest = await drainAll(s);
    assertInOrder(rest);
    assert.deepEqual(rest.map((r) => r.seq), [...written.keys()].filter((q) => q > ackAt), 'exactly the unacknowledged records, in order');
    assert.ok(rest.every((r) => r.cls === written.get(r.seq)));
    assert.ok(s.lastAppendedSeq >= 600, 'seqs never go back');
    const more = fill(s, 10, () => 'normal');
    await s.flush();
    const tail = await drainAll(s);
    assert.deepEqual(tail.map((r) => r.seq), [...more.keys()]);
    assert.ok((tail[0] as SpoolRecord).seq > 600);
    assert.equal(await s.ack(s.lastAppendedSeq), true);
    await s.close();
    const left = (await readdir(dir)).filter((n) => n.endsWith('.seg'));
    assert.deepEqual(left, [], 'everything acknowledged: no segment left');
    s = await Spool.open({ dir });
    assert.deepEqual(await drainAll(s), []);
    await s.close();
    await rm(dir, { recursive: true });
  });

  test('a batch larger than a segment gets a segment of its own, also across a torn-tail scan', async () => {
    const dir = await tmp();
    let s = await Spool.open({ dir, segmentBytes: 4096, maxTotalBytes: 1 << 20 });
    const m = fill(s, 6, (i) => (i % 2 ? 'bulk' : 'critical'), (i) => (i === 2 ? 70_000 : 3000));
    await s.flush();
    assertInOrder(await drainAll(s));
    await s.close();
    // Reopen everything as open segments (as after a crash): the scan handles the big record too.
    for (const n of await readdir(dir)) {
      const p = parseSegmentName(n);
      if (p?.sealed) await rename(join(dir, n), join(dir, openSegmentName(p.cls, p.firstSeq)));
    }
    s = await Spool.open({ dir, segmentBytes: 4096, maxTotalBytes: 1 << 20 });
    const recs = await drainAll(s, 1000);
    assertInOrder(recs);
    assert.deepEqual(recs.map((r) => r.seq), [...m.keys()]);
    assert.equal(s.stats().truncatedBytes, 0);
    await s.close();
    await rm(dir, { recursive: true });
  });

  test('ages: monotonic within a boot, wall clock across boots when it looks set, else unknown', async () => {
    const dir = await tmp();
    const clock = { wall: Date.UTC(2025, 5, 1), mono: 1000 };
    const c = { wallMs: () => clock.wall, monoMs: () => clock.mono };
    const bootA = Buffer.alloc(16, 0xa);
    let s = await Spool.open({ dir, clock: c, bootId: bootA });
    s.append('bulk', spoolBody(s.lastAppendedSeq + 1, 'bulk', 100));
    clock.wall = 0; // the RTC lost its time
    s.append('bulk', spoolBody(s.lastAppendedSeq + 1, 'bulk', 100));
    clock.mono += 2500;
    clock.wall += 99_999_999;
    await s.flush();
    let r = await drainAll(s);
    assert.deepEqual(r.map((x) => x.ageMs), [2500, 2500], 'same boot: the monotonic clock, whatever the wall clock did');
    await s.close();
    clock.wall = Date.UTC(2025, 5, 1) + 60_000;
    s = await Spool.open({ dir, clock: c, bootId: Buffer.alloc(16, 0xb) });
    r = await drainAll(s);
    assert.deepEqual(r.map((x) => x.ageMs), [60_000, null], 'another boot: wall clock if both stamps look real');
    await s.close();
    await rm(dir, { recursive: true });
  });

  test('bounded: never over maxTotalBytes; bulk dropped first (oldest first), critical last', async () => {
    const dir = await tmp();
    const cap = 96 * 1024;
    const s = await Spool.open({ dir, maxTotalBytes: cap, segmentBytes: 8 * 1024 });
    const written = new Map<number, SpoolClassName>();
    for (let round = 0; round < 60; round++) {
      for (const [k, v] of fill(s, 12, (i) => (i === 0 ? 'critical' : i === 1 ? 'normal' : 'bulk'), () => 500)) written.set(k, v);
      await s.flush();
      assert.ok(s.stats().bytes <= cap, `stats over cap: ${s.stats().bytes}`);
      assert.ok((await dirBytes(dir)) <= cap, `disk over cap: ${await dirBytes(dir)}`);
    }
    let st = s.stats();
    assert.equal(st.dropped.critical.records, 0);
    assert.equal(st.dropped.normal.records, 0);
    assert.ok(st.dropped.bulk.records > 400, `bulk dropped ${st.dropped.bulk.records}`);
    let recs = await drainAll(s);
    assertInOrder(recs);
    const of = (cls: SpoolClassName, m: Iterable<[number, SpoolClassName]>): number[] => [...m].filter(([, c]) => c === cls).map(([q]) => q);
    const have = new Map(recs.map((r) => [r.seq, r.cls] as [number, SpoolClassName]));
    assert.deepEqual(of('critical', have), of('critical', written), 'all critical kept');
    assert.deepEqual(of('normal', have), of('normal', written), 'all normal kept');
    const bulkAll = of('bulk', written);
    const bulkKept = of('bulk', have);
    assert.deepEqual(bulkKept, bulkAll.slice(bulkAll.length - bulkKept.length), 'the newest bulk survived, a contiguous tail');
    // Now critical alone outgrows the cap: bulk and normal go entirely before any critical is dropped.
    s.rewind();
    for (let round = 0; round < 40; round++) {
      fill(s, 8, () => 'critical', () => 700);
      await s.flush();
      assert.ok((await dirBytes(dir)) <= cap);
      st = s.stats();
      if (st.dropped.critical.records > 0) {
        recs = await drainAll(s);
        assert.ok(recs.every((r) => r.cls === 'critical'), 'critical dropped only once nothing else is left');
        s.rewind();
      }
    }
    assert.ok(s.stats().dropped.critical.records > 0);
    assert.ok(s.stats().dropped.normal.records > 0);
    await s.close();
    await rm(dir, { recursive: true });
  });

  test('torn tail: a segment cut mid-record reopens with every whole record and keeps going', async () => {
    const dir = await tmp();
    let s = await Spool.open({ dir, segmentBytes: 1 << 20 });
    fill(s, 50, () => 'bulk', () => 300);
    await s.close();
    const [sealed] = (await readdir(dir)).filter((n) => n.endsWith('.seg'));
    assert.ok(sealed !== undefined);
    // As a crash leaves it: still under its open name, the last record half written.
    const parsed = parseSegmentName(sealed);
    assert.ok(parsed !== null);
    const open = openSegmentName(parsed.cls, parsed.firstSeq);
    await rename(join(dir, sealed), join(dir, open));
    const size = (await stat(join(dir, open))).size;
    await truncate(join(dir, open), size - 150);
    // Plus an empty and a header-only segment (crashes right after creating them) and a foreign file.
    await writeFile(join(dir, openSegmentName(0, 900_000)), Buffer.alloc(0));
    await writeFile(join(dir, openSegmentName(1, 900_001)), Buffer.from('MQSPSEG1'));
    await writeFile(join(dir, 'README'), 'not ours');
    s = await Spool.open({ dir, segmentBytes: 1 << 20 });
    const recs = await drainAll(s);
    assertInOrder(recs);
    assert.deepEqual(recs.map((r) => r.seq), Array.from({ length: 49 }, (_, i) => i + 1));
    const st = s.stats();
    assert.ok(st.truncatedBytes > 0 && st.recoveredSegments === 1);
    const names = (await readdir(dir)).sort();
    assert.ok(names.includes('README'), 'foreign files are left alone');
    assert.equal(names.filter((n) => n.endsWith('.seg')).length, 1, 'the empty/header-only segments are gone');
    assert.equal((await stat(join(dir, names.find((n) => n.endsWith('.seg')) as string))).size, size - 332, 'cut at the last whole record');
    const more = fill(s, 5, () => 'critical');
    await s.flush();
    const next = await drainAll(s);
    assert.deepEqual(next.map((r) => r.seq), [...more.keys()]);
    assert.ok((next[0] as SpoolRecord).seq > 50);
    await s.close();
    await rm(dir, { recursive: true });
  });

  test('garbage after the last record and bit rot inside a sealed segment: open never fails, bad data is skipped and counted', async () => {
    const dir = await tmp();
    let s = await Spool.open({ dir, segmentBytes: 8192 });
    fill(s, 120, (i) => (i % 2 ? 'bulk' : 'critical'), () => 400);
    await s.close();
    const segs = (await readdir(dir)).filter((n) => n.startsWith('bulk-')).sort();
    assert.ok(segs.length >= 3);
    // Flip a byte in the middle of the second bulk segment.
    const victim = join(dir, segs[1] as string);
    const buf = await readFile(victim);
    const mid = Math.floor(buf.length / 2);
    buf[mid] = (buf[mid] as number) ^ 0x55;
    await writeFile(victim, buf);
    // Random garbage after the tail of the last (reopened as open) critical segment.
    const crit = (await readdir(dir)).filter((n) => n.startsWith('critical-')).sort().at(-1) as string;
    const p = parseSegmentName(crit);
    assert.ok(p !== null);
    const open = join(dir, openSegmentName(p.cls, p.firstSeq));
    await rename(join(dir, crit), open);
    await appendFile(open, Buffer.from('\x07\x00\x00\x00garbage-garbage-garbage-garbage-garbage'));
    // And a corrupt position file: both slots garbage.
    await writeFile(join(dir, 'position'), Buffer.alloc(5000, 0x42));
    s = await Spool.open({ dir, segmentBytes: 8192 });
    const recs = await drainAll(s);
    assertInOrder(recs);
    const st = s.stats();
    assert.equal(st.corruptRecords, 1, 'one bad record skipped (with the rest of its segment)');
    assert.ok(st.truncatedBytes > 0);
    assert.ok(st.positionErrors > 0);
    const crits = recs.filter((r) => r.cls === 'critical');
    assert.equal(crits.length, 60, 'all critical records survived');
    assert.ok(recs.length > 60 + 40, 'bulk outside the damaged segment survived');
    await s.close();
    await rm(dir, { recursive: true });
  });

  test('full disk (ENOSPC): no crash, the error is counted, bulk gives way, critical is kept, recovery when space returns', async () => {
    const dir = await tmp();
    const capacity = { bytes: 48 * 1024 };
    const fs = quotaFs(capacity);
    const s = await Spool.open({ dir, fs, maxTotalBytes: 8 << 20, segmentBytes: 8 * 1024 });
    const crit: number[] = [];
    for (let round = 0; round < 40; round++) {
      const m = fill(s, 10, (i) => (i === 0 ? 'critical' : 'bulk'), () => 600);
      crit.push(...[...m].filter(([, c]) => c === 'critical').map(([q]) => q));
      await s.flush();
      assert.ok(fs.used() <= capacity.bytes);
    }
    const st = s.stats();
    assert.ok(st.writeErrors > 0);
    assert.match(st.lastError ?? '', /ENOSPC/);
    assert.ok(st.dropped.bulk.records > 0);
    assert.equal(st.dropped.critical.records, 0);
    const recs = await drainAll(s);
    assertInOrder(recs);
    assert.deepEqual(recs.filter((r) => r.cls === 'critical').map((r) => r.seq), crit, 'every critical record is on disk, in order');
    // Ack what we have (frees space even on a full disk: the position file is rewritten in place).
    assert.equal(await s.ack(s.lastAppendedSeq), true);
    capacity.bytes = 1 << 20;
    const more = fill(s, 20, () => 'normal');
    await s.flush();
    assert.deepEqual((await drainAll(s)).map((r) => r.seq), [...more.keys()]);
    assert.equal(s.stats().durableSeq, s.lastAppendedSeq);
    await s.close();
    await rm(dir, { recursive: true });
  });

  test('100 kill -9 cycles at random points while spooling: always reopens, acked never returns, fsynced never lost', async () => {
    const dir = await tmp();
    const r = await runKillCycles({ dir, cycles: 100, seed: Number(process.env['MAVMQ_SPOOL_SEED'] ?? 20240611) });
    if (process.env['MAVMQ_SPOOL_TIMING']) console.log(r);
    assert.equal(r.cycles, 100);
    assert.ok(r.tornTails >= 10, `only ${r.tornTails} kills left a torn tail to recover`);
    assert.ok(r.appended > 2000, `children appended ${r.appended} records`);
    assert.ok(r.acked > 500, `children acknowledged up to ${r.acked}`);
    assert.ok(r.checkedDurable > 1000, `durable records checked: ${r.checkedDurable}`);
    assert.ok(r.checkedByTime > 0, `records checked by the 1 s rule: ${r.checkedByTime}`);
    await rm(dir, { recursive: true });
  });
});
