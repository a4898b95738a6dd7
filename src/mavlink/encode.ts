import { crc16, crc16Byte } from './crc.js';
import type { Dialect } from './dialect.js';
import { MAGIC_V1, MAGIC_V2, V1_HEADER_LENGTH, V2_HEADER_LENGTH } from './framer.js';
import { MavmqError, ErrorCodes } from '../errors.js';

export interface FrameHeader {
  version: 1 | 2;
  seq: number;
  sysid: number;
  compid: number;
  msgid: number;
}

/**
 * Build a frame from a serialized payload. v2 payloads are truncated of trailing zeros (keeping at
 * least one byte), as the spec requires of senders.
 */
export function encodeFrame(dialect: Dialect, h: FrameHeader, payload: Uint8Array): Buffer {
  const extra = dialect.crcExtra(h.msgid);
  if (extra < 0) throw new MavmqError(ErrorCodes.INTERNAL, `cannot encode msgid ${h.msgid}: not in dialect ${dialect.name}`);
  if (h.version === 1) {
    if (h.msgid > 255) throw new MavmqError(ErrorCodes.INTERNAL, `msgid ${h.msgid} needs MAVLink 2`);
    const len = payload.length;
    const out = Buffer.allocUnsafe(V1_HEADER_LENGTH + len + 2);
    out[0] = MAGIC_V1;
    out[1] = len;
    out[2] = h.seq & 0xff;
    out[3] = h.sysid;
    out[4] = h.compid;
    out[5] = h.msgid;
    out.set(payload, V1_HEADER_LENGTH);
    const crc = crc16Byte(crc16(out, 1, V1_HEADER_LENGTH + len), extra);
    out.writeUInt16LE(crc, V1_HEADER_LENGTH + len);
    return out;
  }
  let len = payload.length;
  while (len > 1 && payload[len - 1] === 0) len--;
  const out = Buffer.allocUnsafe(V2_HEADER_LENGTH + len + 2);
  out[0] = MAGIC_V2;
  out[1] = len;
  out[2] = 0; // incompat flags: we never sign our own frames
  out[3] = 0;
  out[4] = h.seq & 0xff;
  out[5] = h.sysid;
  out[6] = h.compid;
  out[7] = h.msgid & 0xff;
  out[8] = (h.msgid >> 8) & 0xff;
  out[9] = (h.msgid >> 16) & 0xff;
  out.set(payload.subarray(0, len), V2_HEADER_LENGTH);
  const crc = crc16Byte(crc16(out, 1, V2_HEADER_LENGTH + len), extra);
  out.writeUInt16LE(crc, V2_HEADER_LENGTH + len);
  return out;
}
