import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SecretKey, type RandomBytesFn } from '../../src/crypto/index.js';

export interface Vectors {
  inputs: {
    psk: string;
    vehicleId: string;
    airRandom: string;
    groundRandom: string;
    rehelloNonce: string;
    topicUp: string;
    topicDown: string;
    upKind: 'frames';
    upBody: string;
    downKind: 'control';
    downBodyUtf8: string;
  };
  keyFile: string;
  pskFingerprint: string;
  handshakeKeys: { helloMac: string; replyMac: string; rehelloMac: string };
  hello: string;
  reply: string;
  sessionKeys: { sessionId: string; up: string; down: string };
  upEnvelope: { counter: number; plaintext: string; nonce: string; aad: string; envelope: string };
  downEnvelope: { counter: number; plaintext: string; nonce: string; aad: string; envelope: string };
  rehello: string;
}

export function loadVectors(): Vectors {
  return JSON.parse(readFileSync(new URL('./vectors.json', import.meta.url), 'utf8')) as Vectors;
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
export const unhex = (s: string): Buffer => Buffer.from(s, 'hex');

/** Randomness that replays the given buffers, in order, and fails loudly on any mismatch. */
export function scriptedRandom(...chunks: (string | Uint8Array)[]): RandomBytesFn {
  const q = chunks.map((c) => (typeof c === 'string' ? unhex(c) : Buffer.from(c)));
  return (n) => {
    const next = q.shift();
    if (next === undefined) throw new Error(`scriptedRandom: no more chunks (wanted ${n} bytes)`);
    if (next.length !== n) throw new Error(`scriptedRandom: wanted ${n} bytes, next chunk has ${next.length}`);
    return next;
  };
}

/** Deterministic but never-repeating randomness for scenario tests (SHA-256 in counter mode). */
export function seededRandom(seed: string): RandomBytesFn {
  let i = 0;
  return (n) => {
    const out = Buffer.alloc(n);
    for (let off = 0; off < n; off += 32) createHash('sha256').update(`${seed}/${i++}`).digest().copy(out, off);
    return out;
  };
}

export function pskFromByte(b: number): SecretKey {
  return SecretKey.fromBytes(Buffer.alloc(32, b));
}

/** Every single-bit variant of bytes, with its position. */
export function* bitFlips(bytes: Uint8Array): Generator<{ pos: number; bit: number; flipped: Buffer }> {
  for (let pos = 0; pos < bytes.length; pos++) {
    for (let bit = 0; bit < 8; bit++) {
      const flipped = Buffer.from(bytes);
      flipped[pos] = (flipped[pos] ?? 0) ^ (1 << bit);
      yield { pos, bit, flipped };
    }
  }
}
