import { splitFrames } from '../mavlink/framer.js';
import type { Spool, SpoolRecord } from './spool.js';

/**
 * History: spooled batches travelling up after the link came back, on their own topic
 * (`up/history`, QoS 1), sealed at drain time under the current session, never fed to live GCSs.
 *
 * Envelope body (inside the AEAD, so authentic and confidential like everything else), v1:
 *
 *   0   u8   version (1)
 *   1   8    spoolId          the air spool's identity: a new one means "start over" for dedup
 *   9   f64  afterSeq         seq of the record sent just before this body in the current drain
 *                             run (or the acknowledged position after a rewind)
 *   17  u8   count N (1..255)
 *   then N records:
 *       f64  seq              strictly increasing, > afterSeq
 *       u32  ageMs            age at the air when sealed, by the air's own clocks; 0xffffffff unknown
 *       u8   class            0 critical, 1 normal, 2 bulk
 *       u32  length L
 *       L    frames           complete MAVLink frames, concatenated (as in a `frames` body)
 *
 * No clock is shared: the ground turns the relative age into its own time (now − age − one-way
 * delay, RTT/2 from ping/pong), and keeps timestamps non-decreasing. Little-endian throughout.
 */
export const HISTORY_VERSION = 1;
const HEAD = 18;
const ITEM_HEAD = 17;
const AGE_UNKNOWN = 0xffffffff;
const CLASS_CODES = { critical: 0, normal: 1, bulk: 2 } as const;

export interface HistoryItem {
  seq: number;
  cls: 0 | 1 | 2;
  ageMs: number | null;
  frames: Buffer;
}

export interface HistoryBody {
  spoolId: Buffer;
  afterSeq: number;
  items: HistoryItem[];
}

export function encodeHistoryBody(b: HistoryBody): Buffer {
  if (b.items.length < 1 || b.items.length > 255) throw new RangeError('a history body holds 1 to 255 records');
  const size = HEAD + b.items.reduce((n, it) => n + ITEM_HEAD + it.frames.length, 0);
  const out = Buffer.alloc(size);
  out[0] = HISTORY_VERSION;
  b.spoolId.copy(out, 1, 0, 8);
  out.writeDoubleLE(b.afterSeq, 9);
  out[17] = b.items.length;
  let at = HEAD;
  for (const it of b.items) {
    out.writeDoubleLE(it.seq, at);
    out.writeUInt32LE(it.ageMs === null ? AGE_UNKNOWN : Math.min(AGE_UNKNOWN - 1, Math.max(0, Math.round(it.ageMs))), at + 8);
    out[at + 12] = it.cls;
    out.writeUInt32LE(it.frames.length, at + 13);
    it.frames.copy(out, at + ITEM_HEAD);
    at += ITEM_HEAD + it.frames.length;
  }
  return out;
}

/** Strict decode (authentic does not mean well-formed: a sender bug must not reach the tlog). Null if malformed. */
export function decodeHistoryBody(body: Buffer): HistoryBody | null {
  if (body.length < HEAD || body[0] !== HISTORY_VERSION) return null;
  const afterSeq = body.readDoubleLE(9);
  const count = body[17] as number;
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0 || count < 1) return null;
  const items: HistoryItem[] = [];
  let at = HEAD;
  let prev = afterSeq;
  for (let i = 0; i < count; i++) {
    if (body.length - at < ITEM_HEAD) return null;
    const seq = body.readDoubleLE(at);
    const age = body.readUInt32LE(at + 8);
    const cls = body[at + 12] as number;
    const len = body.readUInt32LE(at + 13);
    if (!Number.isSafeInteger(seq) || seq <= prev || cls > 2 || body.length - at - ITEM_HEAD < len) return null;
    const frames = body.subarray(at + ITEM_HEAD, at + ITEM_HEAD + len);
    if (!splitFrames(frames, () => undefined)) return null;
    items.push({ seq, cls: cls as 0 | 1 | 2, ageMs: age === AGE_UNKNOWN ? null : age, frames });
    prev = seq;
    at += ITEM_HEAD + len;
  }
  if (at !== body.length) return null;
  return { spoolId: Buffer.from(body.subarray(1, 9)), afterSeq, items };
}

// -----------------------------------------------------------------------------------------------
// Air side: spool -> history bodies, with flow control and rewind on silence.

