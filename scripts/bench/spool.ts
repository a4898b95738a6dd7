/**
 * Spool benchmark: store-and-forward throughput in envelopes (frame batches of ~1 KB) per second,
 * and disk bytes per telemetry byte, for the segment log (src/uplink/spool.ts) and the designs it
 * was chosen over. Also the per-frame cost of the link budget. Run alone:
 *   node --import tsx scripts/bench/spool.ts
 * No native modules: better-sqlite3 is not installed (it compiles SQLite from source) and
 * node:sqlite needs Node >= 22.5, so SQLite is discussed, not measured.
 */
import { mkdtemp, open, readdir, readFile, rm, stat, unlink, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool } from '../../src/uplink/spool.js';
import { LinkBudget } from '../../src/uplink/budget.js';
import { describeFrame } from '../../src/mavlink/framer.js';
import { telemetryFrames } from './framer.js';

export interface StoreResult {
  design: string;
  writeBatchesPerS: number;
  drainBatchesPerS: number | null;
  /** Allocated disk bytes (st_blocks) per byte of MAVLink frames stored. */
  diskPerTelemetryByte: number;
  fsyncs: number;
}

export interface SpoolBench {
  batches: number;
  batchBytes: number;
  /** Group commit every `commitEvery` batches (the daemon commits once per second). */
  commitEvery: number;
  results: StoreResult[];
  budgetNsPerFrameOff: number;
  budgetNsPerFrameOn: number;
}

function batches(count: number, targetBytes = 1024): Buffer[] {
  const frames = telemetryFrames(4096);
  const out: Buffer[] = [];
  let i = 0;
  for (let b = 0; b < count; b++) {
    const parts: Buffer[] = [];
    let n = 0;
    while (n < targetBytes) {
      const f = frames[i++ % frames.length] as Buffer;
      parts.push(f);
      n += f.length;
    }
    out.push(Buffer.concat(parts));
  }
  return out;
}

async function allocated(dir: string): Promise<number> {
  let n = 0;
  for (const name of await readdir(dir)) n += (await stat(join(dir, name))).blocks * 512;
  return n;
}

async function benchSegmentLog(data: Buffer[], commitEvery: number, telemetry: number): Promise<StoreResult> {
  const dir = await mkdtemp(join(tmpdir(), 'mavmq-bench-spool-'));
  const s = await Spool.open({ dir, maxTotalBytes: 1 << 30, syncIntervalMs: 10_000, maxPendingBytes: 64 << 20 });
  let t = performance.now();
  let fsyncs = 0;
  for (let i = 0; i < data.length; i++) {
    s.append(i % 10 === 0 ? 'critical' : 'bulk', data[i] as Buffer);
    if (i % commitEvery === commitEvery - 1) {
      await s.flush();
      fsyncs += 2;
    }
  }
  await s.flush();
  const writeS = (performance.now() - t) / 1000;
  const disk = await allocated(dir);
  t = performance.now();
  let got = 0;
  for (;;) {
    const recs = await s.next(64 * 1024);
    if (recs.length === 0) break;
    got += recs.length;
    await s.ack((recs[recs.length - 1] as { seq: number }).seq);
  }
  const drainS = (performance.now() - t) / 1000;
  if (got !== data.length) throw new Error(`segment log drained ${got} of ${data.length}`);
  await s.close();
  await rm(dir, { recursive: true });
  return { design: 'segment log (chosen): CRC records, 3 class chains, group commit', writeBatchesPerS: data.length / writeS, drainBatchesPerS: got / drainS, diskPerTelemetryByte: disk / telemetry, fsyncs };
}

async function benchSegmentLogSyncEach(data: Buffer[], telemetry: number): Promise<StoreResult> {
  const n = Math.min(data.length, 2000);
  const dir = await mkdtemp(join(tmpdir(), 'mavmq-bench-spool-'));
  const s = await Spool.open({ dir, maxTotalBytes: 1 << 30, syncIntervalMs: 10_000 });
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    s.append('bulk', data[i] as Buffer);
    await s.flush();
  }
  const writeS = (performance.now() - t) / 1000;
  const disk = await allocated(dir);
  await s.close();
  await rm(dir, { recursive: true });
  return { design: 'segment log, fdatasync per batch (no group commit)', writeBatchesPerS: n / writeS, drainBatchesPerS: null, diskPerTelemetryByte: (disk / telemetry) * (data.length / n), fsyncs: n };
}

