/**
 * Handshake messages (docs/PROTOCOL.md §4): HELLO (air → ground), REPLY (ground → air) and
 * REHELLO (ground → air). Encoding, decoding and MAC verification only; the state machines that
 * decide what to accept live in session.ts. Decoding never throws.
 *
 *   HELLO   = ver 0x01 | type 0x01 | vid | airRandom(16)                    | mac(32)
 *   REPLY   = ver 0x01 | type 0x02 | vid | groundRandom(16) | airRandom(16) | mac(32)
 *   REHELLO = ver 0x01 | type 0x03 | vid | nonce(16) | sessionId(8)          | mac(32)
 *   vid = u8 length || ASCII vehicle id;  mac = HMAC-SHA256(K_type, every preceding byte)
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { HandshakeKeys } from './hkdf.js';
import type { SecretKey } from './keys.js';
import {
  MAC_BYTES,
  MessageType,
  PROTOCOL_VERSION,
  RANDOM_BYTES,
  SESSION_ID_BYTES,
  assertVehicleId,
  encodeVehicleId,
  isValidVehicleId,
} from './wire.js';

export type HandshakeDecodeReason = 'short' | 'bad-length' | 'bad-version' | 'bad-type' | 'bad-vehicle-id';

interface Signed {
  vehicleId: string;
  /** Every byte the MAC covers (all bytes before it). */
  signed: Buffer;
  mac: Buffer;
}
export interface HelloMessage extends Signed {
  type: 'hello';
  airRandom: Buffer;
}
export interface ReplyMessage extends Signed {
  type: 'reply';
  groundRandom: Buffer;
  airRandom: Buffer;
}
export interface RehelloMessage extends Signed {
  type: 'rehello';
  nonce: Buffer;
  sessionId: Buffer;
}
export type HandshakeMessage = HelloMessage | ReplyMessage | RehelloMessage;
export type HandshakeDecodeResult = { ok: true; message: HandshakeMessage } | { ok: false; reason: HandshakeDecodeReason };

/** Bytes after the vehicle id and before the MAC, per type. */
const BODY_BYTES: ReadonlyMap<number, number> = new Map([
  [MessageType.HELLO, RANDOM_BYTES],
  [MessageType.REPLY, 2 * RANDOM_BYTES],
  [MessageType.REHELLO, RANDOM_BYTES + SESSION_ID_BYTES],
]);

function hmac(key: SecretKey, data: Uint8Array): Buffer {
  return createHmac('sha256', key.unsafeBytes()).update(data).digest();
}

function encode(key: SecretKey, type: number, vehicleId: string, fields: Uint8Array[]): Buffer {
  assertVehicleId(vehicleId);
  const signed = Buffer.concat([Buffer.of(PROTOCOL_VERSION, type), encodeVehicleId(vehicleId), ...fields]);
  return Buffer.concat([signed, hmac(key, signed)]);
}

function need(bytes: Uint8Array, lengthBytes: number, name: string): void {
  if (bytes.length !== lengthBytes) throw new RangeError(`${name} must be ${lengthBytes} bytes, got ${bytes.length}`);
}

export function encodeHello(keys: HandshakeKeys, vehicleId: string, airRandom: Uint8Array): Buffer {
  need(airRandom, RANDOM_BYTES, 'airRandom');
  return encode(keys.helloMac, MessageType.HELLO, vehicleId, [airRandom]);
}

export function encodeReply(keys: HandshakeKeys, vehicleId: string, groundRandom: Uint8Array, airRandom: Uint8Array): Buffer {
  need(groundRandom, RANDOM_BYTES, 'groundRandom');
  need(airRandom, RANDOM_BYTES, 'airRandom');
  return encode(keys.replyMac, MessageType.REPLY, vehicleId, [groundRandom, airRandom]);
}

export function encodeRehello(keys: HandshakeKeys, vehicleId: string, nonce: Uint8Array, sessionId: Uint8Array): Buffer {
  need(nonce, RANDOM_BYTES, 'nonce');
  need(sessionId, SESSION_ID_BYTES, 'sessionId');
  return encode(keys.rehelloMac, MessageType.REHELLO, vehicleId, [nonce, sessionId]);
}

/** Structure only: the MAC is NOT checked here (the ground needs the vehicle id to find the key). */
export function decodeHandshake(bytes: Uint8Array): HandshakeDecodeResult {
  if (bytes.length < 1) return { ok: false, reason: 'short' };
  if (bytes[0] !== PROTOCOL_VERSION) return { ok: false, reason: 'bad-version' };
  if (bytes.length < 3) return { ok: false, reason: 'short' };
  const type = bytes[1] ?? -1;
  const bodyBytes = BODY_BYTES.get(type);
  if (bodyBytes === undefined) return { ok: false, reason: 'bad-type' };
  const vidLen = bytes[2] ?? 0;
  const total = 3 + vidLen + bodyBytes + MAC_BYTES;
  if (bytes.length < total) return { ok: false, reason: 'short' };
  if (bytes.length > total) return { ok: false, reason: 'bad-length' };
  const b = Buffer.from(bytes); // copy: results must not alias the caller's (possibly reused) buffer
  const vehicleId = b.toString('latin1', 3, 3 + vidLen);
  if (!isValidVehicleId(vehicleId)) return { ok: false, reason: 'bad-vehicle-id' };
  let p = 3 + vidLen;
  const take = (n: number): Buffer => b.subarray(p, (p += n));
  const signedEnd = total - MAC_BYTES;
  const common = { vehicleId, signed: b.subarray(0, signedEnd), mac: b.subarray(signedEnd) };
  switch (type) {
    case MessageType.HELLO:
      return { ok: true, message: { type: 'hello', ...common, airRandom: take(RANDOM_BYTES) } };
    case MessageType.REPLY:
      return { ok: true, message: { type: 'reply', ...common, groundRandom: take(RANDOM_BYTES), airRandom: take(RANDOM_BYTES) } };
    default:
      return { ok: true, message: { type: 'rehello', ...common, nonce: take(RANDOM_BYTES), sessionId: take(SESSION_ID_BYTES) } };
  }
}

/** Constant-time check of the message's MAC under the key for its own type. */
export function verifyHandshakeMac(keys: HandshakeKeys, message: HandshakeMessage): boolean {
  const key = message.type === 'hello' ? keys.helloMac : message.type === 'reply' ? keys.replyMac : keys.rehelloMac;
  const expected = hmac(key, message.signed);
  return message.mac.length === expected.length && timingSafeEqual(message.mac, expected);
}