export interface HistoryPumpOptions {
  spool: Spool;
  /** Largest body (one envelope). */
  maxBodyBytes?: number;
  /** Unacknowledged history on the wire at most (bytes of bodies). */
  maxInFlightBytes?: number;
  /** No ack progress for this long while something is in flight: rewind and resend. */
  ackTimeoutMs?: number;
}

export interface HistoryPumpStats {
  bodiesOut: number;
  recordsOut: number;
  bytesOut: number;
  acks: number;
  rewinds: number;
  inFlightBytes: number;
  sentSeq: number;
  ackedSeq: number;
}

/**
 * Feeds history to the uplink: `pump(nowMs, budgetBytes)` returns bodies to seal (kind per the
 * integration note) and publish on up/history; `onAck(upto)` is the ground's history-ack;
 * `restart()` on every new session or broker reconnect; `tick(nowMs)` rewinds after ackTimeoutMs
 * of silence. The ground drops anything at or below what it already has, so resending is safe.
 */
export class HistoryPump {
  private readonly maxBody: number;
  private readonly maxInFlight: number;
  private readonly ackTimeoutMs: number;
  private sentSeq: number;
  private ackedSeq: number;
  private inFlight: { lastSeq: number; bytes: number }[] = [];
  private inFlightBytes = 0;
  private lastProgressMs = Number.NEGATIVE_INFINITY;
  private busy = false;
  private readonly counters = { bodiesOut: 0, recordsOut: 0, bytesOut: 0, acks: 0, rewinds: 0 };

  constructor(private readonly opts: HistoryPumpOptions) {
    this.maxBody = opts.maxBodyBytes ?? 16 * 1024;
    this.maxInFlight = opts.maxInFlightBytes ?? 64 * 1024;
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 15_000;
    this.ackedSeq = opts.spool.stats().ackedSeq;
    this.sentSeq = this.ackedSeq;
  }

  /** Bodies worth at most ~budgetBytes (at least one record's worth if any fits the window). */
  async pump(nowMs: number, budgetBytes = Number.POSITIVE_INFINITY): Promise<Buffer[]> {
    if (this.busy) return [];
    this.busy = true;
    try {
      const room = Math.min(budgetBytes, this.maxInFlight - this.inFlightBytes);
      if (room <= ITEM_HEAD + HEAD) return [];
      const records = await this.opts.spool.next(Math.min(room, this.maxBody * 4) - HEAD);
      if (records.length === 0) return [];
      if (this.inFlight.length === 0) this.lastProgressMs = nowMs;
      const spoolId = Buffer.from(this.opts.spool.spoolId, 'hex');
      const bodies: Buffer[] = [];
      let group: SpoolRecord[] = [];
      let size = HEAD;
      const emit = (): void => {
        if (group.length === 0) return;
        const body = encodeHistoryBody({
          spoolId, afterSeq: this.sentSeq,
          items: group.map((r) => ({ seq: r.seq, cls: CLASS_CODES[r.cls], ageMs: r.ageMs, frames: r.body })),
        });
        this.sentSeq = (group[group.length - 1] as SpoolRecord).seq;
        this.inFlight.push({ lastSeq: this.sentSeq, bytes: body.length });
        this.inFlightBytes += body.length;
        this.counters.bodiesOut++;
        this.counters.recordsOut += group.length;
        this.counters.bytesOut += body.length;
        bodies.push(body);
        group = [];
        size = HEAD;
      };
      for (const r of records) {
        if (group.length > 0 && (size + ITEM_HEAD + r.body.length > this.maxBody || group.length === 255)) emit();
        group.push(r);
        size += ITEM_HEAD + r.body.length;
      }
      emit();
      return bodies;
    } finally {
      this.busy = false;
    }
  }

  /** The ground has everything up to `upto` in its tlog. Resolves when the spool persisted it. */
  async onAck(upto: number, nowMs: number): Promise<void> {
    if (upto <= this.ackedSeq) return;
    this.counters.acks++;
    this.ackedSeq = upto;
    this.lastProgressMs = nowMs;
    while (this.inFlight.length > 0 && (this.inFlight[0] as { lastSeq: number }).lastSeq <= upto) {
      this.inFlightBytes -= (this.inFlight.shift() as { bytes: number }).bytes;
    }
    if (this.sentSeq < upto) this.sentSeq = upto;
    await this.opts.spool.ack(upto);
  }

