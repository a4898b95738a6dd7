import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../obs/logger.js';
import { MavmqError, ErrorCodes } from '../errors.js';
import { nodeSpoolFs, type SpoolFile, type SpoolFs } from './spool-fs.js';
import {
  CLASS_NAMES, POSITION_FILE, POSITION_FILE_BYTES, POSITION_SLOT_OFFSETS, SEGMENT_HEADER_BYTES,
  classCode, decodePosition, decodeSegmentHeader, encodePositionSlot, encodeRecord, encodeSegmentHeader,
  openSegmentName, parseRecord, parseSegmentName, sealedSegmentName,
  type Position, type SpoolClassCode, type SpoolClassName,
} from './spool-format.js';

export type { SpoolClassName } from './spool-format.js';

/**
 * Store-and-forward for the air uplink while the broker (or the ground) is unreachable: PLAINTEXT
 * frame batches in append-only, CRC'd segment files on the vehicle's own disk, drained oldest-first
 * and sealed under whatever session is current at drain time (an envelope cannot outlive its
 * session, see docs/PROTOCOL.md §10). Format: spool-format.ts.
 *
 * - Three segment chains, one per class (critical, normal, bulk): `seq` is global and increasing,
 *   so draining merges the chains back into append order.
 * - Appends are memory-only and synchronous; a group commit (write + fdatasync) runs every
 *   `syncIntervalMs` (default 1 s), so a kill -9 or power cut loses at most about that much.
 * - Bounded: `maxTotalBytes` on disk + in memory. Beyond it whole oldest segments are dropped,
 *   bulk first, then normal, critical last (counted by class). A full disk (ENOSPC) is not a crash:
 *   the partial write is cut back, the oldest bulk/normal segment dropped, the write retried, the
 *   error counted; what cannot be written stays in memory (bounded by `maxPendingBytes`, bulk
 *   dropped first) for the next commit.
 * - Open never fails on content: open segments are scanned and a torn tail truncated at the first
 *   bad record; sealed ones are trusted by name and each record's CRC checked when read (a bad
 *   record skips the rest of its segment, counted). Unknown files are left alone.
 * - Drain: `next(maxBytes)` returns records after the read cursor, `ack(uptoSeq)` persists the
 *   drain position (two-slot position file, in place; durable when the promise resolves) and
 *   deletes fully acknowledged segments; `rewind()` goes back to the first unacknowledged record
 *   (new session, reconnect, ack timeout). Acknowledged records are never returned again, also
 *   after a restart; unacknowledged ones are never lost except by the drop policy.
 * - Sequence numbers are leased in blocks (the lease is durable before any record using it hits
 *   a segment), so a seq is never reused, even after a power cut ate unsynced records.
 */

export const spoolSchema = z.strictObject({
  dir: z.string().min(1),
  /** Cap on segment bytes on disk plus records waiting in memory. */
  maxTotalBytes: z.number().int().min(64 * 1024).default(256 * 1024 * 1024),
  /** Segment file size (roll-over point). Clamped to maxTotalBytes / 8 so the drop unit stays small. */
  segmentBytes: z.number().int().min(4096).max(64 * 1024 * 1024).default(4 * 1024 * 1024),
  /** Group commit interval: what a power cut or kill -9 can lose. */
  syncIntervalMs: z.number().int().min(10).max(10_000).default(1000),
  /** Memory bound for records not yet written (grows only while the disk fails). */
  maxPendingBytes: z.number().int().min(16 * 1024).default(4 * 1024 * 1024),
});
export type SpoolConfig = z.infer<typeof spoolSchema>;
export type SpoolConfigInput = z.input<typeof spoolSchema>;

export interface SpoolClock {
  /** Wall clock (Date.now()): may be 1970 on a board without RTC; used only across reboots. */
  wallMs(): number;
  /** Monotonic ms since boot (CLOCK_MONOTONIC): ages within one boot. */
  monoMs(): number;
}

export type SpoolOptions = SpoolConfigInput & {
  logger?: Logger;
  /** File operations (tests inject faults). */
  fs?: SpoolFs;
  clock?: SpoolClock;
  /** 16 bytes identifying this boot (default: /proc/sys/kernel/random/boot_id). */
  bootId?: Buffer;
};

export interface SpoolRecord {
  seq: number;
  cls: SpoolClassName;
  wallMs: number;
  monoMs: number;
  /** Age now by this side's own clocks: monotonic within the boot, wall clock across reboots when it looks set, else null. */
  ageMs: number | null;
  body: Buffer;
}

interface ClassCounts {
  records: number;
  bytes: number;
}

