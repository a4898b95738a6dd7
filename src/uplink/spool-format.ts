import { crc32 } from './spool-crc32.js';

/**
 * On-disk format of the uplink spool (spool.ts). All integers little-endian.
 *
 * Segment file `{class}-{firstSeq:16}.seg` (open, being appended; scanned at open) or, once
 * complete, `{class}-{firstSeq:16}-{lastSeq:16}-{records}.seg` (sealed: trusted at open, every
 * record's CRC is still checked when it is read):
 *
 *   header (32 bytes):  "MQSPSEG1" | u8 class | 7 reserved (0) | bootId (16 bytes)
 *   records:            header (32 bytes) | body
 *     0  u32  body length
 *     4  u32  CRC-32 of bytes [0,4) and [8, 32 + length)
 *     8  f64  seq        (integer; strictly increasing within a segment and across the class chain)
 *     16 f64  wallMs     (Date.now() at append: may be 1970 on a board without RTC)
 *     24 f64  monoMs     (CLOCK_MONOTONIC at append, ms: valid for ages within one boot)
 *
 * Position file `position` (preallocated, rewritten in place, never renamed): two slots at 0 and
 * 4096 (different filesystem blocks), written alternately; the valid one with the highest gen wins.
 *   slot (40 bytes): "MQSP" | u32 CRC-32 of [8,40) | f64 gen | f64 ackedSeq | f64 seqLease | spoolId (8 random bytes)
 * A torn slot write leaves the other slot, i.e. the previous state. In-place writes need no new
 * blocks, so acknowledging (and then deleting segments) still works on a full disk.
 */
export const SEGMENT_MAGIC = Buffer.from('MQSPSEG1', 'latin1');
export const SEGMENT_HEADER_BYTES = 32;
export const RECORD_HEADER_BYTES = 32;
export const POSITION_SLOT_BYTES = 40;
export const POSITION_SLOT_OFFSETS = [0, 4096] as const;
export const POSITION_FILE_BYTES = 4096 + POSITION_SLOT_BYTES;
export const POSITION_FILE = 'position';
const POSITION_MAGIC = 0x5053514d; // "MQSP"

export const CLASS_NAMES = ['critical', 'normal', 'bulk'] as const;
export type SpoolClassName = (typeof CLASS_NAMES)[number];
export type SpoolClassCode = 0 | 1 | 2;

const OPEN_RE = /^(critical|normal|bulk)-(\d{16})\.seg$/;
const SEALED_RE = /^(critical|normal|bulk)-(\d{16})-(\d{16})-(\d{1,12})\.seg$/;

export function classCode(name: SpoolClassName): SpoolClassCode {
  return CLASS_NAMES.indexOf(name) as SpoolClassCode;
}

const pad = (n: number): string => String(n).padStart(16, '0');

export function openSegmentName(cls: SpoolClassCode, firstSeq: number): string {
  return `${CLASS_NAMES[cls]}-${pad(firstSeq)}.seg`;
}

export function sealedSegmentName(cls: SpoolClassCode, firstSeq: number, lastSeq: number, records: number): string {
  return `${CLASS_NAMES[cls]}-${pad(firstSeq)}-${pad(lastSeq)}-${records}.seg`;
}

export type ParsedName =
  | { sealed: false; cls: SpoolClassCode; firstSeq: number }
  | { sealed: true; cls: SpoolClassCode; firstSeq: number; lastSeq: number; records: number };

export function parseSegmentName(name: string): ParsedName | null {
  const s = SEALED_RE.exec(name);
  if (s) {
    const firstSeq = Number(s[2]);
    const lastSeq = Number(s[3]);
    const records = Number(s[4]);
    const cls = classCode(s[1] as SpoolClassName);
    // A name that does not add up is treated as open: scanned, then renamed correctly.
    if (firstSeq >= 1 && lastSeq >= firstSeq && records >= 1 && records <= lastSeq - firstSeq + 1) return { sealed: true, cls, firstSeq, lastSeq, records };
    return { sealed: false, cls, firstSeq };
  }
  const o = OPEN_RE.exec(name);
  if (o) return { sealed: false, cls: classCode(o[1] as SpoolClassName), firstSeq: Number(o[2]) };
  return null;
}

export function encodeSegmentHeader(cls: SpoolClassCode, bootId: Buffer): Buffer {
  const h = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(h, 0);
  h[8] = cls;
  bootId.copy(h, 16, 0, 16);
  return h;
}

export function decodeSegmentHeader(h: Buffer): { cls: SpoolClassCode; bootId: Buffer } | null {
  if (h.length < SEGMENT_HEADER_BYTES || !h.subarray(0, 8).equals(SEGMENT_MAGIC)) return null;
  const cls = h[8] as number;
  if (cls > 2) return null;
  return { cls: cls as SpoolClassCode, bootId: Buffer.from(h.subarray(16, 32)) };
}

