/**
 * The data envelope (docs/PROTOCOL.md §6-7): header encode/decode, AAD, nonce, AEAD seal/open,
 * and the inner payload (kind byte + opaque body). Stateless: sessions and replay windows live in
 * session.ts. Nothing here throws on bad input from the network; results are unions.
 *
 *   offset  size  field
 *   0       1     version (0x01)
 *   1       1     type (0x10 DATA)
 *   2       8     session id
 *   10      8     counter, u64 big-endian
 *   18      n     ciphertext of (kind byte || body), n >= 1
 *   18+n    16    Poly1305 tag
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { ErrorCodes, MavmqError } from '../errors.js';
import type { SecretKey } from './keys.js';
import {
  DIRECTION_BYTE,
  MessageType,
  PROTOCOL_VERSION,
  SESSION_ID_BYTES,
  SESSION_KEY_BYTES,
  encodeTopic,
  encodeVehicleId,
  isValidVehicleId,
  type Direction,
} from './wire.js';

/** Chosen over AES-256-GCM for CPUs without AES instructions (Raspberry Pi 4); see PROTOCOL.md §7. */
export const AEAD_ALGORITHM = 'chacha20-poly1305';
export const HEADER_BYTES = 2 + SESSION_ID_BYTES + 8;
export const TAG_BYTES = 16;
export const NONCE_BYTES = 12;
/** Header + at least the kind byte + tag. */
export const MIN_ENVELOPE_BYTES = HEADER_BYTES + 1 + TAG_BYTES;
const MAX_U64 = (1n << 64n) - 1n;

/** Inner payload kinds. The body is opaque to this module. */
export const PayloadKind = {
  /** Concatenated raw MAVLink v1/v2 frames, each complete. */
  frames: 0x01,
  /** UTF-8 JSON health/status report. */
  health: 0x02,
  /** UTF-8 JSON daemon-to-daemon control message (acks, settings). */
  control: 0x03,
  /** Empty or opaque; confirms a new session and keeps it alive. */
  keepalive: 0x04,
  /** Spooled frames from a link outage (src/uplink/spool-history.ts): recorded on the ground, never routed live. */
  history: 0x05,
  /** Frames from ground stations, stamped with the gateway's monotonic send time (f64 LE ms) for staleness checks. */
  commands: 0x06,
} as const;
export type PayloadKindName = keyof typeof PayloadKind;

const KIND_BY_BYTE: ReadonlyMap<number, PayloadKindName> = new Map(
  (Object.entries(PayloadKind) as [PayloadKindName, number][]).map(([name, byte]) => [byte, name]),
);

export function isPayloadKind(kind: string): kind is PayloadKindName {
  return Object.hasOwn(PayloadKind, kind);
}

/** Everything the envelope is bound to besides its own header. */
export interface EnvelopeContext {
  vehicleId: string;
  direction: Direction;
  /** The MQTT topic name exactly as published (not a filter, not an alias). */
  topic: string;
}

export interface EnvelopeHeader {
  version: number;
  type: number;
  sessionId: Buffer;
  counter: bigint;
}

export type HeaderRejectReason = 'short' | 'bad-version' | 'bad-type';
export type DecryptRejectReason = HeaderRejectReason | 'bad-topic' | 'auth-failed';
export type PayloadRejectReason = 'bad-kind';

export type HeaderResult = { ok: true; header: EnvelopeHeader } | { ok: false; reason: HeaderRejectReason };
export type DecryptResult = { ok: true; header: EnvelopeHeader; plaintext: Buffer } | { ok: false; reason: DecryptRejectReason };
export type PayloadResult = { ok: true; kind: PayloadKindName; body: Buffer } | { ok: false; reason: PayloadRejectReason };

export function encodeHeader(sessionId: Uint8Array, counter: bigint): Buffer {
  if (sessionId.length !== SESSION_ID_BYTES) throw new RangeError(`session id must be ${SESSION_ID_BYTES} bytes`);
  if (counter < 0n || counter > MAX_U64) throw new RangeError('counter must fit in 64 bits');
  const h = Buffer.alloc(HEADER_BYTES);
  h[0] = PROTOCOL_VERSION;
  h[1] = MessageType.DATA;
  h.set(sessionId, 2);
  h.writeBigUInt64BE(counter, 2 + SESSION_ID_BYTES);
  return h;
}

/**
 * Order matters for the reasons callers see: version first (a future version may change the
 * length), then type, then length.
 */
export function decodeHeader(bytes: Uint8Array): HeaderResult {
  if (bytes.length < 1) return { ok: false, reason: 'short' };
  if (bytes[0] !== PROTOCOL_VERSION) return { ok: false, reason: 'bad-version' };
  if (bytes.length < 2) return { ok: false, reason: 'short' };
  if (bytes[1] !== MessageType.DATA) return { ok: false, reason: 'bad-type' };
  if (bytes.length < MIN_ENVELOPE_BYTES) return { ok: false, reason: 'short' };
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return {
    ok: true,
    header: {
      version: PROTOCOL_VERSION,
      type: MessageType.DATA,
      sessionId: Buffer.from(b.subarray(2, 2 + SESSION_ID_BYTES)),
      counter: b.readBigUInt64BE(2 + SESSION_ID_BYTES),
    },
  };
}