export interface SpoolStats {
  dir: string;
  /** Random id of this spool's position file: changes when the spool starts over (the ground resets dedup). */
  spoolId: string;
  bytes: number;
  diskBytes: number;
  pendingBytes: number;
  /** Records on disk (including acknowledged ones awaiting their segment's deletion) and in memory. */
  records: number;
  segments: number;
  lastSeq: number;
  ackedSeq: number;
  durableAckedSeq: number;
  /** Every record with seq <= durableSeq that was not dropped is fdatasynced. */
  durableSeq: number;
  deliveredSeq: number;
  dropped: Record<SpoolClassName, ClassCounts>;
  writeErrors: number;
  syncErrors: number;
  positionErrors: number;
  lastError: string | null;
  corruptRecords: number;
  truncatedBytes: number;
  recoveredSegments: number;
}

interface Segment {
  cls: SpoolClassCode;
  name: string;
  firstSeq: number;
  lastSeq: number;
  records: number;
  /** Valid bytes (header + whole records): readers stop here; a failed write is cut back to it. */
  size: number;
  sealed: boolean;
  writer: SpoolFile | null;
  /** A write failed and could not be cut back: never append to or seal it again. */
  dirty: boolean;
  unsynced: boolean;
}

interface Pending {
  seq: number;
  buf: Buffer;
}

/** A record read ahead of delivery, with the boot id of its segment (for its age). */
interface Ahead {
  rec: SpoolRecord;
  boot: Buffer | null;
}

interface Chain {
  cls: SpoolClassCode;
  segments: Segment[];
  active: Segment | null;
  pending: Pending[];
  // reader
  rseg: Segment | null;
  roffset: number;
  reader: SpoolFile | null;
  readerSeg: Segment | null;
  readerBoot: Buffer | null;
  ahead: Ahead[];
  lastReadSeq: number;
}

const CRITICAL: SpoolClassCode = 0;
const NORMAL: SpoolClassCode = 1;
const BULK: SpoolClassCode = 2;
const DROP_ORDER: readonly SpoolClassCode[] = [BULK, NORMAL, CRITICAL];
const LEASE_STEP = 65_536;
const READ_BLOCK = 64 * 1024;
const MAX_BODY_BYTES = 1024 * 1024;
const SANE_WALL_MS = Date.UTC(2020, 0, 1);

function readBootId(): Buffer {
  try {
    const hex = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().replace(/-/g, '');
    if (/^[0-9a-f]{32}$/i.test(hex)) return Buffer.from(hex, 'hex');
  } catch {
    // not Linux: a random id per process (ages across restarts then fall back to the wall clock)
  }
  return randomBytes(16);
}

const defaultClock: SpoolClock = {
  wallMs: () => Date.now(),
  monoMs: () => Number(process.hrtime.bigint() / 1000n) / 1000,
};

function errCode(err: unknown): string {
  return (err as { code?: unknown } | null)?.code?.toString() ?? '';
}

export class Spool {
  readonly dir: string;
  private readonly cfg: SpoolConfig;
  private readonly segmentBytes: number;
  private readonly fs: SpoolFs;
  private readonly clock: SpoolClock;
  private readonly bootId: Buffer;
  private readonly log: Logger | undefined;
  private readonly chains: Chain[];
  private posFile: SpoolFile | null = null;
  private pos: Position = { gen: 0, ackedSeq: 0, seqLease: 0, spoolId: Buffer.alloc(8) };

  private lastSeq = 0;
  private ackedSeq = 0;
  private durableSeq = 0;
  private deliveredSeq = 0;
  private diskBytes = 0;
  private pendingBytes = 0;
  private inFlightBytes = 0;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private tail: Promise<unknown> = Promise.resolve();
  private flushQueued: Promise<void> | null = null;
  private readonly dropped: Record<SpoolClassName, ClassCounts> = {
    critical: { records: 0, bytes: 0 }, normal: { records: 0, bytes: 0 }, bulk: { records: 0, bytes: 0 },
  };
  private readonly counters = { writeErrors: 0, syncErrors: 0, positionErrors: 0, corruptRecords: 0, truncatedBytes: 0, recoveredSegments: 0 };
  private lastError: string | null = null;

  private constructor(opts: SpoolOptions) {
    const { logger, fs, clock, bootId, ...config } = opts;
    this.cfg = spoolSchema.parse(config);
    this.dir = this.cfg.dir;
    this.segmentBytes = Math.max(4096, Math.min(this.cfg.segmentBytes, Math.floor(this.cfg.maxTotalBytes / 8)));
    this.fs = fs ?? nodeSpoolFs;
    this.clock = clock ?? defaultClock;
    this.bootId = bootId ?? readBootId();
    this.log = logger;
    this.chains = [CRITICAL, NORMAL, BULK].map((cls) => ({
      cls, segments: [], active: null, pending: [], rseg: null, roffset: 0, reader: null, readerSeg: null, readerBoot: null, ahead: [], lastReadSeq: 0,
    }));
  }

  /**
   * Open (or create) the spool in `dir`: recovers whatever a crash left. Throws only when the
   * directory itself is unusable (cannot be created or listed); content problems never throw.
   */
  static async open(opts: SpoolOptions): Promise<Spool> {
    const s = new Spool(opts);
    await s.init();
    s.timer = setInterval(() => void s.flush(), s.cfg.syncIntervalMs);
    s.timer.unref();
    return s;
  }

