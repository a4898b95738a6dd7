import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  AirSession,
  GroundSessionTable,
  MIN_ENVELOPE_BYTES,
  type OpenResult,
  type SealResult,
  type SecretKey,
  type SessionLimits,
} from '../../src/crypto/index.js';
import { createCipheriv } from 'node:crypto';
import { inspect } from 'node:util';
import { buildAad, deriveSessionKeys, encodeHeader, nonceForCounter } from '../../src/crypto/index.js';
import { bitFlips, pskFromByte, scriptedRandom, seededRandom } from './helpers.js';

const VID = 'vehicle-7';
const UP = `mavmq/v1/${VID}/up`;
const DOWN = `mavmq/v1/${VID}/down`;
const PSK = pskFromByte(7);

function mkAir(seed = 'air', psk: SecretKey = PSK, limits?: SessionLimits): AirSession {
  return new AirSession({ psk, vehicleId: VID, randomBytes: seededRandom(seed), ...(limits ? { limits } : {}) });
}

function mkGround(seed = 'ground', psks: Record<string, SecretKey> = { [VID]: PSK }, limits?: SessionLimits): GroundSessionTable {
  return new GroundSessionTable({ lookupPsk: (v) => psks[v], randomBytes: seededRandom(seed), ...(limits ? { limits } : {}) });
}

function sealed(r: SealResult): Buffer {
  assert.ok(r.ok, r.ok ? '' : `seal failed: ${r.reason}`);
  return r.envelope;
}

function opened(r: OpenResult): Extract<OpenResult, { ok: true }> {
  assert.ok(r.ok, r.ok ? '' : `open failed: ${r.reason}`);
  return r;
}

function reason(r: { ok: boolean; reason?: string }): string | undefined {
  return r.ok ? 'ok' : r.reason;
}

/** Full handshake including the confirming up envelope. Returns the new session id. */
function connect(air: AirSession, ground: GroundSessionTable): string {
  const h = ground.onHello(air.startHello());
  assert.ok(h.ok, reason(h));
  const r = air.onReply(h.reply);
  assert.ok(r.ok, reason(r));
  const o = opened(ground.open(VID, sealed(air.seal('keepalive', Buffer.alloc(0), UP)), UP));
  assert.equal(o.newSession, true);
  assert.equal(ground.sessionId(VID), r.sessionId);
  return r.sessionId;
}

void describe('session establishment and round trips', () => {
  void test('HELLO → REPLY → first up envelope confirms; then both directions work', () => {
    const air = mkAir();
    const ground = mkGround();
    assert.equal(air.sessionId, null);
    assert.deepEqual(air.seal('frames', Buffer.of(1), UP), { ok: false, reason: 'no-session' });
    const hello = air.startHello();
    assert.ok(air.handshakePending);
    const h = ground.onHello(hello);
    assert.ok(h.ok);
    assert.equal(h.vehicleId, VID);
    // Pending only: the ground cannot seal yet, and does not consider it current.
    assert.equal(ground.sessionId(VID), null);
    assert.deepEqual(ground.seal(VID, 'control', Buffer.of(1), DOWN), { ok: false, reason: 'no-session' });
    const r = air.onReply(h.reply);
    assert.ok(r.ok);
    assert.equal(r.sessionId, h.pendingSessionId);
    assert.ok(!air.handshakePending);

    const up1 = air.seal('frames', Buffer.from('frame-1'), UP);
    assert.ok(up1.ok);
    assert.equal(up1.counter, 0n);
    const o1 = opened(ground.open(VID, up1.envelope, UP));
    assert.deepEqual([o1.kind, o1.body.toString(), o1.counter, o1.newSession], ['frames', 'frame-1', 0n, true]);
    const o2 = opened(ground.open(VID, sealed(air.seal('health', Buffer.from('{}'), UP)), UP));
    assert.equal(o2.newSession, false);
    assert.equal(o2.counter, 1n);

    const down = opened(air.open(sealed(ground.seal(VID, 'control', Buffer.from('arm'), DOWN)), DOWN));
    assert.deepEqual([down.kind, down.body.toString(), down.sessionId], ['control', 'arm', r.sessionId]);
  });

  void test('out-of-order delivery inside the window is accepted exactly once', () => {
    const air = mkAir();
    const ground = mkGround();
    connect(air, ground);
    const envs = Array.from({ length: 50 }, (_, i) => sealed(air.seal('frames', Buffer.of(i), UP)));
    const order = [...envs.keys()].reverse();
    for (const i of order) assert.equal(opened(ground.open(VID, envs[i]!, UP)).body[0], i);
    for (const e of envs) assert.equal(reason(ground.open(VID, e, UP)), 'replay');
  });
});