async function benchFilePerBatch(data: Buffer[], commitEvery: number, telemetry: number): Promise<StoreResult> {
  const dir = await mkdtemp(join(tmpdir(), 'mavmq-bench-spool-'));
  let t = performance.now();
  let fsyncs = 0;
  let pending: string[] = [];
  const commit = async (): Promise<void> => {
    for (const name of pending) {
      const fh = await open(join(dir, name), 'r');
      await fh.datasync();
      await fh.close();
      fsyncs++;
    }
    const d = await open(dir, 'r');
    await d.sync();
    await d.close();
    fsyncs++;
    pending = [];
  };
  for (let i = 0; i < data.length; i++) {
    const name = `${String(i + 1).padStart(12, '0')}.batch`;
    await writeFile(join(dir, name), data[i] as Buffer);
    pending.push(name);
    if (i % commitEvery === commitEvery - 1) await commit();
  }
  await commit();
  const writeS = (performance.now() - t) / 1000;
  const disk = await allocated(dir);
  t = performance.now();
  const names = (await readdir(dir)).sort();
  for (const name of names) {
    await readFile(join(dir, name));
    await unlink(join(dir, name));
  }
  const drainS = (performance.now() - t) / 1000;
  await rm(dir, { recursive: true });
  return { design: 'one file per batch (maildir-style queue)', writeBatchesPerS: data.length / writeS, drainBatchesPerS: names.length / drainS, diskPerTelemetryByte: disk / telemetry, fsyncs };
}

async function benchJsonLines(data: Buffer[], commitEvery: number, telemetry: number): Promise<StoreResult> {
  const dir = await mkdtemp(join(tmpdir(), 'mavmq-bench-spool-'));
  const file = join(dir, 'spool.jsonl');
  const t = performance.now();
  let lines: string[] = [];
  let fsyncs = 0;
  const commit = async (): Promise<void> => {
    await appendFile(file, lines.join(''));
    const fh = await open(file, 'r');
    await fh.datasync();
    await fh.close();
    fsyncs++;
    lines = [];
  };
  for (let i = 0; i < data.length; i++) {
    lines.push(`${JSON.stringify({ seq: i + 1, cls: 'bulk', t: Date.now(), b: (data[i] as Buffer).toString('base64') })}\n`);
    if (i % commitEvery === commitEvery - 1) await commit();
  }
  await commit();
  const writeS = (performance.now() - t) / 1000;
  const disk = await allocated(dir);
  await rm(dir, { recursive: true });
  return { design: 'JSON lines, base64 bodies (no CRC, no per-class drop)', writeBatchesPerS: data.length / writeS, drainBatchesPerS: null, diskPerTelemetryByte: disk / telemetry, fsyncs };
}

function benchBudget(): { off: number; on: number } {
  const frames = telemetryFrames(100_000).map((b) => describeFrame(b));
  const measure = (b: LinkBudget): number => {
    let t = 0;
    let passed = 0;
    const start = process.hrtime.bigint();
    for (let r = 0; r < 5; r++) {
      for (const f of frames) {
        t += 0.2;
        if (b.offer(f, t)) passed++;
        if ((passed & 63) === 0) b.drain(t);
      }
    }
    return Number(process.hrtime.bigint() - start) / (5 * frames.length);
  };
  measure(new LinkBudget(undefined));
  return {
    off: measure(new LinkBudget(undefined)),
    on: measure(new LinkBudget({ bytesPerSecond: 6000, messageRatesHz: { ATTITUDE: 10, RAW_IMU: 2 } })),
  };
}

export async function benchSpool(count = 20_000, commitEvery = 50): Promise<SpoolBench> {
  const data = batches(count);
  const telemetry = data.reduce((n, b) => n + b.length, 0);
  const results: StoreResult[] = [];
  results.push(await benchSegmentLog(data, commitEvery, telemetry));
  results.push(await benchSegmentLogSyncEach(data, telemetry));
  results.push(await benchFilePerBatch(data.slice(0, Math.min(count, 5000)), commitEvery, data.slice(0, Math.min(count, 5000)).reduce((n, b) => n + b.length, 0)));
  results.push(await benchJsonLines(data, commitEvery, telemetry));
  const b = benchBudget();
  return { batches: count, batchBytes: Math.round(telemetry / count), commitEvery, results, budgetNsPerFrameOff: b.off, budgetNsPerFrameOn: b.on };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchSpool();
  const fmt = (n: number | null, d = 0): string => (n === null ? '-' : n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
  console.log(`spool bench: ${r.batches} batches of ~${r.batchBytes} B, group commit every ${r.commitEvery} batches, node ${process.version}`);
  for (const x of r.results) {
    console.log(`  ${x.design.padEnd(66)} write ${fmt(x.writeBatchesPerS).padStart(9)}/s  drain ${fmt(x.drainBatchesPerS).padStart(9)}/s  disk/telemetry ${fmt(x.diskPerTelemetryByte, 3)}  fsyncs ${x.fsyncs}`);
  }
  console.log(`  link budget per frame: ${fmt(r.budgetNsPerFrameOff, 1)} ns disabled, ${fmt(r.budgetNsPerFrameOn, 1)} ns with bytes + rate caps`);
}
