/**
 * Key schedule (docs/PROTOCOL.md §5). Everything is HKDF-SHA256 (RFC 5869) from the PSK, with an
 * `info` that binds the protocol version, a purpose label and the vehicle id, so that no two
 * purposes, versions or vehicles can ever share a derived key even if a PSK were reused.
 */
import { hkdfSync } from 'node:crypto';
import { SecretKey } from './keys.js';
import { MAC_BYTES, PROTOCOL_VERSION, RANDOM_BYTES, SESSION_ID_BYTES, SESSION_KEY_BYTES, encodeVehicleId } from './wire.js';

export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, lengthBytes: number): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, lengthBytes));
}

/** The labels are wire constants. */
export const KdfLabel = {
  HELLO_MAC: 'hello-mac',
  REPLY_MAC: 'reply-mac',
  REHELLO_MAC: 'rehello-mac',
  KEY_UP: 'key-up',
  KEY_DOWN: 'key-down',
  SESSION_ID: 'session-id',
  FINGERPRINT: 'fingerprint',
} as const;
export type KdfLabel = (typeof KdfLabel)[keyof typeof KdfLabel];

/** info = "mavmq" || u8 version || u8 len(label) || label || u8 len(vehicleId) || vehicleId. Length prefixes keep it unambiguous. */
export function kdfInfo(label: KdfLabel, vehicleId: string): Buffer {
  const l = Buffer.from(label, 'ascii');
  const vid = vehicleId === '' ? Buffer.of(0) : encodeVehicleId(vehicleId);
  return Buffer.concat([Buffer.from('mavmq', 'ascii'), Buffer.of(PROTOCOL_VERSION, l.length), l, vid]);
}

const EMPTY = Buffer.alloc(0);

/** Long-term MAC keys for the handshake messages, one per message type so none can be reflected as another. */
export interface HandshakeKeys {
  helloMac: SecretKey;
  replyMac: SecretKey;
  rehelloMac: SecretKey;
}

/** Salt is empty (RFC 5869 then uses 32 zero bytes): the PSK is already uniformly random. */
export function deriveHandshakeKeys(psk: SecretKey, vehicleId: string): HandshakeKeys {
  const ikm = psk.unsafeBytes();
  const derive = (label: KdfLabel): SecretKey => {
    const b = hkdfSha256(ikm, EMPTY, kdfInfo(label, vehicleId), MAC_BYTES);
    const k = SecretKey.fromBytes(b);
    b.fill(0);
    return k;
  };
  return { helloMac: derive(KdfLabel.HELLO_MAC), replyMac: derive(KdfLabel.REPLY_MAC), rehelloMac: derive(KdfLabel.REHELLO_MAC) };
}

export interface SessionKeys {
  /** Public: travels in every envelope header. */
  sessionId: Buffer;
  /** AEAD key for air → ground envelopes. */
  up: SecretKey;
  /** AEAD key for ground → air envelopes. */
  down: SecretKey;
}

/**
 * Per-session keys. salt = airRandom || groundRandom: both sides contribute fresh randomness, so
 * neither a replayed HELLO nor a replayed REPLY can make a session key repeat.
 */
export function deriveSessionKeys(psk: SecretKey, vehicleId: string, airRandom: Uint8Array, groundRandom: Uint8Array): SessionKeys {
  if (airRandom.length !== RANDOM_BYTES || groundRandom.length !== RANDOM_BYTES) {
    throw new RangeError(`session randoms must be ${RANDOM_BYTES} bytes each`);
  }
  const ikm = psk.unsafeBytes();
  const salt = Buffer.concat([airRandom, groundRandom]);
  const key = (label: KdfLabel): SecretKey => {
    const b = hkdfSha256(ikm, salt, kdfInfo(label, vehicleId), SESSION_KEY_BYTES);
    const k = SecretKey.fromBytes(b);
    b.fill(0);
    return k;
  };
  return {
    sessionId: hkdfSha256(ikm, salt, kdfInfo(KdfLabel.SESSION_ID, vehicleId), SESSION_ID_BYTES),
    up: key(KdfLabel.KEY_UP),
    down: key(KdfLabel.KEY_DOWN),
  };
}

/**
 * A public, non-reversible 8-byte identifier of a PSK (hex), so operators can check that the air
 * and the gateway hold the same key without ever showing the key.
 */
export function pskFingerprint(psk: SecretKey): string {
  return hkdfSha256(psk.unsafeBytes(), EMPTY, kdfInfo(KdfLabel.FINGERPRINT, ''), 8).toString('hex');
}
