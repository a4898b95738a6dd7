/**
 * Constants and field encodings shared by the handshake, the key schedule and the envelope.
 * Every value here is part of the wire protocol (docs/PROTOCOL.md): changing one is a new
 * PROTOCOL_VERSION.
 */
import { ErrorCodes, MavmqError } from '../errors.js';

export const PROTOCOL_VERSION = 0x01;

/** Second byte of every message; one namespace so a receiver can dispatch on it. */
export const MessageType = {
  HELLO: 0x01,
  REPLY: 0x02,
  REHELLO: 0x03,
  DATA: 0x10,
} as const;

/** up = air → ground, down = ground → air. */
export type Direction = 'up' | 'down';
export const DIRECTION_BYTE: Readonly<Record<Direction, number>> = { up: 0x01, down: 0x02 };

export const RANDOM_BYTES = 16;
export const SESSION_ID_BYTES = 8;
export const MAC_BYTES = 32;
export const SESSION_KEY_BYTES = 32;

export const VEHICLE_ID_MAX_BYTES = 64;
/** Topic-level safe (no '/', '+', '#', NUL), ASCII so byte length = character length. */
const VEHICLE_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
/** MQTT topic names are at most 65535 bytes of UTF-8. */
export const TOPIC_MAX_BYTES = 0xffff;

export function isValidVehicleId(vehicleId: string): boolean {
  return VEHICLE_ID_RE.test(vehicleId);
}

export function assertVehicleId(vehicleId: string): void {
  if (!isValidVehicleId(vehicleId)) {
    throw new MavmqError(
      ErrorCodes.CRYPTO,
      `invalid vehicle id ${JSON.stringify(vehicleId)}: 1-${VEHICLE_ID_MAX_BYTES} characters of A-Z a-z 0-9 . _ -`,
    );
  }
}

/** u8 length || ASCII bytes. The caller has validated the id. */
export function encodeVehicleId(vehicleId: string): Buffer {
  const bytes = Buffer.from(vehicleId, 'ascii');
  return Buffer.concat([Buffer.of(bytes.length), bytes]);
}

/** u16 big-endian length || UTF-8 bytes, or null when the topic cannot be an MQTT topic name. */
export function encodeTopic(topic: string): Buffer | null {
  if (topic.length === 0) return null;
  const bytes = Buffer.from(topic, 'utf8');
  if (bytes.length > TOPIC_MAX_BYTES) return null;
  const len = Buffer.alloc(2);
  len.writeUInt16BE(bytes.length, 0);
  return Buffer.concat([len, bytes]);
}
