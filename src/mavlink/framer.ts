import { crc16, crc16Byte } from './crc.js';
import type { Dialect } from './dialect.js';

export const MAGIC_V1 = 0xfe;
export const MAGIC_V2 = 0xfd;
export const V1_HEADER_LENGTH = 6;
export const V2_HEADER_LENGTH = 10;
export const SIGNATURE_LENGTH = 13;
export const INCOMPAT_SIGNED = 0x01;
/** Largest possible frame: v2 header + 255 payload + CRC + signature. */
export const MAX_FRAME_LENGTH = V2_HEADER_LENGTH + 255 + 2 + SIGNATURE_LENGTH;

/**
 * One MAVLink frame. `bytes` is a view of exactly the frame as received (signature included), so
 * routing forwards it byte-exact. Views never alias a buffer the framer reuses: safe to queue.
 */
export interface Frame {
  readonly bytes: Buffer;
  readonly version: 1 | 2;
  readonly msgid: number;
  readonly sysid: number;
  readonly compid: number;
  readonly seq: number;
  readonly payloadOffset: number;
  readonly payloadLength: number;
  readonly signed: boolean;
  /** False when the dialect does not know the msgid, so the CRC could not be checked. */
  readonly checked: boolean;
}

export interface FramerStats {
  frames: number;
  bytes: number;
  /** Bytes skipped while hunting for a frame start. */
  garbageBytes: number;
  crcErrors: number;
  badLengths: number;
  /** Times the framer lost sync and had to hunt for the next frame. */
  resyncs: number;
  /** Frames forwarded without a CRC check because the dialect lacks the msgid. */
  unknownMsgids: number;
  /** Frames missing according to per-(sysid, compid) sequence numbers. */
  seqLost: number;
}

export interface SeqState {
  sysid: number;
  compid: number;
  lastSeq: number;
  received: number;
  lost: number;
}

const CHECKED = 1;
const UNCHECKED = 0;
const INVALID = -1;
const NEED_MORE = -2;

/** Beyond this many tracked sources, new sources are not tracked (bounded memory under spoofed ids). */
const MAX_TRACKED_SOURCES = 1024;

/**
 * Incremental MAVLink v1/v2 framer. Pure: bytes in, frames out through a callback; no I/O, no
 * timers, never throws on input. Garbage is skipped and the framer resyncs on the next valid frame.
 * Memory is bounded: at most one partial frame (< MAX_FRAME_LENGTH bytes) is carried between chunks.
 */
export class Framer {
  readonly stats: FramerStats = {
    frames: 0, bytes: 0, garbageBytes: 0, crcErrors: 0, badLengths: 0, resyncs: 0, unknownMsgids: 0, seqLost: 0,
  };
  private pending: Buffer | null = null;
  private readonly seqBySource = new Map<number, SeqState>();
  private inSync = true;

  constructor(private readonly dialect: Dialect) {}

  /** Feed a chunk; `onFrame` is called synchronously for each complete valid frame, in order. */
  push(chunk: Buffer, onFrame: (frame: Frame) => void): void {
    this.stats.bytes += chunk.length;
    let buf = chunk;
    if (this.pending !== null) {
      buf = Buffer.concat([this.pending, chunk], this.pending.length + chunk.length);
      this.pending = null;
    }
    const end = buf.length;
    let i = 0;
    while (i < end) {
      const b = buf[i] as number;
      if (b !== MAGIC_V2 && b !== MAGIC_V1) {
        // Hunt for the next start byte with native scans (fast on garbage-heavy input).
        const n2 = buf.indexOf(MAGIC_V2, i);
        const n1 = buf.indexOf(MAGIC_V1, i);
        const next = n2 < 0 ? n1 : n1 < 0 ? n2 : Math.min(n1, n2);
        const stop = next < 0 ? end : next;
        this.skip(stop - i);
        i = stop;
        continue;
      }
      const used = b === MAGIC_V2 ? this.tryV2(buf, i, end, onFrame) : this.tryV1(buf, i, end, onFrame);
      if (used > 0) {
        i += used;
        this.inSync = true;
      } else if (used === 0) {
        // Incomplete frame at the end of the chunk: keep it for the next push (bounded by MAX_FRAME_LENGTH).
        this.pending = Buffer.from(buf.subarray(i, end));
        return;
      } else {
        // Not a frame here: drop this start byte and hunt again.
        this.skip(1);
        i += 1;
      }
    }
  }