/**
 * AAD = "mavmq" || u8 version || u8 direction || u8 len(vid) || vid || u16 len(topic) || topic || header.
 * Binding the topic and direction stops the broker from moving an envelope between vehicles,
 * topics or directions; binding the header authenticates session id and counter.
 * Returns null for a topic or vehicle id that cannot occur legitimately.
 */
export function buildAad(ctx: EnvelopeContext, header: Uint8Array): Buffer | null {
  const topic = encodeTopic(ctx.topic);
  if (topic === null || !isValidVehicleId(ctx.vehicleId)) return null;
  return Buffer.concat([
    Buffer.from('mavmq', 'ascii'),
    Buffer.of(PROTOCOL_VERSION, DIRECTION_BYTE[ctx.direction]),
    encodeVehicleId(ctx.vehicleId),
    topic,
    header,
  ]);
}

/**
 * 96-bit nonce = 4 zero bytes || counter (u64 BE). Unique because each (session, direction) has
 * its own fresh key and the counter never repeats under it; no clock is involved.
 */
export function nonceForCounter(counter: bigint): Buffer {
  const n = Buffer.alloc(NONCE_BYTES);
  n.writeBigUInt64BE(counter, 4);
  return n;
}

export function encodePayload(kind: PayloadKindName, body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(PayloadKind[kind]), body]);
}

export function decodePayload(plaintext: Uint8Array): PayloadResult {
  const kind = plaintext.length > 0 ? KIND_BY_BYTE.get(plaintext[0] ?? -1) : undefined;
  if (kind === undefined) return { ok: false, reason: 'bad-kind' };
  return { ok: true, kind, body: Buffer.from(plaintext.subarray(1)) };
}

/**
 * Seals one envelope. Throws (MavmqError CRYPTO) only on caller bugs: wrong key size, bad topic,
 * unknown kind, counter out of range. Counter uniqueness is the caller's (session.ts) job.
 */
export function sealEnvelope(
  key: SecretKey,
  ctx: EnvelopeContext,
  sessionId: Uint8Array,
  counter: bigint,
  kind: PayloadKindName,
  body: Uint8Array,
): Buffer {
  if (key.lengthBytes !== SESSION_KEY_BYTES) throw new MavmqError(ErrorCodes.CRYPTO, 'envelope key must be 32 bytes');
  if (!isPayloadKind(kind)) throw new MavmqError(ErrorCodes.CRYPTO, `unknown payload kind ${String(kind)}`);
  const header = encodeHeader(sessionId, counter);
  const aad = buildAad(ctx, header);
  if (aad === null) throw new MavmqError(ErrorCodes.CRYPTO, `cannot seal for vehicle ${JSON.stringify(ctx.vehicleId)} / topic ${JSON.stringify(ctx.topic)}`);
  const plaintext = encodePayload(kind, body);
  const c = createCipheriv(AEAD_ALGORITHM, key.unsafeBytes(), nonceForCounter(counter), { authTagLength: TAG_BYTES });
  c.setAAD(aad, { plaintextLength: plaintext.length });
  const ciphertext = c.update(plaintext);
  c.final();
  return Buffer.concat([header, ciphertext, c.getAuthTag()]);
}

/**
 * Authenticates and decrypts. Does NOT check replay (session.ts does, around this call) and does
 * not interpret the payload. Never throws.
 */
export function decryptEnvelope(key: SecretKey, ctx: EnvelopeContext, envelope: Uint8Array): DecryptResult {
  const h = decodeHeader(envelope);
  if (!h.ok) return h;
  const aad = buildAad(ctx, envelope.subarray(0, HEADER_BYTES));
  if (aad === null) return { ok: false, reason: 'bad-topic' };
  const tagStart = envelope.length - TAG_BYTES;
  try {
    const d = createDecipheriv(AEAD_ALGORITHM, key.unsafeBytes(), nonceForCounter(h.header.counter), { authTagLength: TAG_BYTES });
    d.setAAD(aad, { plaintextLength: tagStart - HEADER_BYTES });
    d.setAuthTag(envelope.subarray(tagStart));
    const first = d.update(envelope.subarray(HEADER_BYTES, tagStart));
    const last = d.final(); // throws when the tag does not verify
    return { ok: true, header: h.header, plaintext: last.length === 0 ? first : Buffer.concat([first, last]) };
  } catch {
    return { ok: false, reason: 'auth-failed' };
  }
}

export type OpenEnvelopeResult =
  | { ok: true; header: EnvelopeHeader; kind: PayloadKindName; body: Buffer }
  | { ok: false; reason: DecryptRejectReason | PayloadRejectReason };

/** decryptEnvelope + decodePayload, without replay protection: for tests, vectors and tools. */
export function openEnvelope(key: SecretKey, ctx: EnvelopeContext, envelope: Uint8Array): OpenEnvelopeResult {
  const d = decryptEnvelope(key, ctx, envelope);
  if (!d.ok) return d;
  const p = decodePayload(d.plaintext);
  if (!p.ok) return p;
  return { ok: true, header: d.header, kind: p.kind, body: p.body };
}