  /** New session or reconnect: whatever was in flight may be lost; start again after the last ack. */
  restart(): void {
    this.counters.rewinds++;
    this.inFlight = [];
    this.inFlightBytes = 0;
    this.sentSeq = this.ackedSeq;
    this.opts.spool.rewind();
  }

  /** Call now and then (e.g. each second): rewinds when acks stopped coming while history is in flight. */
  tick(nowMs: number): void {
    if (this.inFlight.length > 0 && nowMs - this.lastProgressMs > this.ackTimeoutMs) this.restart();
  }

  stats(): HistoryPumpStats {
    return { ...this.counters, inFlightBytes: this.inFlightBytes, sentSeq: this.sentSeq, ackedSeq: this.ackedSeq };
  }
}

// -----------------------------------------------------------------------------------------------
// Ground side: bodies -> (timestamp, frame) in order, deduplicated, for the vehicle's history tlog.

export interface HistoryFrame {
  seq: number;
  timestampUs: bigint;
  frame: Buffer;
}

export type HistoryAccept =
  | { ok: true; frames: HistoryFrame[]; records: number; duplicates: number; ackUpto: number }
  | { ok: false; reason: 'malformed' | 'gap'; ackUpto: number | null };

export interface HistoryReceiverStats {
  spoolId: string | null;
  highestSeq: number | null;
  records: number;
  frames: number;
  duplicates: number;
  gaps: number;
  malformed: number;
  spoolResets: number;
}

/**
 * Per vehicle, on the ground. Accepts a body only if it continues what it has (afterSeq <= highest),
 * drops records it already has, and returns frames with ground timestamps in order. Reply with a
 * history-ack for `ackUpto` after the frames are durable in the tlog (after its flush).
 */
export class HistoryReceiver {
  private spoolId: string | null = null;
  private highest: number | null = null;
  private lastTsUs = 0n;
  private readonly counters = { records: 0, frames: 0, duplicates: 0, gaps: 0, malformed: 0, spoolResets: 0 };

  /** `nowUs`: ground wall clock in µs (what the tlog uses); `oneWayMs`: RTT/2 if known. */
  accept(body: Buffer, nowUs: bigint, oneWayMs = 0): HistoryAccept {
    const h = decodeHistoryBody(body);
    if (h === null) {
      this.counters.malformed++;
      return { ok: false, reason: 'malformed', ackUpto: this.highest };
    }
    const id = h.spoolId.toString('hex');
    if (id !== this.spoolId) {
      if (this.spoolId !== null) this.counters.spoolResets++;
      this.spoolId = id;
      this.highest = null;
    }
    if (this.highest !== null && h.afterSeq > this.highest) {
      // Something before this body never arrived: take nothing, the air rewinds to our ack.
      this.counters.gaps++;
      return { ok: false, reason: 'gap', ackUpto: this.highest };
    }
    const frames: HistoryFrame[] = [];
    let records = 0;
    let duplicates = 0;
    for (const it of h.items) {
      if (this.highest !== null && it.seq <= this.highest) {
        duplicates++;
        continue;
      }
      let ts = it.ageMs === null ? (this.lastTsUs > 0n ? this.lastTsUs : nowUs) : nowUs - BigInt(Math.round((it.ageMs + oneWayMs) * 1000));
      if (ts > nowUs) ts = nowUs;
      if (ts < this.lastTsUs) ts = this.lastTsUs;
      this.lastTsUs = ts;
      splitFrames(it.frames, (f) => frames.push({ seq: it.seq, timestampUs: ts, frame: f.bytes }));
      this.highest = it.seq;
      records++;
    }
    this.counters.records += records;
    this.counters.frames += frames.length;
    this.counters.duplicates += duplicates;
    const last = h.items[h.items.length - 1] as HistoryItem;
    if (this.highest === null || this.highest < last.seq) this.highest = last.seq;
    return { ok: true, frames, records, duplicates, ackUpto: this.highest };
  }

  stats(): HistoryReceiverStats {
    return { spoolId: this.spoolId, highestSeq: this.highest, ...this.counters };
  }
}
