import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  HEADER_BYTES,
  MIN_ENVELOPE_BYTES,
  PayloadKind,
  SecretKey,
  TAG_BYTES,
  decodeHeader,
  decodePayload,
  encodeHeader,
  openEnvelope,
  sealEnvelope,
  type EnvelopeContext,
  type PayloadKindName,
} from '../../src/crypto/index.js';
import { bitFlips } from './helpers.js';

const KEY = SecretKey.fromBytes(Buffer.alloc(32, 0x42));
const SID = Buffer.from('0102030405060708', 'hex');
const CTX: EnvelopeContext = { vehicleId: 'vehicle-7', direction: 'up', topic: 'mavmq/v1/vehicle-7/up' };

void describe('envelope header', () => {
  void test('layout: version, type, session id, u64 BE counter', () => {
    const h = encodeHeader(SID, 0x0102030405060708n);
    assert.equal(h.toString('hex'), '0110' + '0102030405060708' + '0102030405060708');
    assert.equal(h.length, HEADER_BYTES);
    const env = Buffer.concat([h, Buffer.alloc(1 + TAG_BYTES)]);
    const d = decodeHeader(env);
    assert.ok(d.ok);
    assert.deepEqual(d.header.sessionId, SID);
    assert.equal(d.header.counter, 0x0102030405060708n);
    assert.throws(() => encodeHeader(SID, -1n), RangeError);
    assert.throws(() => encodeHeader(SID, 1n << 64n), RangeError);
    assert.throws(() => encodeHeader(Buffer.alloc(7), 0n), RangeError);
  });

  void test('reasons: short, bad-version (checked first), bad-type', () => {
    const good = Buffer.concat([encodeHeader(SID, 1n), Buffer.alloc(1 + TAG_BYTES)]);
    assert.equal(good.length, MIN_ENVELOPE_BYTES);
    assert.deepEqual(decodeHeader(Buffer.alloc(0)), { ok: false, reason: 'short' });
    assert.deepEqual(decodeHeader(Buffer.of(1)), { ok: false, reason: 'short' });
    assert.deepEqual(decodeHeader(good.subarray(0, MIN_ENVELOPE_BYTES - 1)), { ok: false, reason: 'short' });
    assert.deepEqual(decodeHeader(Buffer.of(2)), { ok: false, reason: 'bad-version' });
    assert.deepEqual(decodeHeader(Buffer.concat([Buffer.of(2), good.subarray(1)])), { ok: false, reason: 'bad-version' });
    assert.deepEqual(decodeHeader(Buffer.concat([Buffer.of(1, 0x01), good.subarray(2)])), { ok: false, reason: 'bad-type' });
  });
});