  /** Forget any partial frame (e.g. the link reconnected). */
  reset(): void {
    this.pending = null;
  }

  /** Per-source sequence accounting, for loss %. */
  sources(): SeqState[] {
    return [...this.seqBySource.values()].map((s) => ({ ...s }));
  }

  private skip(n: number): void {
    if (n <= 0) return;
    if (this.inSync) {
      this.stats.resyncs++;
      this.inSync = false;
    }
    this.stats.garbageBytes += n;
  }

  /** Returns bytes consumed (>0), 0 if incomplete, -1 if not a valid frame at i. */
  private tryV2(buf: Buffer, i: number, end: number, onFrame: (frame: Frame) => void): number {
    if (end - i < V2_HEADER_LENGTH) return 0;
    const len = buf[i + 1] as number;
    const incompat = buf[i + 2] as number;
    if ((incompat & ~INCOMPAT_SIGNED) !== 0) {
      this.stats.badLengths++;
      return -1;
    }
    const signed = (incompat & INCOMPAT_SIGNED) !== 0;
    const total = V2_HEADER_LENGTH + len + 2 + (signed ? SIGNATURE_LENGTH : 0);
    if (end - i < total) return 0;
    const msgid = (buf[i + 7] as number) | ((buf[i + 8] as number) << 8) | ((buf[i + 9] as number) << 16);
    const checked = this.verify(buf, i, end, total, msgid, len, i + V2_HEADER_LENGTH + len);
    if (checked < 0) return checked === NEED_MORE ? 0 : -1;
    this.emit(buf, i, total, 2, msgid, buf[i + 5] as number, buf[i + 6] as number, buf[i + 4] as number, V2_HEADER_LENGTH, len, signed, checked === CHECKED, onFrame);
    return total;
  }

  private tryV1(buf: Buffer, i: number, end: number, onFrame: (frame: Frame) => void): number {
    if (end - i < V1_HEADER_LENGTH) return 0;
    const len = buf[i + 1] as number;
    const total = V1_HEADER_LENGTH + len + 2;
    if (end - i < total) return 0;
    const msgid = buf[i + 5] as number;
    const checked = this.verify(buf, i, end, total, msgid, len, i + V1_HEADER_LENGTH + len);
    if (checked < 0) return checked === NEED_MORE ? 0 : -1;
    this.emit(buf, i, total, 1, msgid, buf[i + 3] as number, buf[i + 4] as number, buf[i + 2] as number, V1_HEADER_LENGTH, len, false, checked === CHECKED, onFrame);
    return total;
  }

  /**
   * CRC and length check of a complete frame at i (v1 and v2 alike). CHECKED / UNCHECKED (unknown
   * msgid, accepted only once the next byte confirms that a frame ends here: it is a start byte;
   * until that byte arrives it is held, so garbage cannot swallow real frames while other
   * dialects still pass byte-exact), INVALID, or NEED_MORE.
   */
  private verify(buf: Buffer, i: number, end: number, total: number, msgid: number, len: number, crcAt: number): number {
    const extra = this.dialect.crcExtra(msgid);
    if (extra >= 0) {
      if (len > this.dialect.maxPayloadLength(msgid)) {
        this.stats.badLengths++;
        return INVALID;
      }
      const rx = (buf[crcAt] as number) | ((buf[crcAt + 1] as number) << 8);
      if (crc16Byte(crc16(buf, i + 1, crcAt), extra) !== rx) {
        this.stats.crcErrors++;
        return INVALID;
      }
      return CHECKED;
    }
    const after = i + total;
    if (after >= end) return NEED_MORE;
    if (buf[after] !== MAGIC_V2 && buf[after] !== MAGIC_V1) return INVALID;
    this.stats.unknownMsgids++;
    return UNCHECKED;
  }