void describe('attacks are rejected with the right reason', () => {
  void test('replay inside a session, both directions', () => {
    const air = mkAir();
    const ground = mkGround();
    connect(air, ground);
    const up = sealed(air.seal('frames', Buffer.of(1), UP));
    assert.ok(ground.open(VID, up, UP).ok);
    assert.equal(reason(ground.open(VID, up, UP)), 'replay');
    const down = sealed(ground.seal(VID, 'control', Buffer.of(2), DOWN));
    assert.ok(air.open(down, DOWN).ok);
    assert.equal(reason(air.open(down, DOWN)), 'replay');
  });

  void test('too-old: more than 2048 behind the highest accepted counter', () => {
    const air = mkAir();
    const ground = mkGround();
    connect(air, ground); // counter 0 used
    const early = sealed(air.seal('frames', Buffer.of(1), UP)); // counter 1, held back by the attacker
    let last: Buffer = early;
    for (let i = 0; i < 2048; i++) last = sealed(air.seal('frames', Buffer.of(1), UP));
    assert.ok(ground.open(VID, last, UP).ok); // counter 2049: window is (1, 2049]
    assert.equal(reason(ground.open(VID, early, UP)), 'too-old');
  });

  void test('the window moves only after the tag verifies: a forged far-future counter changes nothing', () => {
    const air = mkAir();
    const ground = mkGround();
    connect(air, ground);
    const genuine = sealed(air.seal('frames', Buffer.of(1), UP)); // counter 1
    const forged = Buffer.from(genuine);
    forged.writeBigUInt64BE(1n << 40n, 10); // counter field
    assert.equal(reason(ground.open(VID, forged, UP)), 'auth-failed');
    assert.ok(ground.open(VID, genuine, UP).ok, 'genuine envelope still accepted');
    assert.equal(ground.stats(VID)?.highestReceived, 1n);
    assert.equal(ground.stats(VID)?.authFailures, 1);
  });

  void test('envelope moved to another topic, another vehicle, or reflected up↔down', () => {
    const psk8 = PSK; // even with the SAME PSK on two vehicles (misconfiguration)
    const ground = mkGround('g', { [VID]: PSK, 'vehicle-8': psk8 });
    const air = mkAir();
    connect(air, ground);
    const air8 = new AirSession({ psk: psk8, vehicleId: 'vehicle-8', randomBytes: seededRandom('air8') });
    const h8 = ground.onHello(air8.startHello());
    assert.ok(h8.ok && air8.onReply(h8.reply).ok);

    const up = sealed(air.seal('frames', Buffer.of(1), UP));
    assert.equal(reason(ground.open(VID, up, `mavmq/v1/${VID}/up2`)), 'auth-failed', 'other topic');
    assert.equal(reason(ground.open(VID, up, DOWN)), 'auth-failed', 'down topic');
    assert.equal(reason(ground.open('vehicle-8', up, 'mavmq/v1/vehicle-8/up')), 'unknown-session', 'other vehicle');
    // Reflection: the air's own up envelope sent back to it on its down topic (same session id!).
    assert.equal(reason(air.open(up, DOWN)), 'auth-failed', 'up reflected as down');
    assert.equal(reason(air.open(up, UP)), 'auth-failed', 'up reflected, same topic');
    // Counter 3 is above everything the ground accepted up (0), so the replay check passes and the tag decides.
    let down: Buffer = Buffer.alloc(0);
    for (let i = 0; i < 4; i++) down = sealed(ground.seal(VID, 'control', Buffer.of(1), DOWN));
    assert.equal(reason(ground.open(VID, down, DOWN)), 'auth-failed', 'down reflected to ground');
    assert.equal(reason(air8.open(down, 'mavmq/v1/vehicle-8/down')), 'unknown-session');
    // The untouched envelope still opens afterwards: failures consumed nothing.
    assert.ok(ground.open(VID, up, UP).ok);
  });

  void test('each single-bit flip at every byte position of an envelope is rejected, then the original is accepted', () => {
    const air = mkAir();
    const ground = mkGround();
    connect(air, ground);
    const env = sealed(air.seal('frames', Buffer.from('fd0900000001'), UP));
    assert.equal(env.readBigUInt64BE(10), 1n);
    for (const { pos, bit, flipped } of bitFlips(env)) {
      const expected = pos === 0 ? 'bad-version' : pos === 1 ? 'bad-type' : pos < 10 ? 'unknown-session' : 'auth-failed';
      // Flipping the counter 1 → 0 lands on the already-accepted keepalive: caught even before the tag.
      const atGround = pos >= 10 && pos < 18 && flipped.readBigUInt64BE(10) === 0n ? 'replay' : expected;
      assert.equal(reason(ground.open(VID, flipped, UP)), atGround, `byte ${pos} bit ${bit}`);
      // The air has accepted no down envelope yet, so there every counter flip is a tag failure.
      assert.equal(reason(air.open(flipped, DOWN)), expected, `air side, byte ${pos} bit ${bit}`);
    }
    assert.ok(ground.open(VID, env, UP).ok);
  });

  void test('truncated envelopes: short below the minimum, auth-failed above', () => {
    const air = mkAir();
    const ground = mkGround();
    connect(air, ground);
    const env = sealed(air.seal('frames', Buffer.alloc(40, 1), UP));
    for (let len = 0; len < env.length; len++) {
      assert.equal(reason(ground.open(VID, env.subarray(0, len), UP)), len < MIN_ENVELOPE_BYTES ? 'short' : 'auth-failed', `len ${len}`);
    }
    assert.ok(ground.open(VID, env, UP).ok);
  });

  void test('unknown protocol version has its own reason, on every entry point', () => {
    const air = mkAir();
    const ground = mkGround();
    connect(air, ground);
    const env = sealed(air.seal('frames', Buffer.of(1), UP));
    const v2 = Buffer.from(env);
    v2[0] = 2;
    assert.equal(reason(ground.open(VID, v2, UP)), 'bad-version');
    assert.equal(reason(air.open(v2, DOWN)), 'bad-version');
    const hello = Buffer.from(mkAir('x').startHello());
    hello[0] = 2;
    assert.equal(reason(ground.onHello(hello)), 'bad-version');
    assert.equal(reason(air.onReply(hello)), 'bad-version');
    assert.equal(reason(air.onRehello(hello)), 'bad-version');
  });

  void test('plaintext garbage never throws and is never accepted, on any entry point', () => {
    const air = mkAir();
    const ground = mkGround();
    connect(air, ground);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.constantFrom(0, 1, 2), (bytes, shape) => {
        const b = Buffer.from(bytes);
        // Shape some inputs so they get past the cheap checks.
        if (shape === 1 && b.length >= 2) b.set([1, 0x10]);
        if (shape === 2 && b.length >= 10) b.set([1, 0x10, ...Buffer.from(air.sessionId!, 'hex')]);
        for (const r of [
          ground.open(VID, b, UP),
          air.open(b, DOWN),
          ground.onHello(b),
          air.onReply(b),
          air.onRehello(b),
          ground.open('not a vid', b, UP),
        ]) {
          assert.equal(r.ok, false);
        }
        const u = ground.onUnknownSession(VID, b);
        if (u.ok) assert.ok(b.length >= MIN_ENVELOPE_BYTES);
      }),
      { numRuns: 1000 },
    );
    // Still working afterwards.
    assert.ok(ground.open(VID, sealed(air.seal('frames', Buffer.of(1), UP)), UP).ok);
  });

  void test('an authentic envelope with an unknown kind is bad-kind but consumes its counter', () => {
    // A newer peer could send a kind we do not know: build one by hand under the real session key.
    const airRandom = Buffer.alloc(16, 0xa0);
    const groundRandom = Buffer.alloc(16, 0xb0);
    const air = new AirSession({ psk: PSK, vehicleId: VID, randomBytes: scriptedRandom(airRandom) });
    const ground = new GroundSessionTable({ lookupPsk: () => PSK, randomBytes: scriptedRandom(groundRandom) });
    const h = ground.onHello(air.startHello());
    assert.ok(h.ok && air.onReply(h.reply).ok);
    const k = deriveSessionKeys(PSK, VID, airRandom, groundRandom);
    const header = encodeHeader(k.sessionId, 5n); // a counter the air itself has not used yet
    const c = createCipheriv('chacha20-poly1305', k.up.unsafeBytes(), nonceForCounter(5n), { authTagLength: 16 });
    c.setAAD(buildAad({ vehicleId: VID, direction: 'up', topic: UP }, header)!, { plaintextLength: 3 });
    const ct = c.update(Buffer.of(0x7f, 1, 2));
    c.final();
    const env = Buffer.concat([header, ct, c.getAuthTag()]);
    assert.equal(reason(ground.open(VID, env, UP)), 'bad-kind');
    assert.equal(ground.sessionId(VID), air.sessionId, 'authentic, so it confirmed the pending session');
    assert.equal(reason(ground.open(VID, env, UP)), 'replay', 'and its counter is consumed');
    assert.equal(opened(ground.open(VID, sealed(air.seal('frames', Buffer.of(1), UP)), UP)).counter, 0n);
  });

  void test('wrong key: HELLO and REPLY fail authentication, nothing is created', () => {
    const ground = mkGround();
    const wrongAir = mkAir('w', pskFromByte(8));
    assert.equal(reason(ground.onHello(wrongAir.startHello())), 'auth-failed');
    assert.equal(ground.sessionId(VID), null);
    const goodAir = mkAir();
    const h = ground.onHello(goodAir.startHello());
    assert.ok(h.ok);
    const wrongAir2 = mkAir('w2', pskFromByte(8));
    wrongAir2.startHello();
    assert.equal(reason(wrongAir2.onReply(h.reply)), 'auth-failed');
    assert.equal(reason(ground.onHello(mkAir('u').startHello().fill(0x41, 3, 12))), 'unknown-vehicle');
  });

  void test('REPLY handling: replayed → no-pending, to an older HELLO → stale-reply, other vehicle → wrong-vehicle', () => {
    const air = mkAir();
    const ground = mkGround();
    const h1 = ground.onHello(air.startHello());
    const h2 = ground.onHello(air.startHello()); // air retried before REPLY 1 arrived
    assert.ok(h1.ok && h2.ok);
    assert.equal(reason(air.onReply(h1.reply)), 'stale-reply');
    assert.ok(air.onReply(h2.reply).ok);
    assert.equal(reason(air.onReply(h2.reply)), 'no-pending');
    assert.equal(reason(air.onReply(h1.reply)), 'no-pending');
    const other = mkGround('o', { 'vehicle-8': PSK });
    const h8 = other.onHello(new AirSession({ psk: PSK, vehicleId: 'vehicle-8', randomBytes: seededRandom('8') }).startHello());
    assert.ok(h8.ok);
    assert.equal(reason(air.onReply(h8.reply)), 'wrong-vehicle');
    assert.equal(reason(air.onReply(air.startHello())), 'bad-type');
  });

  void test('a replayed HELLO does not break the running session', () => {
    const air = mkAir();
    const ground = mkGround();
    const hello = air.startHello();
    const h = ground.onHello(hello);
    assert.ok(h.ok && air.onReply(h.reply).ok);
    const sid = air.sessionId!;
    assert.ok(ground.open(VID, sealed(air.seal('frames', Buffer.of(0), UP)), UP).ok);

    // The attacker replays the recorded HELLO, many times.
    for (let i = 0; i < 10; i++) {
      const again = ground.onHello(hello);
      assert.ok(again.ok, 'a replayed HELLO verifies (it is authentic), but only creates a pending session');
      assert.notEqual(again.pendingSessionId, sid, 'fresh ground random: never the same keys');
      assert.equal(reason(air.onReply(again.reply)), 'no-pending');
    }
    assert.equal(ground.sessionId(VID), sid);
    const o = opened(ground.open(VID, sealed(air.seal('frames', Buffer.of(1), UP)), UP));
    assert.equal(o.newSession, false);
    assert.equal(o.sessionId, sid);
    assert.ok(air.open(sealed(ground.seal(VID, 'control', Buffer.of(1), DOWN)), DOWN).ok);
  });

  void test('a duplicate HELLO (QoS 1 redelivery) gets the identical REPLY', () => {
    const air = mkAir();
    const ground = mkGround();
    const hello = air.startHello();
    const a = ground.onHello(hello);
    const b = ground.onHello(hello);
    assert.ok(a.ok && b.ok);
    assert.deepEqual(a.reply, b.reply);
  });

  void test('at most maxPendingPerVehicle pending sessions; the genuine one survives a few replays', () => {
    const air = mkAir();
    const ground = mkGround();
    connect(air, ground);
    const old = mkAir('old').startHello(); // a HELLO of a previous boot, recorded by the attacker
    const h = ground.onHello(air.startHello()); // genuine rekey
    assert.ok(h.ok);
    for (let i = 0; i < 3; i++) assert.ok(ground.onHello(old).ok);
    assert.ok(air.onReply(h.reply).ok);
    assert.equal(opened(ground.open(VID, sealed(air.seal('keepalive', Buffer.alloc(0), UP)), UP)).newSession, true);
    assert.equal(ground.sessionId(VID), air.sessionId);
  });
});