void describe('seal/open', () => {
  void test('round trip for every kind, empty and 64 KB bodies', () => {
    for (const kind of Object.keys(PayloadKind) as PayloadKindName[]) {
      for (const body of [Buffer.alloc(0), Buffer.from('hello'), Buffer.alloc(65536, 9)]) {
        const env = sealEnvelope(KEY, CTX, SID, 77n, kind, body);
        assert.equal(env.length, HEADER_BYTES + 1 + body.length + TAG_BYTES);
        const o = openEnvelope(KEY, CTX, env);
        assert.ok(o.ok, o.ok ? '' : o.reason);
        assert.equal(o.kind, kind);
        assert.deepEqual(o.body, body);
        assert.equal(o.header.counter, 77n);
      }
    }
  });

  void test('the AAD binds vehicle id, topic and direction; wrong key fails', () => {
    const env = sealEnvelope(KEY, CTX, SID, 3n, 'frames', Buffer.from('abc'));
    const wrong: EnvelopeContext[] = [
      { ...CTX, vehicleId: 'vehicle-8' },
      { ...CTX, topic: 'mavmq/v1/vehicle-7/down' },
      { ...CTX, topic: 'mavmq/v1/vehicle-7/up/' },
      { ...CTX, direction: 'down' },
    ];
    for (const ctx of wrong) assert.deepEqual(openEnvelope(KEY, ctx, env), { ok: false, reason: 'auth-failed' }, JSON.stringify(ctx));
    assert.deepEqual(openEnvelope(SecretKey.fromBytes(Buffer.alloc(32, 0x43)), CTX, env), { ok: false, reason: 'auth-failed' });
    assert.deepEqual(openEnvelope(KEY, { ...CTX, topic: '' }, env), { ok: false, reason: 'bad-topic' });
    assert.deepEqual(openEnvelope(KEY, { ...CTX, topic: 'x'.repeat(70000) }, env), { ok: false, reason: 'bad-topic' });
  });

  void test('every single-bit flip at every byte position is rejected with the right reason', () => {
    const env = sealEnvelope(KEY, CTX, SID, 5n, 'health', Buffer.from('{"ok":true}'));
    for (const { pos, bit, flipped } of bitFlips(env)) {
      const r = openEnvelope(KEY, CTX, flipped);
      const expected = pos === 0 ? 'bad-version' : pos === 1 ? 'bad-type' : 'auth-failed';
      assert.deepEqual(r, { ok: false, reason: expected }, `byte ${pos} bit ${bit}`);
    }
    assert.ok(openEnvelope(KEY, CTX, env).ok);
  });

  void test('truncation at every length and appended bytes are rejected', () => {
    const env = sealEnvelope(KEY, CTX, SID, 5n, 'frames', Buffer.from('0123456789'));
    for (let len = 0; len < env.length; len++) {
      const r = openEnvelope(KEY, CTX, env.subarray(0, len));
      assert.ok(!r.ok);
      assert.equal(r.reason, len < MIN_ENVELOPE_BYTES ? 'short' : 'auth-failed', `len ${len}`);
    }
    assert.deepEqual(openEnvelope(KEY, CTX, Buffer.concat([env, Buffer.of(0)])), { ok: false, reason: 'auth-failed' });
  });

  void test('an authentic envelope with an unknown kind byte is bad-kind', () => {
    assert.deepEqual(decodePayload(Buffer.of(0x00, 1, 2)), { ok: false, reason: 'bad-kind' });
    assert.deepEqual(decodePayload(Buffer.of(0x7f)), { ok: false, reason: 'bad-kind' });
    assert.deepEqual(decodePayload(Buffer.alloc(0)), { ok: false, reason: 'bad-kind' });
    const d = decodePayload(Buffer.of(PayloadKind.frames, 0xfd));
    assert.ok(d.ok && d.kind === 'frames' && d.body.equals(Buffer.of(0xfd)));
  });

  void test('seal refuses caller bugs loudly', () => {
    assert.throws(() => sealEnvelope(KEY, { ...CTX, topic: '' }, SID, 0n, 'frames', Buffer.alloc(0)), /cannot seal/);
    assert.throws(() => sealEnvelope(KEY, { ...CTX, vehicleId: 'a/b' }, SID, 0n, 'frames', Buffer.alloc(0)), /cannot seal/);
    assert.throws(() => sealEnvelope(KEY, CTX, SID, 0n, 'nope' as PayloadKindName, Buffer.alloc(0)), /unknown payload kind/);
    assert.throws(() => sealEnvelope(SecretKey.fromBytes(Buffer.alloc(16)), CTX, SID, 0n, 'frames', Buffer.alloc(0)), /32 bytes/);
  });

  void test('property: arbitrary bytes never throw and never open', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, fixHeader) => {
        const b = Buffer.from(bytes);
        if (fixHeader && b.length >= 2) {
          b[0] = 1;
          b[1] = 0x10;
        }
        const r = openEnvelope(KEY, CTX, b);
        assert.equal(r.ok, false);
      }),
      { numRuns: 2000 },
    );
  });
});
