import { open, readdir, stat, unlink, mkdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../obs/logger.js';
import { frameLengthAt } from './framer.js';

/**
 * Flight recorder: every frame into rotating .tlog files in the format MAVProxy and Mission Planner
 * read (per frame: 8-byte big-endian microseconds since the Unix epoch, then the raw frame).
 * Frames are batched in memory and written + fdatasync'ed every `flushIntervalMs` (default 1 s),
 * so a power cut loses at most about that much. Files are named with a monotonically increasing
 * index (boards without an RTC boot in 1970, so names must not rely on the clock to sort).
 */
export interface TlogOptions {
  dir: string;
  maxFileBytes: number;
  maxTotalBytes: number;
  flushIntervalMs: number;
  /** In-memory bound between flushes; beyond it frames are dropped and counted. */
  maxBufferedBytes?: number;
  /** Prefix for file names, e.g. the vehicle id on the ground. */
  prefix?: string;
  logger: Logger;
  nowUs?: () => bigint;
}

export interface TlogStats {
  file: string | null;
  framesWritten: number;
  bytesWritten: number;
  framesDropped: number;
  filesDeleted: number;
  writeErrors: number;
}

const NAME_RE = /^(.*?)(\d{6})-.*\.tlog$/;

export class TlogWriter {
  private fh: FileHandle | null = null;
  private fileName: string | null = null;
  private fileBytes = 0;
  private index = 0;
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private readonly maxBufferedBytes: number;
  private readonly nowUs: () => bigint;
  private readonly counters: TlogStats = { file: null, framesWritten: 0, bytesWritten: 0, framesDropped: 0, filesDeleted: 0, writeErrors: 0 };

  constructor(private readonly opts: TlogOptions) {
    this.maxBufferedBytes = opts.maxBufferedBytes ?? 8 * 1024 * 1024;
    this.nowUs = opts.nowUs ?? (() => BigInt(Date.now()) * 1000n);
  }

  async start(signal: AbortSignal): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true });
    const existing = await this.listFiles();
    this.index = existing.reduce((m, f) => Math.max(m, f.index), 0) + 1;
    await this.openNext();
    this.timer = setInterval(() => void this.flush(), this.opts.flushIntervalMs);
    this.timer.unref();
    signal.addEventListener('abort', () => void this.stop(), { once: true });
  }

  /** Record one frame (hot path: one small allocation for the timestamp, no I/O). */
  write(frame: Uint8Array): void {
    if (this.fh === null) return;
    const rec = Buffer.allocUnsafe(8 + frame.length);
    rec.writeBigUInt64BE(this.nowUs(), 0);
    rec.set(frame, 8);
    if (this.bufferedBytes + rec.length > this.maxBufferedBytes) {
      this.counters.framesDropped++;
      return;
    }
    this.chunks.push(rec);
    this.bufferedBytes += rec.length;
  }

  stats(): TlogStats {
    return { ...this.counters, file: this.fileName };
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
    const fh = this.fh;
    this.fh = null;
    await fh?.close();
  }

  /** Write what is buffered and make it durable. One flush at a time. */
  flush(): Promise<void> {
    this.flushing ??= this.doFlush().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async doFlush(): Promise<void> {
    if (this.fh === null || this.chunks.length === 0) return;
    const chunks = this.chunks;
    const frames = chunks.length;
    this.chunks = [];
    this.bufferedBytes = 0;
    const data = Buffer.concat(chunks);
    try {
      await this.fh.write(data);
      await this.fh.datasync();
      this.fileBytes += data.length;
      this.counters.framesWritten += frames;
      this.counters.bytesWritten += data.length;
      if (this.fileBytes >= this.opts.maxFileBytes) await this.rotate();
    } catch (err) {
      // A full or failing disk must never take the router down: count, log once per flush, go on.
      this.counters.writeErrors++;
      this.counters.framesDropped += frames;
      this.opts.logger.warn({ err }, 'tlog write failed');
    }
  }

  private async rotate(): Promise<void> {
    await this.fh?.close();
    this.fh = null;
    await this.openNext();
  }

  private async openNext(): Promise<void> {
    const stamp = new Date().toISOString().replace(/[:.]/g, '').slice(0, 15);
    const name = `${this.opts.prefix ?? ''}${String(this.index).padStart(6, '0')}-${stamp}.tlog`;
    this.index++;
    this.fh = await open(join(this.opts.dir, name), 'a', 0o640);
    this.fileName = name;
    this.fileBytes = 0;
    await this.enforceTotal();
  }

  private async listFiles(): Promise<{ name: string; index: number }[]> {
    const names = await readdir(this.opts.dir);
    const prefix = this.opts.prefix ?? '';
    const out: { name: string; index: number }[] = [];
    for (const name of names) {
      const m = NAME_RE.exec(name);
      if (m && m[1] === prefix) out.push({ name, index: Number(m[2]) });
    }
    return out.sort((a, b) => a.index - b.index);
  }

  /** Oldest-first deletion until the directory is under its cap (the current file is never deleted). */
  private async enforceTotal(): Promise<void> {
    const files = await this.listFiles();
    const sizes = await Promise.all(files.map(async (f) => (await stat(join(this.opts.dir, f.name)).catch(() => null))?.size ?? 0));
    let total = sizes.reduce((a, b) => a + b, 0);
    for (let i = 0; i < files.length && total > this.opts.maxTotalBytes; i++) {
      const f = files[i];
      if (f === undefined || f.name === this.fileName) continue;
      await unlink(join(this.opts.dir, f.name)).catch(() => undefined);
      total -= sizes[i] ?? 0;
      this.counters.filesDeleted++;
    }
  }
}

/** Read a tlog back into (timestampUs, frame) records; stops at a torn tail (power cut). */
export function parseTlog(data: Buffer): { timestampUs: bigint; frame: Buffer }[] {
  const out: { timestampUs: bigint; frame: Buffer }[] = [];
  let i = 0;
  while (i + 8 < data.length) {
    const n = frameLengthAt(data, i + 8);
    if (n < 0 || i + 8 + n > data.length) break;
    out.push({ timestampUs: data.readBigUInt64BE(i), frame: data.subarray(i + 8, i + 8 + n) });
    i += 8 + n;
  }
  return out;
}
