import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeHandshake,
  deriveHandshakeKeys,
  deriveSessionKeys,
  encodeHello,
  encodeRehello,
  encodeReply,
  verifyHandshakeMac,
  MessageType,
} from '../../src/crypto/index.js';
import { bitFlips, pskFromByte } from './helpers.js';

const PSK = pskFromByte(1);
const VID = 'vehicle-7';
const KEYS = deriveHandshakeKeys(PSK, VID);
const R1 = Buffer.alloc(16, 0xa1);
const R2 = Buffer.alloc(16, 0xb2);
const SID = Buffer.alloc(8, 0x5e);

void describe('handshake messages', () => {
  void test('encode → decode → verify, for each type', () => {
    const hello = decodeHandshake(encodeHello(KEYS, VID, R1));
    assert.ok(hello.ok && hello.message.type === 'hello');
    assert.equal(hello.message.vehicleId, VID);
    assert.deepEqual(hello.message.airRandom, R1);
    assert.ok(verifyHandshakeMac(KEYS, hello.message));

    const reply = decodeHandshake(encodeReply(KEYS, VID, R2, R1));
    assert.ok(reply.ok && reply.message.type === 'reply');
    assert.deepEqual(reply.message.groundRandom, R2);
    assert.deepEqual(reply.message.airRandom, R1);
    assert.ok(verifyHandshakeMac(KEYS, reply.message));

    const rh = decodeHandshake(encodeRehello(KEYS, VID, R2, SID));
    assert.ok(rh.ok && rh.message.type === 'rehello');
    assert.deepEqual(rh.message.nonce, R2);
    assert.deepEqual(rh.message.sessionId, SID);
    assert.ok(verifyHandshakeMac(KEYS, rh.message));
  });

  void test('wrong PSK or another vehicle id does not verify', () => {
    const m = decodeHandshake(encodeHello(KEYS, VID, R1));
    assert.ok(m.ok);
    assert.ok(!verifyHandshakeMac(deriveHandshakeKeys(pskFromByte(2), VID), m.message));
    // Same PSK reused on another vehicle (misconfiguration): keys still differ per vehicle id.
    assert.ok(!verifyHandshakeMac(deriveHandshakeKeys(PSK, 'vehicle-8'), m.message));
  });

  void test('reflection: one MAC key per message type, and a retyped message does not verify', () => {
    const k = [KEYS.helloMac, KEYS.replyMac, KEYS.rehelloMac].map((x) => x.unsafeBytes().toString('hex'));
    assert.equal(new Set(k).size, 3);
    // HELLO and REPLY differ in length, so present a REPLY's bytes as a HELLO of matching shape:
    // same signed bytes and MAC, type re-labelled. The HELLO key does not accept the REPLY key's MAC.
    const d = decodeHandshake(encodeReply(KEYS, VID, R2, R1));
    assert.ok(d.ok && d.message.type === 'reply');
    assert.ok(verifyHandshakeMac(KEYS, d.message));
    assert.ok(!verifyHandshakeMac(KEYS, { ...d.message, type: 'hello' }));
    assert.ok(!verifyHandshakeMac(KEYS, { ...d.message, type: 'rehello', nonce: R2, sessionId: SID }));
    const retyped = encodeHello(KEYS, VID, R1);
    retyped[1] = MessageType.REHELLO;
    assert.deepEqual(decodeHandshake(retyped), { ok: false, reason: 'short' });
  });

  void test('decode reasons: short, bad-length, bad-version, bad-type, bad-vehicle-id', () => {
    const hello = encodeHello(KEYS, VID, R1);
    assert.deepEqual(decodeHandshake(Buffer.alloc(0)), { ok: false, reason: 'short' });
    assert.deepEqual(decodeHandshake(hello.subarray(0, 2)), { ok: false, reason: 'short' });
    for (let len = 3; len < hello.length; len++) assert.deepEqual(decodeHandshake(hello.subarray(0, len)), { ok: false, reason: 'short' });
    assert.deepEqual(decodeHandshake(Buffer.concat([hello, Buffer.of(0)])), { ok: false, reason: 'bad-length' });
    assert.deepEqual(decodeHandshake(Buffer.concat([Buffer.of(2), hello.subarray(1)])), { ok: false, reason: 'bad-version' });
    assert.deepEqual(decodeHandshake(Buffer.concat([Buffer.of(1, 0x10), hello.subarray(2)])), { ok: false, reason: 'bad-type' });
    const badVid = Buffer.from(hello);
    badVid[3] = '/'.charCodeAt(0);
    assert.deepEqual(decodeHandshake(badVid), { ok: false, reason: 'bad-vehicle-id' });
    const zeroVid = Buffer.concat([Buffer.of(1, 1, 0), R1, Buffer.alloc(32)]);
    assert.deepEqual(decodeHandshake(zeroVid), { ok: false, reason: 'bad-vehicle-id' });
    assert.throws(() => encodeHello(KEYS, 'a/b', R1), /invalid vehicle id/);
    assert.throws(() => encodeHello(KEYS, VID, Buffer.alloc(15)), RangeError);
  });

  void test('every single-bit flip of each message fails decode or MAC', () => {
    for (const msg of [encodeHello(KEYS, VID, R1), encodeReply(KEYS, VID, R2, R1), encodeRehello(KEYS, VID, R2, SID)]) {
      for (const { pos, bit, flipped } of bitFlips(msg)) {
        const d = decodeHandshake(flipped);
        if (!d.ok) continue;
        // A flipped vehicle id that is still valid must fail under that vehicle's own keys too.
        const keys = d.message.vehicleId === VID ? KEYS : deriveHandshakeKeys(PSK, d.message.vehicleId);
        assert.ok(!verifyHandshakeMac(keys, d.message), `byte ${pos} bit ${bit}`);
      }
    }
  });

  void test('property: decode never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 150 }), (bytes) => {
        const d = decodeHandshake(bytes);
        if (d.ok) assert.ok(!verifyHandshakeMac(KEYS, d.message));
      }),
      { numRuns: 2000 },
    );
  });

  void test('session keys: distinct per direction, per randoms, per vehicle, per PSK', () => {
    const a = deriveSessionKeys(PSK, VID, R1, R2);
    const seen = new Set<string>();
    const add = (k: ReturnType<typeof deriveSessionKeys>): void => {
      for (const v of [k.up.unsafeBytes(), k.down.unsafeBytes()]) seen.add(v.toString('hex'));
      seen.add(`sid:${k.sessionId.toString('hex')}`);
    };
    add(a);
    add(deriveSessionKeys(PSK, VID, R2, R1));
    add(deriveSessionKeys(PSK, 'vehicle-8', R1, R2));
    add(deriveSessionKeys(pskFromByte(2), VID, R1, R2));
    assert.equal(seen.size, 12);
    assert.equal(a.sessionId.length, 8);
    assert.ok(deriveSessionKeys(PSK, VID, R1, R2).up.equals(a.up), 'deterministic');
  });
});