  private emit(
    buf: Buffer, start: number, total: number, version: 1 | 2, msgid: number, sysid: number, compid: number,
    seq: number, payloadOffset: number, payloadLength: number, signed: boolean, checked: boolean,
    onFrame: (frame: Frame) => void,
  ): void {
    this.stats.frames++;
    this.trackSeq(sysid, compid, seq);
    onFrame({ bytes: buf.subarray(start, start + total), version, msgid, sysid, compid, seq, payloadOffset, payloadLength, signed, checked });
  }

  private trackSeq(sysid: number, compid: number, seq: number): void {
    const key = (sysid << 8) | compid;
    const s = this.seqBySource.get(key);
    if (s === undefined) {
      if (this.seqBySource.size < MAX_TRACKED_SOURCES) {
        this.seqBySource.set(key, { sysid, compid, lastSeq: seq, received: 1, lost: 0 });
      }
      return;
    }
    const gap = (seq - s.lastSeq - 1) & 0xff;
    // A gap of 255 is a duplicate/repeat of the last seq, not 255 lost frames.
    if (gap !== 0 && gap !== 255) {
      s.lost += gap;
      this.stats.seqLost += gap;
    }
    s.lastSeq = seq;
    s.received++;
  }
}

/** Read a frame's payload byte at `offset`, treating v2-truncated bytes as zero. */
export function payloadByte(frame: Frame, offset: number): number {
  return offset < frame.payloadLength ? (frame.bytes[frame.payloadOffset + offset] as number) : 0;
}

/** The payload padded back to its full length (v2 truncates trailing zeros). Copies. */
export function paddedPayload(frame: Frame, fullLength: number): Buffer {
  const out = Buffer.alloc(Math.max(fullLength, frame.payloadLength));
  frame.bytes.copy(out, 0, frame.payloadOffset, frame.payloadOffset + frame.payloadLength);
  return out;
}

/** Describe a complete frame we built ourselves (already valid): header fields, no CRC check. */
export function describeFrame(bytes: Buffer): Frame {
  const v2 = bytes[0] === MAGIC_V2;
  return {
    bytes,
    version: v2 ? 2 : 1,
    msgid: v2 ? (bytes[7] as number) | ((bytes[8] as number) << 8) | ((bytes[9] as number) << 16) : (bytes[5] as number),
    sysid: (v2 ? bytes[5] : bytes[3]) as number,
    compid: (v2 ? bytes[6] : bytes[4]) as number,
    seq: (v2 ? bytes[4] : bytes[2]) as number,
    payloadOffset: v2 ? V2_HEADER_LENGTH : V1_HEADER_LENGTH,
    payloadLength: bytes[1] as number,
    signed: v2 && ((bytes[2] as number) & INCOMPAT_SIGNED) !== 0,
    checked: true,
  };
}

/**
 * Split a body of concatenated complete frames (an authenticated envelope's payload) by their
 * headers. The AEAD tag already vouches for the bytes, so no CRC pass; a torn tail is reported.
 */
export function splitFrames(body: Buffer, onFrame: (frame: Frame) => void): boolean {
  let i = 0;
  while (i < body.length) {
    const total = frameLengthAt(body, i);
    if (total < 0 || i + total > body.length) return false;
    onFrame(describeFrame(body.subarray(i, i + total)));
    i += total;
  }
  return true;
}

/** Length of the frame starting at buf[i], from its header alone; -1 if no frame starts there. */
export function frameLengthAt(buf: Uint8Array, i: number): number {
  const magic = buf[i];
  const len = buf[i + 1];
  if (len === undefined) return -1;
  if (magic === MAGIC_V1) return V1_HEADER_LENGTH + len + 2;
  if (magic === MAGIC_V2) return V2_HEADER_LENGTH + len + 2 + (((buf[i + 2] ?? 0) & INCOMPAT_SIGNED) !== 0 ? SIGNATURE_LENGTH : 0);
  return -1;
}
