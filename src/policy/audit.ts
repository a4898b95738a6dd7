import { mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorCodes, MavmqError } from '../errors.js';
import type { VerdictRecord } from './engine.js';

/**
 * The policy audit log: one JSON object per line, append-only, bounded on disk (the live file stays
 * under maxBytes; when the next line would pass it, the file becomes FILE.1, replacing the previous
 * .1, and a new file starts: at most 2 x maxBytes in all). Lines are queued and written in order by
 * one writer; fsync runs on an interval when something was written. write() never throws and never
 * blocks: on I/O trouble it counts, reports through onError, drops when its queue is full, and tries
 * the file again on the next write.
 */
export interface AuditLogOptions {
  file: string;
  /** Size cap of the live file, bytes. Default 16 MiB. */
  maxBytes?: number;
  /** fsync interval, ms. Default 1000. */
  fsyncIntervalMs?: number;
  /** Queue cap, bytes (lines past it are dropped and counted). Default 1 MiB. */
  maxQueueBytes?: number;
  /** Also write routine allowed frames (GCS heartbeats, RC override...). Default false: decisions only. */
  includeRoutine?: boolean;
  onError?: (err: Error) => void;
}

export interface AuditLogStats {
  file: string;
  lines: number;
  bytes: number;
  dropped: number;
  skippedRoutine: number;
  rotations: number;
  fsyncs: number;
  errors: number;
}

/** Longest line written; a longer record is replaced by a marker line saying so. */
export const MAX_AUDIT_LINE_BYTES = 4096;

export class AuditLog {
  private readonly maxBytes: number;
  private readonly maxQueueBytes: number;
  private readonly fsyncIntervalMs: number;
  private fh: FileHandle | null = null;
  private size = 0;
  private queue: string[] = [];
  private queuedBytes = 0;
  private draining: Promise<void> | null = null;
  private dirty = false;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly counters = { lines: 0, bytes: 0, dropped: 0, skippedRoutine: 0, rotations: 0, fsyncs: 0, errors: 0 };

  constructor(private readonly opts: AuditLogOptions) {
    this.maxBytes = Math.max(MAX_AUDIT_LINE_BYTES, opts.maxBytes ?? 16 * 1024 * 1024);
    this.maxQueueBytes = Math.max(MAX_AUDIT_LINE_BYTES, opts.maxQueueBytes ?? 1024 * 1024);
    this.fsyncIntervalMs = opts.fsyncIntervalMs ?? 1000;
  }

  /** Open (creating the directory); rejects with E_POLICY_INVALID if the file cannot be opened. */
  async start(): Promise<void> {
    try {
      await this.openFile();
    } catch (err) {
      throw new MavmqError(ErrorCodes.POLICY_INVALID, `cannot open the policy audit log ${this.opts.file}: ${(err as Error).message}`, {
        cause: err, problems: [{ path: this.opts.file, message: (err as Error).message, hint: 'the directory must be writable by the mavmq user' }],
      });
    }
    this.timer = setInterval(() => this.kick(true), this.fsyncIntervalMs);
    this.timer.unref();
  }

  /** Queue one record. Never throws. */
  write(rec: VerdictRecord): void {
    try {
      if (this.closed) return;
      if (rec.routine && this.opts.includeRoutine !== true) {
        this.counters.skippedRoutine++;
        return;
      }
      let line = `${JSON.stringify(rec)}\n`;
      if (Buffer.byteLength(line) > MAX_AUDIT_LINE_BYTES) {
        line = `${JSON.stringify({ time: rec.time, session: rec.session, rule: rec.rule, verdict: rec.verdict, dryRun: rec.dryRun, truncated: true })}\n`;
      }
      const n = Buffer.byteLength(line);
      if (this.queuedBytes + n > this.maxQueueBytes) {
        this.counters.dropped++;
        return;
      }
      this.queue.push(line);
      this.queuedBytes += n;
      this.kick(false);
    } catch (err) {
      this.fail(err);
    }
  }

  /** Everything queued so far is written and fsynced when this resolves. Never rejects. */
  async flush(): Promise<void> {
    for (let i = 0; i < 100 && (this.draining !== null || this.queue.length > 0); i++) {
      this.kick(false);
      await this.draining;
    }
    await this.sync();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
    this.closed = true;
    const fh = this.fh;
    this.fh = null;
    await fh?.close().catch((err: unknown) => this.fail(err));
  }

  stats(): AuditLogStats {
    return { file: this.opts.file, ...this.counters };
  }

  private kick(fsync: boolean): void {
    if (this.draining !== null) return;
    if (this.queue.length === 0 && !(fsync && this.dirty)) return;
    this.draining = this.drain(fsync).then((ok) => {
      this.draining = null;
      // Lines queued meanwhile; after a failure, the next write() tries again (no hot retry loop).
      if (ok && this.queue.length > 0) this.kick(false);
    });
  }

  /** The one writer: lines in order, rotating before a line would pass maxBytes. Never rejects; false on failure. */
  private async drain(fsync: boolean): Promise<boolean> {
    let inFlight = 0; // lines taken off the queue, not yet written
    try {
      if (this.fh === null) await this.openFile();
      while (this.queue.length > 0) {
        const lines = this.queue;
        this.queue = [];
        this.queuedBytes = 0;
        inFlight = lines.length;
        let chunk = '';
        let chunkBytes = 0;
        let chunkLines = 0;
        for (const line of lines) {
          const n = Buffer.byteLength(line);
          if (this.size + chunkBytes + n > this.maxBytes) {
            await this.append(chunk, chunkBytes, chunkLines);
            inFlight -= chunkLines;
            chunk = '';
            chunkBytes = chunkLines = 0;
            await this.rotate();
          }
          chunk += line;
          chunkBytes += n;
          chunkLines++;
        }
        await this.append(chunk, chunkBytes, chunkLines);
        inFlight = 0;
      }
      if (fsync) await this.sync();
      return true;
    } catch (err) {
      this.fail(err);
      // What could not be written is dropped (memory stays bounded); the next write tries the file
      // again (it may have been removed, or the disk freed).
      this.counters.dropped += inFlight + this.queue.length;
      this.queue = [];
      this.queuedBytes = 0;
      const fh = this.fh;
      this.fh = null;
      await fh?.close().catch(() => undefined);
      return false;
    }
  }

  private async append(chunk: string, bytes: number, lines: number): Promise<void> {
    if (bytes === 0 || this.fh === null) return;
    await this.fh.write(chunk);
    this.size += bytes;
    this.counters.bytes += bytes;
    this.counters.lines += lines;
    this.dirty = true;
  }

  private async rotate(): Promise<void> {
    await this.sync();
    const fh = this.fh;
    this.fh = null;
    await fh?.close();
    await rename(this.opts.file, `${this.opts.file}.1`);
    this.counters.rotations++;
    await this.openFile();
  }

  private async sync(): Promise<void> {
    if (!this.dirty || this.fh === null) return;
    try {
      this.dirty = false;
      await this.fh.datasync();
      this.counters.fsyncs++;
    } catch (err) {
      this.fail(err);
    }
  }

  private async openFile(): Promise<void> {
    await mkdir(dirname(this.opts.file), { recursive: true, mode: 0o750 });
    const fh = await open(this.opts.file, 'a', 0o640);
    this.size = (await fh.stat()).size;
    this.fh = fh;
  }

  private fail(err: unknown): void {
    this.counters.errors++;
    try {
      this.opts.onError?.(err instanceof Error ? err : new Error(String(err)));
    } catch {
      // the caller's logger failing must not reach the caller either
    }
  }
}