void describe('reboots', () => {
  void test('air reboot: the new AirSession accepts nothing from the old session; the gateway drops the old one on confirmation', () => {
    const ground = mkGround();
    const air1 = mkAir('boot-1');
    connect(air1, ground);
    const oldUp = sealed(air1.seal('frames', Buffer.of(1), UP)); // never delivered (held by attacker)
    const oldUpDelivered = sealed(air1.seal('frames', Buffer.of(2), UP));
    assert.ok(ground.open(VID, oldUpDelivered, UP).ok);
    const oldDown = sealed(ground.seal(VID, 'control', Buffer.from('disarm'), DOWN));

    const air2 = mkAir('boot-2'); // reboot: all state gone
    assert.equal(reason(air2.open(oldDown, DOWN)), 'unknown-session');
    // Until air2 confirms, the gateway still holds the old session (it cannot tell reboot from replay).
    const newSid = connect(air2, ground);
    assert.notEqual(newSid, air1.sessionId);
    // After confirmation the old session is gone at the gateway: even never-seen old envelopes fail.
    assert.equal(reason(ground.open(VID, oldUp, UP)), 'unknown-session');
    assert.equal(reason(ground.open(VID, oldUpDelivered, UP)), 'unknown-session');
    assert.equal(reason(air2.open(oldDown, DOWN)), 'unknown-session');
    assert.ok(air2.open(sealed(ground.seal(VID, 'control', Buffer.of(1), DOWN)), DOWN).ok);
  });

  void test('gateway reboot: unknown-session → REHELLO → new handshake; old envelopes and the REHELLO are then useless', () => {
    const air = mkAir();
    const ground1 = mkGround('g1');
    const sid1 = connect(air, ground1);
    const oldUp = sealed(air.seal('frames', Buffer.of(1), UP));
    assert.ok(ground1.open(VID, oldUp, UP).ok);
    const oldDown = sealed(ground1.seal(VID, 'control', Buffer.of(9), DOWN));

    const ground2 = mkGround('g2'); // reboot
    const up = sealed(air.seal('frames', Buffer.of(2), UP));
    assert.equal(reason(ground2.open(VID, up, UP)), 'unknown-session');
    const rq = ground2.onUnknownSession(VID, up);
    assert.ok(rq.ok);
    const rh = air.onRehello(rq.rehello);
    assert.ok(rh.ok);
    // A second REHELLO while the handshake runs resends the same HELLO (idempotent), not a new one.
    const rq2 = ground2.onUnknownSession(VID, up);
    assert.ok(rq2.ok);
    const rh2 = air.onRehello(rq2.rehello);
    assert.ok(rh2.ok);
    assert.deepEqual(rh2.hello, rh.hello);
    // Meanwhile the old session still works for the air (ground1's in-flight downs, if any).
    const h = ground2.onHello(rh.hello);
    assert.ok(h.ok && air.onReply(h.reply).ok);
    const sid2 = air.sessionId!;
    assert.notEqual(sid2, sid1);
    assert.ok(opened(ground2.open(VID, sealed(air.seal('keepalive', Buffer.alloc(0), UP)), UP)).newSession);
    // Old-session traffic is dead at the new gateway; the recorded REHELLO no longer names our session.
    assert.equal(reason(ground2.open(VID, oldUp, UP)), 'unknown-session');
    assert.equal(reason(air.onRehello(rq.rehello)), 'unknown-session');
    // The old session's down envelope: the air kept it only until the first down under the new one.
    assert.ok(air.open(sealed(ground2.seal(VID, 'control', Buffer.of(1), DOWN)), DOWN).ok);
    assert.equal(reason(air.open(oldDown, DOWN)), 'unknown-session');
  });

  void test('REHELLO is unforgeable and bound to the vehicle, and the gateway only issues it for unknown sessions', () => {
    const air = mkAir();
    const ground = mkGround();
    connect(air, ground);
    const up = sealed(air.seal('frames', Buffer.of(1), UP));
    assert.equal(reason(ground.onUnknownSession(VID, up)), 'known-session');
    assert.equal(reason(ground.onUnknownSession('vehicle-9', up)), 'unknown-vehicle');
    assert.equal(reason(ground.onUnknownSession('bad/vid', up)), 'bad-vehicle-id');
    assert.equal(reason(ground.onUnknownSession(VID, up.subarray(0, 5))), 'short');

    const other = mkGround('other', { [VID]: pskFromByte(99) }); // attacker's gateway with a wrong key
    const forged = other.onUnknownSession(VID, up);
    assert.ok(forged.ok);
    assert.equal(reason(air.onRehello(forged.rehello)), 'auth-failed');
    const fresh = mkGround('fresh');
    const real = fresh.onUnknownSession(VID, up);
    assert.ok(real.ok);
    for (const { flipped } of bitFlips(real.rehello)) assert.equal(air.onRehello(flipped).ok, false);
    assert.ok(air.onRehello(real.rehello).ok);
    assert.equal(reason(mkAir('fresh-air').onRehello(real.rehello)), 'unknown-session', 'a rebooted air ignores it');
  });
});