export function encodeRecord(seq: number, wallMs: number, monoMs: number, body: Uint8Array): Buffer {
  const rec = Buffer.allocUnsafe(RECORD_HEADER_BYTES + body.length);
  rec.writeUInt32LE(body.length, 0);
  rec.writeDoubleLE(seq, 8);
  rec.writeDoubleLE(wallMs, 16);
  rec.writeDoubleLE(monoMs, 24);
  rec.set(body, RECORD_HEADER_BYTES);
  rec.writeUInt32LE(recordCrc(rec, 0, body.length), 4);
  return rec;
}

function recordCrc(buf: Uint8Array, at: number, bodyLength: number): number {
  return crc32(buf, at + 8, at + RECORD_HEADER_BYTES + bodyLength, crc32(buf, at, at + 4));
}

export interface ParsedRecord {
  seq: number;
  wallMs: number;
  monoMs: number;
  /** Offset of the record header in the buffer given. */
  at: number;
  /** Total bytes (header + body). */
  bytes: number;
  bodyStart: number;
  bodyLength: number;
}

export type RecordParse =
  | { kind: 'record'; rec: ParsedRecord }
  | { kind: 'incomplete'; need: number }
  | { kind: 'bad'; why: 'length' | 'crc' | 'seq' };

/**
 * Parse the record at buf[at..end). `incomplete` when more bytes are needed (need = total bytes of
 * the record from `at`), `bad` when no valid record starts here.
 */
export function parseRecord(buf: Buffer, at: number, end: number, maxBodyBytes: number): RecordParse {
  if (end - at < RECORD_HEADER_BYTES) return { kind: 'incomplete', need: RECORD_HEADER_BYTES };
  const len = buf.readUInt32LE(at);
  if (len > maxBodyBytes) return { kind: 'bad', why: 'length' };
  if (end - at < RECORD_HEADER_BYTES + len) return { kind: 'incomplete', need: RECORD_HEADER_BYTES + len };
  if (recordCrc(buf, at, len) !== buf.readUInt32LE(at + 4)) return { kind: 'bad', why: 'crc' };
  const seq = buf.readDoubleLE(at + 8);
  if (!Number.isSafeInteger(seq) || seq < 1) return { kind: 'bad', why: 'seq' };
  return {
    kind: 'record',
    rec: { seq, wallMs: buf.readDoubleLE(at + 16), monoMs: buf.readDoubleLE(at + 24), at, bytes: RECORD_HEADER_BYTES + len, bodyStart: at + RECORD_HEADER_BYTES, bodyLength: len },
  };
}

export interface Position {
  gen: number;
  ackedSeq: number;
  /** Every seq ever written to a segment is <= this (seqs are leased before use, see spool.ts). */
  seqLease: number;
  /** Random identity of this spool, fixed when the position file is created. */
  spoolId: Buffer;
}

export function encodePositionSlot(p: Position): Buffer {
  const b = Buffer.alloc(POSITION_SLOT_BYTES);
  b.writeUInt32LE(POSITION_MAGIC, 0);
  b.writeDoubleLE(p.gen, 8);
  b.writeDoubleLE(p.ackedSeq, 16);
  b.writeDoubleLE(p.seqLease, 24);
  p.spoolId.copy(b, 32, 0, 8);
  b.writeUInt32LE(crc32(b, 8, POSITION_SLOT_BYTES), 4);
  return b;
}

function decodeSlot(b: Buffer, at: number): Position | null {
  if (b.length < at + POSITION_SLOT_BYTES) return null;
  const s = b.subarray(at, at + POSITION_SLOT_BYTES);
  if (s.readUInt32LE(0) !== POSITION_MAGIC || crc32(s, 8, POSITION_SLOT_BYTES) !== s.readUInt32LE(4)) return null;
  const p = { gen: s.readDoubleLE(8), ackedSeq: s.readDoubleLE(16), seqLease: s.readDoubleLE(24), spoolId: Buffer.from(s.subarray(32, 40)) };
  if (![p.gen, p.ackedSeq, p.seqLease].every((n) => Number.isSafeInteger(n) && n >= 0)) return null;
  return p;
}

/** The newest valid slot of a position file's content, or null if neither slot is valid. */
export function decodePosition(file: Buffer): Position | null {
  const slots = POSITION_SLOT_OFFSETS.map((at) => decodeSlot(file, at)).filter((p): p is Position => p !== null);
  if (slots.length === 0) return null;
  return slots.reduce((a, b) => (b.gen > a.gen ? b : a));
}