  /**
   * Store one plaintext batch (at most 1 MiB; a batch larger than a segment gets a segment of its own).
   * Synchronous, memory only (written at the next group commit). Returns its seq.
   */
  append(cls: SpoolClassName, body: Uint8Array, wallMs = this.clock.wallMs()): number {
    if (this.closed) throw new MavmqError(ErrorCodes.INTERNAL, 'spool is closed');
    if (body.length > MAX_BODY_BYTES) throw new MavmqError(ErrorCodes.INTERNAL, `spool record of ${body.length} bytes (at most ${MAX_BODY_BYTES})`);
    const seq = ++this.lastSeq;
    const buf = encodeRecord(seq, wallMs, this.clock.monoMs(), body);
    const chain = this.chains[classCode(cls)] as Chain;
    chain.pending.push({ seq, buf });
    this.pendingBytes += buf.length;
    if (this.pendingBytes - this.inFlightBytes > this.cfg.maxPendingBytes) this.dropPendingForMemory();
    if (this.pendingBytes >= Math.min(1024 * 1024, this.cfg.maxPendingBytes / 4) && this.flushQueued === null) void this.flush();
    return seq;
  }

  /** Group commit now: write what is pending and fdatasync it. Never rejects on disk errors (see stats). */
  flush(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.flushQueued ??= this.run(async () => {
      this.flushQueued = null;
      await this.doFlush();
    });
    return this.flushQueued;
  }

  /**
   * Up to about maxBytes of record bodies (at least one record when any is ready), oldest first,
   * after the read cursor. Only written records are returned: pending ones after the next commit.
   */
  next(maxBytes: number): Promise<SpoolRecord[]> {
    return this.run(() => this.doNext(maxBytes));
  }

  /**
   * Everything with seq <= uptoSeq was delivered: never return it again, persist that, and delete
   * segments that hold only acknowledged records. Resolves true once the position is durable.
   */
  ack(uptoSeq: number): Promise<boolean> {
    const upto = Math.min(Math.floor(uptoSeq), this.lastSeq);
    if (upto > this.ackedSeq) {
      this.ackedSeq = upto;
      for (const c of this.chains) while (c.ahead.length > 0 && (c.ahead[0] as Ahead).rec.seq <= upto) c.ahead.shift();
    }
    if (this.closed) return Promise.resolve(this.pos.ackedSeq >= upto);
    return this.run(async () => {
      if (this.pos.ackedSeq < this.ackedSeq) await this.writePosition(this.ackedSeq, this.pos.seqLease);
      await this.deleteAcked();
      return this.pos.ackedSeq >= upto;
    });
  }

  /** Deliver again from the first unacknowledged record (the receiver may have missed what followed). */
  rewind(): void {
    if (this.closed) return;
    void this.run(async () => {
      for (const c of this.chains) {
        await this.closeReader(c);
        c.rseg = null;
        c.roffset = 0;
        c.ahead = [];
        c.lastReadSeq = 0;
      }
      this.deliveredSeq = this.ackedSeq;
    });
  }

  /** Commit, seal the open segments and release the files. The spool cannot be used afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
    this.closed = true;
    await this.run(async () => {
      for (const c of this.chains) {
        await this.closeReader(c);
        if (c.active !== null) await this.seal(c);
      }
      await this.deleteAcked();
      await this.posFile?.close().catch(() => undefined);
      this.posFile = null;
    });
  }

  /** The seq of the newest record appended (the next append gets lastSeq + 1). */
  get lastAppendedSeq(): number {
    return this.lastSeq;
  }

  /** Hex identity of this spool (history bodies carry it: a new one tells the ground to start over). */
  get spoolId(): string {
    return this.pos.spoolId.toString('hex');
  }

  stats(): SpoolStats {
    let records = 0;
    let segments = 0;
    for (const c of this.chains) {
      segments += c.segments.length;
      records += c.pending.length;
      for (const s of c.segments) records += s.records;
    }
    return {
      dir: this.dir, spoolId: this.pos.spoolId.toString('hex'),
      bytes: this.diskBytes + this.pendingBytes, diskBytes: this.diskBytes, pendingBytes: this.pendingBytes,
      records, segments, lastSeq: this.lastSeq, ackedSeq: this.ackedSeq, durableAckedSeq: this.pos.ackedSeq,
      durableSeq: this.durableSeq, deliveredSeq: this.deliveredSeq,
      dropped: { critical: { ...this.dropped.critical }, normal: { ...this.dropped.normal }, bulk: { ...this.dropped.bulk } },
      ...this.counters, lastError: this.lastError,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Serialization: every disk operation runs in this one queue (appends never wait for it).

  private run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn);
    this.tail = p.catch(() => undefined);
    return p;
  }