void describe('rekey and limits', () => {
  const limits: SessionLimits = { rekeyAfterEnvelopes: 5n, maxEnvelopesPerSession: 8n, rekeyAfterAuthFailures: 3 };

  void test('needsRekey after the threshold, hard stop at the maximum, rekey while the old session keeps working', () => {
    const air = mkAir('a', PSK, limits);
    const ground = mkGround('g', { [VID]: PSK }, limits);
    const sid1 = connect(air, ground); // 1 envelope
    for (let i = 0; i < 3; i++) assert.ok(ground.open(VID, sealed(air.seal('frames', Buffer.of(i), UP)), UP).ok);
    assert.equal(air.needsRekey, false);
    assert.ok(ground.open(VID, sealed(air.seal('frames', Buffer.of(4), UP)), UP).ok); // 5 sent
    assert.equal(air.needsRekey, true);
    assert.equal(ground.needsRekey(VID), true, 'the ground sees the peer counter too');
    for (let i = 0; i < 3; i++) assert.ok(air.seal('frames', Buffer.of(i), UP).ok);
    assert.deepEqual(air.seal('frames', Buffer.of(9), UP), { ok: false, reason: 'exhausted' });

    // Rekey: the old session is still current for both until the REPLY / the confirmation.
    const h = ground.onHello(air.startHello());
    assert.ok(h.ok);
    const inflightDown = sealed(ground.seal(VID, 'control', Buffer.from('old'), DOWN)); // ground still on sid1
    assert.ok(air.onReply(h.reply).ok);
    const sid2 = air.sessionId!;
    assert.notEqual(sid2, sid1);
    assert.equal(air.needsRekey, false);
    assert.equal(opened(air.open(inflightDown, DOWN)).sessionId, sid1, 'in-flight down of the previous session still accepted');
    const confirm = opened(ground.open(VID, sealed(air.seal('keepalive', Buffer.alloc(0), UP)), UP));
    assert.equal(confirm.newSession, true);
    assert.equal(opened(air.open(sealed(ground.seal(VID, 'control', Buffer.from('new'), DOWN)), DOWN)).sessionId, sid2);
    assert.equal(ground.needsRekey(VID), false);
  });

  void test('the gateway can ask for a rekey (REHELLO for the current session)', () => {
    const air = mkAir();
    const ground = mkGround();
    assert.equal(reason(ground.requestRekey(VID)), 'no-session');
    connect(air, ground);
    const rq = ground.requestRekey(VID);
    assert.ok(rq.ok);
    const rh = air.onRehello(rq.rehello);
    assert.ok(rh.ok);
    const h = ground.onHello(rh.hello);
    assert.ok(h.ok && air.onReply(h.reply).ok);
  });

  void test('repeated tag failures make needsRekey true (bounds forgery attempts per key)', () => {
    const air = mkAir('a', PSK, limits);
    const ground = mkGround('g', { [VID]: PSK }, limits);
    connect(air, ground);
    const env = sealed(air.seal('frames', Buffer.of(1), UP));
    const bad = Buffer.from(env);
    bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 1;
    for (let i = 0; i < 3; i++) assert.equal(reason(ground.open(VID, bad, UP)), 'auth-failed');
    assert.equal(ground.needsRekey(VID), true);
  });

  void test('onlyInSession: a command never crosses into a new session', () => {
    const air = mkAir();
    const ground = mkGround();
    const sid1 = connect(air, ground);
    const first = ground.seal(VID, 'control', Buffer.from('cmd'), DOWN, { onlyInSession: sid1 });
    assert.ok(first.ok);
    assert.ok(ground.seal(VID, 'control', Buffer.from('cmd'), DOWN, { onlyInSession: first.sessionId }).ok, 'retry in the same session is fine');
    connect(air, ground); // rekey
    assert.deepEqual(ground.seal(VID, 'control', Buffer.from('cmd'), DOWN, { onlyInSession: first.sessionId }), { ok: false, reason: 'session-changed' });
    assert.deepEqual(air.seal('control', Buffer.from('x'), UP, { onlyInSession: sid1 }), { ok: false, reason: 'session-changed' });
  });

  void test('bad limits and bad vehicle ids are refused at construction', () => {
    assert.throws(() => mkAir('a', PSK, { rekeyAfterEnvelopes: 10n, maxEnvelopesPerSession: 10n }), /session limits/);
    assert.throws(() => mkAir('a', PSK, { rekeyAfterEnvelopes: 0n }), /session limits/);
    assert.throws(() => new AirSession({ psk: PSK, vehicleId: 'a/b' }), /invalid vehicle id/);
    assert.throws(() => new GroundSessionTable({ lookupPsk: () => PSK, maxPendingPerVehicle: 0 }), /maxPending/);
  });

  void test('logging a state machine shows no key material', () => {
    const air = mkAir();
    const ground = mkGround();
    connect(air, ground);
    const pskHex = PSK.unsafeBytes().toString('hex');
    for (const shown of [inspect(air, { showHidden: true, depth: 20 }), inspect(ground, { showHidden: true, depth: 20 }), JSON.stringify({ air, ground })]) {
      assert.ok(!shown.includes(pskHex) && !/[0-9a-f]{64}/.test(shown), shown);
    }
  });

  void test('forget() drops a vehicle', () => {
    const air = mkAir();
    const ground = mkGround();
    connect(air, ground);
    ground.forget(VID);
    assert.equal(ground.sessionId(VID), null);
    assert.equal(reason(ground.open(VID, sealed(air.seal('frames', Buffer.of(1), UP)), UP)), 'unknown-session');
  });
});
