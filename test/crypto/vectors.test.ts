/**
 * Test vectors (docs/PROTOCOL.md §12, test/crypto/vectors.json):
 *  1. the library reproduces every value exactly;
 *  2. an independent re-implementation written from the document, using node:crypto directly and
 *     none of src/crypto, reproduces them too (so the library and the document agree);
 *  3. the document contains every value (so it cannot drift from the code).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHmac, hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  AirSession,
  GroundSessionTable,
  SecretKey,
  buildAad,
  deriveHandshakeKeys,
  deriveSessionKeys,
  encodeHeader,
  encodePayload,
  formatKeyFile,
  nonceForCounter,
  openEnvelope,
  parseKeyFile,
  pskFingerprint,
} from '../../src/crypto/index.js';
import { hex, loadVectors, scriptedRandom, unhex } from './helpers.js';

const V = loadVectors();
const I = V.inputs;

void describe('test vectors: library', () => {
  const psk = SecretKey.fromBytes(unhex(I.psk));

  void test('key file and fingerprint', () => {
    assert.equal(formatKeyFile(psk), V.keyFile);
    assert.ok(parseKeyFile(V.keyFile).equals(psk));
    assert.equal(pskFingerprint(psk), V.pskFingerprint);
  });

  void test('derived keys', () => {
    const hk = deriveHandshakeKeys(psk, I.vehicleId);
    assert.deepEqual(
      { helloMac: hex(hk.helloMac.unsafeBytes()), replyMac: hex(hk.replyMac.unsafeBytes()), rehelloMac: hex(hk.rehelloMac.unsafeBytes()) },
      V.handshakeKeys,
    );
    const sk = deriveSessionKeys(psk, I.vehicleId, unhex(I.airRandom), unhex(I.groundRandom));
    assert.deepEqual({ sessionId: hex(sk.sessionId), up: hex(sk.up.unsafeBytes()), down: hex(sk.down.unsafeBytes()) }, V.sessionKeys);
  });

  void test('HELLO, REPLY, envelopes and REHELLO through the state machines', () => {
    // The second air random is for the HELLO that onRehello starts at the end.
    const air = new AirSession({ psk, vehicleId: I.vehicleId, randomBytes: scriptedRandom(I.airRandom, Buffer.alloc(16)) });
    const ground = new GroundSessionTable({ lookupPsk: () => psk, randomBytes: scriptedRandom(I.groundRandom, I.rehelloNonce) });
    const hello = air.startHello();
    assert.equal(hex(hello), V.hello);
    const h = ground.onHello(hello);
    assert.ok(h.ok);
    assert.equal(hex(h.reply), V.reply);
    const r = air.onReply(h.reply);
    assert.ok(r.ok);
    assert.equal(r.sessionId, V.sessionKeys.sessionId);

    const up = air.seal(I.upKind, unhex(I.upBody), I.topicUp);
    assert.ok(up.ok);
    assert.equal(hex(up.envelope), V.upEnvelope.envelope);
    const o = ground.open(I.vehicleId, up.envelope, I.topicUp);
    assert.ok(o.ok && o.kind === I.upKind && hex(o.body) === I.upBody);

    const down = ground.seal(I.vehicleId, I.downKind, Buffer.from(I.downBodyUtf8, 'utf8'), I.topicDown);
    assert.ok(down.ok);
    assert.equal(hex(down.envelope), V.downEnvelope.envelope);
    const d = air.open(down.envelope, I.topicDown);
    assert.ok(d.ok && d.kind === I.downKind && d.body.toString('utf8') === I.downBodyUtf8);

    const rq = ground.requestRekey(I.vehicleId);
    assert.ok(rq.ok);
    assert.equal(hex(rq.rehello), V.rehello);
    assert.ok(air.onRehello(rq.rehello).ok);
  });

  void test('AAD, nonce and plaintext of both envelopes', () => {
    const sid = unhex(V.sessionKeys.sessionId);
    for (const [e, direction, topic, plaintext] of [
      [V.upEnvelope, 'up', I.topicUp, encodePayload(I.upKind, unhex(I.upBody))],
      [V.downEnvelope, 'down', I.topicDown, encodePayload(I.downKind, Buffer.from(I.downBodyUtf8, 'utf8'))],
    ] as const) {
      assert.equal(hex(plaintext), e.plaintext);
      assert.equal(hex(nonceForCounter(BigInt(e.counter))), e.nonce);
      assert.equal(hex(buildAad({ vehicleId: I.vehicleId, direction, topic }, encodeHeader(sid, BigInt(e.counter)))!), e.aad);
      const key = SecretKey.fromBytes(unhex(direction === 'up' ? V.sessionKeys.up : V.sessionKeys.down));
      assert.ok(openEnvelope(key, { vehicleId: I.vehicleId, direction, topic }, unhex(e.envelope)).ok);
    }
  });
});

void describe('test vectors: independent implementation from docs/PROTOCOL.md', () => {
  // Deliberately re-derived from the document's byte-level description only.
  const psk = unhex(I.psk);
  const vid = Buffer.from(I.vehicleId, 'ascii');
  const lp8 = (b: Buffer): Buffer => Buffer.concat([Buffer.of(b.length), b]);
  const info = (label: string, v: Buffer = vid): Buffer => Buffer.concat([Buffer.from('mavmq'), Buffer.of(1), lp8(Buffer.from(label)), lp8(v)]);
  const hkdf = (salt: Buffer, label: string, n: number, v?: Buffer): Buffer => Buffer.from(hkdfSync('sha256', psk, salt, info(label, v), n));
  const mac = (key: Buffer, data: Buffer): Buffer => createHmac('sha256', key).update(data).digest();

  void test('everything', () => {
    const none = Buffer.alloc(0);
    const kHello = hkdf(none, 'hello-mac', 32);
    const kReply = hkdf(none, 'reply-mac', 32);
    const kRehello = hkdf(none, 'rehello-mac', 32);
    assert.deepEqual({ helloMac: hex(kHello), replyMac: hex(kReply), rehelloMac: hex(kRehello) }, V.handshakeKeys);
    assert.equal(hex(hkdf(none, 'fingerprint', 8, none)), V.pskFingerprint);
    assert.equal(V.keyFile, `mavmq-psk-v1 ${psk.toString('base64url')}\n`);

    const helloSigned = Buffer.concat([Buffer.of(1, 0x01), lp8(vid), unhex(I.airRandom)]);
    assert.equal(hex(Buffer.concat([helloSigned, mac(kHello, helloSigned)])), V.hello);
    const replySigned = Buffer.concat([Buffer.of(1, 0x02), lp8(vid), unhex(I.groundRandom), unhex(I.airRandom)]);
    assert.equal(hex(Buffer.concat([replySigned, mac(kReply, replySigned)])), V.reply);

    const salt = Buffer.concat([unhex(I.airRandom), unhex(I.groundRandom)]);
    const sid = hkdf(salt, 'session-id', 8);
    const kUp = hkdf(salt, 'key-up', 32);
    const kDown = hkdf(salt, 'key-down', 32);
    assert.deepEqual({ sessionId: hex(sid), up: hex(kUp), down: hex(kDown) }, V.sessionKeys);

    const envelope = (key: Buffer, dir: number, topic: string, plaintext: Buffer): Buffer => {
      const counter = Buffer.alloc(8); // counter 0
      const header = Buffer.concat([Buffer.of(1, 0x10), sid, counter]);
      const t = Buffer.from(topic, 'utf8');
      const tlen = Buffer.alloc(2);
      tlen.writeUInt16BE(t.length);
      const aad = Buffer.concat([Buffer.from('mavmq'), Buffer.of(1, dir), lp8(vid), tlen, t, header]);
      const nonce = Buffer.concat([Buffer.alloc(4), counter]);
      const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      c.setAAD(aad, { plaintextLength: plaintext.length });
      const ct = c.update(plaintext);
      c.final();
      return Buffer.concat([header, ct, c.getAuthTag()]);
    };
    assert.equal(hex(envelope(kUp, 0x01, I.topicUp, Buffer.concat([Buffer.of(0x01), unhex(I.upBody)]))), V.upEnvelope.envelope);
    assert.equal(hex(envelope(kDown, 0x02, I.topicDown, Buffer.concat([Buffer.of(0x03), Buffer.from(I.downBodyUtf8)]))), V.downEnvelope.envelope);

    const rehelloSigned = Buffer.concat([Buffer.of(1, 0x03), lp8(vid), unhex(I.rehelloNonce), sid]);
    assert.equal(hex(Buffer.concat([rehelloSigned, mac(kRehello, rehelloSigned)])), V.rehello);
  });
});

void describe('test vectors: docs/PROTOCOL.md contains every value', () => {
  void test('no drift between the document and vectors.json', () => {
    const doc = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8');
    const values: [string, string][] = [];
    const walk = (prefix: string, v: unknown): void => {
      if (typeof v === 'string') values.push([prefix, v.trimEnd()]);
      else if (typeof v === 'number') values.push([prefix, String(v)]);
      else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}.${k}` : k, x);
    };
    const { description: _d, ...rest } = V as Vectors & { description?: string };
    walk('', rest);
    assert.ok(values.length > 20);
    for (const [name, value] of values) assert.ok(doc.includes(value), `docs/PROTOCOL.md is missing ${name} = ${value}`);
  });
});

type Vectors = ReturnType<typeof loadVectors>;