  private fail(what: string, err: unknown, counter: 'writeErrors' | 'syncErrors' | 'positionErrors'): void {
    this.counters[counter]++;
    const msg = `${what}: ${(err as Error)?.message ?? String(err)}`;
    const n = this.counters[counter];
    if (this.lastError !== msg && (n === 1 || n % 100 === 0 || this.lastError === null)) this.log?.warn({ err: msg, count: n }, 'spool disk error');
    this.lastError = msg;
  }

  // ---------------------------------------------------------------------------------------------
  // Open and recovery

  private async init(): Promise<void> {
    let names: string[];
    try {
      await this.fs.mkdirp(this.dir);
      names = await this.fs.readdir(this.dir);
    } catch (err) {
      throw new MavmqError(ErrorCodes.CONFIG_INVALID, `cannot use spool directory ${this.dir}: ${(err as Error).message}`, {
        cause: err, problems: [{ path: 'spool.dir', message: (err as Error).message, hint: 'create it and make it writable by the mavmq user' }],
      });
    }
    const position = await this.readPosition();
    this.ackedSeq = position?.ackedSeq ?? 0;
    let maxSeq = Math.max(this.ackedSeq, position?.seqLease ?? 0);
    for (const name of names.sort()) {
      const parsed = parseSegmentName(name);
      if (parsed === null) continue;
      const seg = parsed.sealed
        ? await this.trustSealed(name, parsed.cls, parsed.firstSeq, parsed.lastSeq, parsed.records)
        : await this.recoverOpen(name, parsed.cls);
      if (seg === null) continue;
      if (seg.lastSeq <= this.ackedSeq) {
        await this.unlinkQuiet(seg.name);
        continue;
      }
      (this.chains[seg.cls] as Chain).segments.push(seg);
      this.diskBytes += seg.size;
      maxSeq = Math.max(maxSeq, seg.lastSeq);
    }
    for (const c of this.chains) c.segments.sort((a, b) => a.firstSeq - b.firstSeq);
    this.lastSeq = maxSeq;
    this.durableSeq = maxSeq;
    this.deliveredSeq = this.ackedSeq;
    if (position === null) {
      // No usable position: start a new spool identity; unacknowledged-or-not, everything left is resent (at least once).
      await this.createPosition(maxSeq);
    }
  }

  private async readPosition(): Promise<Position | null> {
    const path = join(this.dir, POSITION_FILE);
    let f: SpoolFile;
    try {
      f = await this.fs.open(path, 'rw');
    } catch (err) {
      if (errCode(err) !== 'ENOENT') this.fail('open position file', err, 'positionErrors');
      return null;
    }
    try {
      const buf = Buffer.alloc(POSITION_FILE_BYTES);
      let n = 0;
      while (n < buf.length) {
        const r = await f.read(buf, n, buf.length - n, n);
        if (r <= 0) break;
        n += r;
      }
      const p = decodePosition(buf.subarray(0, n));
      if (p === null || n < POSITION_FILE_BYTES) {
        this.fail('position file', new Error(p === null ? 'no valid slot' : 'short file'), 'positionErrors');
        if (p === null) {
          await f.close().catch(() => undefined);
          return null;
        }
        // Short (torn creation) but one slot valid: keep the state, rewrite the file whole.
        await f.close().catch(() => undefined);
        this.pos = p;
        await this.createPosition(p.seqLease, p.ackedSeq, p.spoolId, p.gen);
        return p;
      }
      this.posFile = f;
      this.pos = p;
      return p;
    } catch (err) {
      this.fail('read position file', err, 'positionErrors');
      await f.close().catch(() => undefined);
      return null;
    }
  }

  private async createPosition(seqLease: number, ackedSeq = this.ackedSeq, spoolId: Buffer = randomBytes(8), gen = 0): Promise<void> {
    const path = join(this.dir, POSITION_FILE);
    const next = { gen: gen + 1, ackedSeq, seqLease, spoolId };
    try {
      const f = await this.fs.open(path, 'create');
      const buf = Buffer.alloc(POSITION_FILE_BYTES);
      encodePositionSlot(next).copy(buf, POSITION_SLOT_OFFSETS[next.gen % 2] as number);
      await f.write(buf, 0);
      await f.datasync();
      await this.fs.syncDir(this.dir);
      this.posFile = f;
      this.pos = next;
    } catch (err) {
      this.fail('create position file', err, 'positionErrors');
      this.pos = { ...next, gen };
    }
  }

  /** Sealed: trust the name (records and seqs) and the size; CRCs are checked when read. */
  private async trustSealed(name: string, cls: SpoolClassCode, firstSeq: number, lastSeq: number, records: number): Promise<Segment | null> {
    try {
      const size = await this.fs.size(join(this.dir, name));
      if (size <= SEGMENT_HEADER_BYTES) {
        await this.unlinkQuiet(name);
        return null;
      }
      return { cls, name, firstSeq, lastSeq, records, size, sealed: true, writer: null, dirty: false, unsynced: false };
    } catch (err) {
      this.fail(`stat ${name}`, err, 'writeErrors');
      return null;
    }
  }

