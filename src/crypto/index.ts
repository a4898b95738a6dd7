/**
 * End-to-end protection of everything relayed through the (untrusted) MQTT broker.
 * Protocol: docs/PROTOCOL.md. Most callers need only AirSession / GroundSessionTable and the key file functions.
 */
export {
  SecretKey,
  PSK_LENGTH_BYTES,
  KEY_FILE_TAG,
  defaultRandomBytes,
  generateKey,
  formatKeyFile,
  parseKeyFile,
  writeKeyFile,
  readKeyFile,
  type RandomBytesFn,
  type WriteKeyFileOptions,
} from './keys.js';
export {
  PROTOCOL_VERSION,
  MessageType,
  DIRECTION_BYTE,
  RANDOM_BYTES,
  SESSION_ID_BYTES,
  MAC_BYTES,
  SESSION_KEY_BYTES,
  VEHICLE_ID_MAX_BYTES,
  isValidVehicleId,
  type Direction,
} from './wire.js';
export { hkdfSha256, kdfInfo, KdfLabel, deriveHandshakeKeys, deriveSessionKeys, pskFingerprint, type HandshakeKeys, type SessionKeys } from './hkdf.js';
export { ReplayWindow, REPLAY_WINDOW_BITS, type WindowVerdict } from './replay-window.js';
export {
  AEAD_ALGORITHM,
  HEADER_BYTES,
  TAG_BYTES,
  NONCE_BYTES,
  MIN_ENVELOPE_BYTES,
  PayloadKind,
  isPayloadKind,
  encodeHeader,
  decodeHeader,
  buildAad,
  nonceForCounter,
  encodePayload,
  decodePayload,
  sealEnvelope,
  decryptEnvelope,
  openEnvelope,
  type PayloadKindName,
  type EnvelopeContext,
  type EnvelopeHeader,
  type HeaderRejectReason,
  type DecryptRejectReason,
  type PayloadRejectReason,
  type OpenEnvelopeResult,
} from './envelope.js';
export {
  encodeHello,
  encodeReply,
  encodeRehello,
  decodeHandshake,
  verifyHandshakeMac,
  type HandshakeMessage,
  type HelloMessage,
  type ReplyMessage,
  type RehelloMessage,
  type HandshakeDecodeReason,
  type HandshakeDecodeResult,
} from './handshake.js';
export {
  AirSession,
  GroundSessionTable,
  DEFAULT_REKEY_AFTER_ENVELOPES,
  DEFAULT_MAX_ENVELOPES_PER_SESSION,
  DEFAULT_REKEY_AFTER_AUTH_FAILURES,
  type AirSessionOptions,
  type GroundSessionTableOptions,
  type SessionLimits,
  type SessionStats,
  type SealOptions,
  type SealResult,
  type SealRejectReason,
  type OpenResult,
  type EnvelopeRejectReason,
  type HandshakeRejectReason,
  type ReplyResult,
  type RehelloResult,
  type HelloResult,
  type RehelloRequestResult,
} from './session.js';

import type { EnvelopeRejectReason, HandshakeRejectReason } from './session.js';
/** Every reason any receive path can give; stable strings (docs/PROTOCOL.md §11). */
export type RejectReason = EnvelopeRejectReason | HandshakeRejectReason;