  /** An open segment (a crash, or a failed seal): scan it, cut the torn tail, seal it under its real name. */
  private async recoverOpen(name: string, cls: SpoolClassCode): Promise<Segment | null> {
    const path = join(this.dir, name);
    let f: SpoolFile;
    try {
      f = await this.fs.open(path, 'rw');
    } catch (err) {
      this.fail(`open ${name}`, err, 'writeErrors');
      return null;
    }
    try {
      const fileSize = await f.size();
      const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
      const hn = fileSize >= SEGMENT_HEADER_BYTES ? await f.read(header, 0, SEGMENT_HEADER_BYTES, 0) : 0;
      const h = hn === SEGMENT_HEADER_BYTES ? decodeSegmentHeader(header) : null;
      if (h === null || h.cls !== cls) {
        // Created but its first write never landed (or not ours after all: it has our name, so it is).
        await f.close();
        this.counters.truncatedBytes += fileSize;
        await this.unlinkQuiet(name);
        return null;
      }
      let good = SEGMENT_HEADER_BYTES;
      let firstSeq = 0;
      let lastSeq = 0;
      let records = 0;
      let buf = Buffer.alloc(READ_BLOCK);
      let torn = false;
      while (good < fileSize && !torn) {
        const want = Math.min(buf.length, fileSize - good);
        const n = await f.read(buf, 0, want, good);
        if (n <= 0) break;
        let at = 0;
        while (at < n) {
          const p = parseRecord(buf, at, n, MAX_BODY_BYTES);
          if (p.kind === 'incomplete') {
            if (good + at + p.need > fileSize) torn = true; // the file ends inside this record
            else if (at === 0) buf = Buffer.alloc(Math.max(p.need, READ_BLOCK)); // a record larger than the block
            break;
          }
          if (p.kind === 'bad' || p.rec.seq <= lastSeq) {
            torn = true;
            break;
          }
          if (records === 0) firstSeq = p.rec.seq;
          lastSeq = p.rec.seq;
          records++;
          at += p.rec.bytes;
        }
        good += at;
      }
      if (good < fileSize) {
        this.counters.truncatedBytes += fileSize - good;
        this.log?.warn({ segment: name, keptBytes: good, cutBytes: fileSize - good }, 'spool: torn segment tail truncated');
        try {
          await f.truncate(good);
        } catch (err) {
          // Keep going: readers stop at `good` anyway, and the next open tries again.
          this.fail(`truncate ${name}`, err, 'writeErrors');
          await f.close().catch(() => undefined);
          return records === 0 ? null : { cls, name, firstSeq, lastSeq, records, size: good, sealed: false, writer: null, dirty: true, unsynced: false };
        }
      }
      if (records === 0) {
        await f.close();
        await this.unlinkQuiet(name);
        return null;
      }
      await f.datasync();
      await f.close();
      this.counters.recoveredSegments++;
      const sealed = sealedSegmentName(cls, firstSeq, lastSeq, records);
      try {
        await this.fs.rename(path, join(this.dir, sealed));
        return { cls, name: sealed, firstSeq, lastSeq, records, size: good, sealed: true, writer: null, dirty: false, unsynced: false };
      } catch (err) {
        this.fail(`rename ${name}`, err, 'writeErrors');
        return { cls, name, firstSeq, lastSeq, records, size: good, sealed: false, writer: null, dirty: true, unsynced: false };
      }
    } catch (err) {
      this.fail(`scan ${name}`, err, 'writeErrors');
      await f.close().catch(() => undefined);
      return null;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Group commit

  private async doFlush(): Promise<void> {
    if (this.closed || this.pendingBytes === 0) return;
    if (this.lastSeq > this.pos.seqLease) {
      // Lease seqs before any record using them reaches a segment: never reuse a seq after a power cut.
      await this.writePosition(this.pos.ackedSeq, this.lastSeq + LEASE_STEP);
    }
    await this.enforceCap();
    const touched = new Set<Segment>();
    let created = false;
    for (const c of this.chains) created = (await this.writeChain(c, touched)) || created;
    let synced = true;
    for (const seg of touched) {
      if (seg.writer === null || !seg.unsynced) continue;
      try {
        await seg.writer.datasync();
        seg.unsynced = false;
      } catch (err) {
        synced = false;
        this.fail(`fdatasync ${seg.name}`, err, 'syncErrors');
      }
    }
    if (created) {
      try {
        await this.fs.syncDir(this.dir);
      } catch (err) {
        synced = false;
        this.fail('fsync spool directory', err, 'syncErrors');
      }
    }
    if (synced) this.durableSeq = Math.max(this.durableSeq, this.writtenWatermark());
  }

  /** Highest seq such that every record up to it is in a segment (or was dropped). */
  private writtenWatermark(): number {
    let w = this.lastSeq;
    for (const c of this.chains) {
      const first = c.pending[0];
      if (first !== undefined && first.seq - 1 < w) w = first.seq - 1;
    }
    return w;
  }

  /** Returns whether a segment file was created. */
  private async writeChain(c: Chain, touched: Set<Segment>): Promise<boolean> {
    if (c.pending.length === 0) return false;
    const batch = c.pending;
    c.pending = [];
    let created = false;
    let retried = false;
    this.inFlightBytes = batch.reduce((n, p) => n + p.buf.length, 0);
    try {
      while (batch.length > 0) {
        const first = batch[0] as Pending;
        let seg = c.active;
        if (seg !== null && (seg.dirty || (seg.records > 0 && seg.size + first.buf.length > this.segmentBytes))) {
          await this.seal(c);
          seg = null;
        }
        if (seg === null) {
          seg = await this.createSegment(c, first.seq);
          if (seg === null) {
            if (!retried && (await this.freeSpace())) {
              retried = true;
              continue;
            }
            break;
          }
          created = true;
        }
        let n = 0;
        let bytes = seg.size === 0 ? SEGMENT_HEADER_BYTES : 0;
        while (n < batch.length) {
          const len = (batch[n] as Pending).buf.length;
          if (n > 0 && seg.size + bytes + len > this.segmentBytes) break;
          bytes += len;
          n++;
        }
        const parts = batch.slice(0, n).map((p) => p.buf);
        if (seg.size === 0) parts.unshift(encodeSegmentHeader(c.cls, this.bootId));
        try {
          await (seg.writer as SpoolFile).write(Buffer.concat(parts, bytes), seg.size);
        } catch (err) {
          this.fail(`write ${seg.name}`, err, 'writeErrors');
          await this.cutBack(c, seg);
          const code = errCode(err);
          if ((code === 'ENOSPC' || code === 'EDQUOT') && !retried && (await this.freeSpace())) {
            retried = true;
            continue;
          }
          break;
        }
        if (seg.records === 0) seg.firstSeq = first.seq;
        seg.size += bytes;
        seg.records += n;
        seg.lastSeq = (batch[n - 1] as Pending).seq;
        seg.unsynced = true;
        this.diskBytes += bytes;
        const written = batch.splice(0, n);
        for (const p of written) this.pendingBytes -= p.buf.length;
        this.inFlightBytes -= written.reduce((a, p) => a + p.buf.length, 0);
        touched.add(seg);
      }
    } finally {
      // Unwritten records go back in front of anything appended meanwhile.
      if (batch.length > 0) c.pending = batch.concat(c.pending);
      this.inFlightBytes = 0;
    }
    return created;
  }

  private async createSegment(c: Chain, firstSeq: number): Promise<Segment | null> {
    const name = openSegmentName(c.cls, firstSeq);
    try {
      const writer = await this.fs.open(join(this.dir, name), 'create');
      const seg: Segment = { cls: c.cls, name, firstSeq, lastSeq: 0, records: 0, size: 0, sealed: false, writer, dirty: false, unsynced: false };
      c.segments.push(seg);
      c.active = seg;
      return seg;
    } catch (err) {
      this.fail(`create ${name}`, err, 'writeErrors');
      return null;
    }
  }

  /** After a failed write: cut the partial bytes off, or give up on the segment (readers stop at seg.size regardless). */
  private async cutBack(c: Chain, seg: Segment): Promise<void> {
    try {
      await (seg.writer as SpoolFile).truncate(seg.size);
      if (seg.size > 0) return;
    } catch {
      seg.dirty = true;
    }
    if (seg.size === 0) {
      // Never had a record: remove it entirely.
      await seg.writer?.close().catch(() => undefined);
      seg.writer = null;
      c.active = null;
      c.segments.splice(c.segments.indexOf(seg), 1);
      await this.unlinkQuiet(seg.name);
    }
  }

  /** Close the active segment and give it its sealed name (so the next open need not scan it). */
  private async seal(c: Chain): Promise<void> {
    const seg = c.active;
    if (seg === null) return;
    c.active = null;
    if (c.readerSeg === seg) await this.closeReader(c);
    const writer = seg.writer;
    seg.writer = null;
    try {
      if (seg.unsynced) await writer?.datasync();
      seg.unsynced = false;
    } catch (err) {
      seg.dirty = true;
      this.fail(`fdatasync ${seg.name}`, err, 'syncErrors');
    }
    await writer?.close().catch(() => undefined);
    if (seg.dirty || seg.records === 0) return;
    const sealed = sealedSegmentName(seg.cls, seg.firstSeq, seg.lastSeq, seg.records);
    try {
      await this.fs.rename(join(this.dir, seg.name), join(this.dir, sealed));
      seg.name = sealed;
      seg.sealed = true;
    } catch (err) {
      this.fail(`rename ${seg.name}`, err, 'writeErrors');
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Bounds and the drop policy

  /** Keep disk + memory under maxTotalBytes: acknowledged segments first, then bulk, normal, critical. */
  private async enforceCap(): Promise<void> {
    while (this.diskBytes + this.pendingBytes > this.cfg.maxTotalBytes) {
      if (await this.deleteOneAcked()) continue;
      let freed = false;
      for (const cls of DROP_ORDER) {
        const c = this.chains[cls] as Chain;
        if (c.segments.length > 0) {
          await this.dropSegment(c, c.segments[0] as Segment);
          freed = true;
          break;
        }
        if (c.pending.length > 0) {
          this.dropPending(c);
          freed = true;
          break;
        }
      }
      if (!freed) return;
    }
  }

  /** ENOSPC: free an acknowledged segment, else the oldest bulk, else normal segment. Critical data is not dropped for a full disk. */
  private async freeSpace(): Promise<boolean> {
    if (await this.deleteOneAcked()) return true;
    for (const cls of [BULK, NORMAL] as const) {
      const c = this.chains[cls] as Chain;
      const seg = c.segments[0];
      if (seg !== undefined) {
        await this.dropSegment(c, seg);
        return true;
      }
    }
    return false;
  }

  /** Memory cap (only reached while the disk fails): drop the oldest pending records, bulk first. */
  private dropPendingForMemory(): void {
    for (const cls of DROP_ORDER) {
      const c = this.chains[cls] as Chain;
      while (c.pending.length > 0 && this.pendingBytes - this.inFlightBytes > this.cfg.maxPendingBytes) this.dropPending(c);
      if (this.pendingBytes - this.inFlightBytes <= this.cfg.maxPendingBytes) return;
    }
  }

  private dropPending(c: Chain): void {
    const p = c.pending.shift();
    if (p === undefined) return;
    this.pendingBytes -= p.buf.length;
    const d = this.dropped[CLASS_NAMES[c.cls]];
    d.records++;
    d.bytes += p.buf.length;
  }

  private async dropSegment(c: Chain, seg: Segment): Promise<void> {
    const d = this.dropped[CLASS_NAMES[c.cls]];
    if (seg.lastSeq > this.ackedSeq) {
      d.records += seg.records;
      d.bytes += seg.size;
    }
    await this.removeSegment(c, seg);
  }

  private async deleteOneAcked(): Promise<boolean> {
    for (const c of this.chains) {
      const seg = c.segments[0];
      if (seg !== undefined && seg.records > 0 && seg.lastSeq <= this.ackedSeq) {
        await this.removeSegment(c, seg);
        return true;
      }
    }
    return false;
  }

  private async deleteAcked(): Promise<void> {
    for (const c of this.chains) {
      for (let seg = c.segments[0]; seg !== undefined && seg !== c.active && seg.records > 0 && seg.lastSeq <= this.ackedSeq; seg = c.segments[0]) {
        await this.removeSegment(c, seg);
      }
    }
  }

  private async removeSegment(c: Chain, seg: Segment): Promise<void> {
    const i = c.segments.indexOf(seg);
    if (i < 0) return;
    c.segments.splice(i, 1);
    this.diskBytes -= seg.size;
    if (c.readerSeg === seg) await this.closeReader(c);
    if (c.active === seg) {
      c.active = null;
      await seg.writer?.close().catch(() => undefined);
      seg.writer = null;
    }
    if (c.rseg === seg) {
      c.rseg = c.segments[i] ?? null;
      c.roffset = 0;
      if (c.rseg === null) c.lastReadSeq = Math.max(c.lastReadSeq, seg.lastSeq);
    }
    c.ahead = c.ahead.filter((a) => a.rec.seq < seg.firstSeq || a.rec.seq > seg.lastSeq);
    await this.unlinkQuiet(seg.name);
  }

  private async unlinkQuiet(name: string): Promise<void> {
    try {
      await this.fs.unlink(join(this.dir, name));
    } catch (err) {
      if (errCode(err) !== 'ENOENT') this.fail(`unlink ${name}`, err, 'writeErrors');
    }
  }

  private async writePosition(ackedSeq: number, seqLease: number): Promise<boolean> {
    const next = { gen: this.pos.gen + 1, ackedSeq, seqLease, spoolId: this.pos.spoolId };
    try {
      if (this.posFile === null) {
        await this.createPosition(seqLease, ackedSeq, this.pos.spoolId, this.pos.gen);
        return this.posFile !== null;
      }
      await this.posFile.write(encodePositionSlot(next), POSITION_SLOT_OFFSETS[next.gen % 2] as number);
      await this.posFile.datasync();
      this.pos = next;
      return true;
    } catch (err) {
      this.fail('write position file', err, 'positionErrors');
      return false;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Drain

  private async doNext(maxBytes: number): Promise<SpoolRecord[]> {
    const out: SpoolRecord[] = [];
    if (this.closed) return out;
    const watermark = this.writtenWatermark();
    const wall = this.clock.wallMs();
    const mono = this.clock.monoMs();
    let bytes = 0;
    for (;;) {
      let best: Chain | null = null;
      let bestSeq = Number.POSITIVE_INFINITY;
      for (const c of this.chains) {
        await this.fill(c);
        const head = c.ahead[0];
        if (head !== undefined && head.rec.seq <= watermark && head.rec.seq < bestSeq) {
          best = c;
          bestSeq = head.rec.seq;
        }
      }
      if (best === null) break;
      const a = best.ahead[0] as Ahead;
      if (out.length > 0 && bytes + a.rec.body.length > maxBytes) break;
      best.ahead.shift();
      a.rec.ageMs = this.ageOf(a, wall, mono);
      out.push(a.rec);
      bytes += a.rec.body.length;
      if (bytes >= maxBytes) break;
    }
    const last = out[out.length - 1];
    if (last !== undefined) this.deliveredSeq = last.seq;
    return out;
  }

  private ageOf(a: Ahead, wall: number, mono: number): number | null {
    let age: number | null = null;
    if (a.boot !== null && a.boot.equals(this.bootId)) age = mono - a.rec.monoMs;
    else if (a.rec.wallMs >= SANE_WALL_MS && wall >= SANE_WALL_MS) age = wall - a.rec.wallMs;
    return age !== null && age >= 0 && Number.isFinite(age) ? Math.round(age) : null;
  }

  /** Make sure the chain has its next record parsed (if it has one on disk). */
  private async fill(c: Chain): Promise<void> {
    while (c.ahead.length === 0) {
      const seg = c.rseg ?? c.segments[0];
      if (seg === undefined) return;
      if (c.rseg !== seg) {
        c.rseg = seg;
        c.roffset = 0;
      }
      if (c.roffset >= seg.size) {
        const next = c.segments[c.segments.indexOf(seg) + 1];
        if (next === undefined) return;
        await this.closeReader(c);
        c.rseg = next;
        c.roffset = 0;
        continue;
      }
      if (seg.lastSeq <= this.ackedSeq || seg.lastSeq <= c.lastReadSeq) {
        c.roffset = seg.size; // nothing left in it for us
        continue;
      }
      await this.readSome(c, seg);
    }
  }

  private async readSome(c: Chain, seg: Segment): Promise<void> {
    const skipRest = (why: string): void => {
      this.counters.corruptRecords++;
      if (this.counters.corruptRecords === 1 || this.counters.corruptRecords % 100 === 0) {
        this.log?.warn({ segment: seg.name, offset: c.roffset, why }, 'spool: bad record, skipping the rest of the segment');
      }
      c.roffset = seg.size;
    };
    try {
      if (c.readerSeg !== seg) {
        await this.closeReader(c);
        c.reader = seg.writer ?? (await this.fs.open(join(this.dir, seg.name), 'r'));
        c.readerSeg = seg;
        const h = Buffer.alloc(SEGMENT_HEADER_BYTES);
        const n = await c.reader.read(h, 0, SEGMENT_HEADER_BYTES, 0);
        const header = n === SEGMENT_HEADER_BYTES ? decodeSegmentHeader(h) : null;
        if (header === null || header.cls !== seg.cls) return skipRest('bad segment header');
        c.readerBoot = header.bootId;
      }
      if (c.roffset < SEGMENT_HEADER_BYTES) c.roffset = SEGMENT_HEADER_BYTES;
      const reader = c.reader as SpoolFile;
      let want = Math.min(READ_BLOCK, seg.size - c.roffset);
      for (;;) {
        const buf = Buffer.alloc(want);
        const n = await reader.read(buf, 0, want, c.roffset);
        if (n < want) return skipRest('segment shorter than recorded');
        let at = 0;
        while (at < n) {
          const p = parseRecord(buf, at, n, MAX_BODY_BYTES);
          if (p.kind === 'incomplete') {
            if (c.roffset + at + p.need > seg.size) return skipRest('record runs past the segment end');
            break;
          }
          if (p.kind === 'bad') return skipRest(`bad record (${p.why})`);
          const r = p.rec;
          if (r.seq <= c.lastReadSeq) return skipRest('sequence out of order');
          c.lastReadSeq = r.seq;
          if (r.seq > this.ackedSeq) {
            c.ahead.push({
              rec: { seq: r.seq, cls: CLASS_NAMES[seg.cls], wallMs: r.wallMs, monoMs: r.monoMs, ageMs: null, body: Buffer.from(buf.subarray(r.bodyStart, r.bodyStart + r.bodyLength)) },
              boot: c.readerBoot,
            });
          }
          at += r.bytes;
        }
        c.roffset += at;
        if (at > 0) return;
        // A record larger than the block: read exactly it.
        const p = parseRecord(buf, 0, n, MAX_BODY_BYTES);
        want = p.kind === 'incomplete' ? p.need : want;
      }
    } catch (err) {
      this.fail(`read ${seg.name}`, err, 'writeErrors');
      await this.closeReader(c);
      c.roffset = seg.size;
    }
  }

  private async closeReader(c: Chain): Promise<void> {
    const r = c.reader;
    const seg = c.readerSeg;
    c.reader = null;
    c.readerSeg = null;
    c.readerBoot = null;
    if (r !== null && (seg === null || r !== seg.writer)) await r.close().catch(() => undefined);
  }
}
