import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { AirSession, GroundSessionTable } from '../../src/crypto/session.js';
import {
  KeyRing,
  SecretKey,
  formatKeyFile,
  formatPreviousKeyFile,
  generateKey,
  parsePreviousKeyFile,
  readKeyFile,
  readPreviousKeyFile,
  rotateKeyFile,
  writeKeyFile,
} from '../../src/crypto/keys.js';
import { ErrorCodes, MavmqError } from '../../src/errors.js';
import { pskFromByte, seededRandom } from './helpers.js';

const VID = 'drone-1';
const UP = `mavmq/${VID}/up/telemetry`;
const DOWN = `mavmq/${VID}/down/command`;
const OLD = pskFromByte(0x11);
const NEW = pskFromByte(0x22);
const HOUR = 3_600_000;

function air(psk: SecretKey, seed = 'air'): AirSession {
  return new AirSession({ psk, vehicleId: VID, randomBytes: seededRandom(seed) });
}

/** HELLO -> REPLY -> first up envelope (key confirmation). Returns the session id, or the failure. */
function handshake(a: AirSession, g: GroundSessionTable): { ok: true; sessionId: string } | { ok: false; reason: string } {
  const h = g.onHello(a.startHello());
  if (!h.ok) return h;
  const r = a.onReply(h.reply);
  if (!r.ok) return r;
  const env = a.seal('keepalive', Buffer.alloc(0), UP);
  assert.ok(env.ok);
  const o = g.open(VID, env.envelope, UP);
  if (!o.ok) return o;
  assert.equal(o.newSession, true);
  return { ok: true, sessionId: o.sessionId };
}

/** Both directions carry data under the established session. */
function roundTrip(a: AirSession, g: GroundSessionTable): void {
  const up = a.seal('frames', Buffer.from('up'), UP);
  assert.ok(up.ok);
  const o = g.open(VID, up.envelope, UP);
  assert.ok(o.ok && o.body.toString() === 'up', inspect(o));
  const down = g.seal(VID, 'control', Buffer.from('down'), DOWN);
  assert.ok(down.ok);
  const d = a.open(down.envelope, DOWN);
  assert.ok(d.ok && d.body.toString() === 'down', inspect(d));
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mavmq-rot-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

void describe('gateway accepts either key during a rotation overlap', () => {
  void test('a vehicle still on the old key and one already on the new key both get sessions', () => {
    const g = new GroundSessionTable({ lookupPsk: (id) => (id === VID ? [NEW, OLD] : undefined), randomBytes: seededRandom('g') });
    const oldAir = air(OLD, 'old');
    const r1 = handshake(oldAir, g);
    assert.ok(r1.ok, JSON.stringify(r1));
    roundTrip(oldAir, g);

    // The technician copies the new key to the vehicle and restarts mavmq-air.
    const newAir = air(NEW, 'new');
    const r2 = handshake(newAir, g);
    assert.ok(r2.ok, JSON.stringify(r2));
    assert.notEqual(r2.sessionId, r1.sessionId);
    roundTrip(newAir, g);
  });

  void test('the session derives from the key that verified: an air with the other key cannot read it', () => {
    const g = new GroundSessionTable({ lookupPsk: () => [NEW, OLD], randomBytes: seededRandom('g2') });
    const a = air(OLD);
    assert.ok(handshake(a, g).ok);
    const down = g.seal(VID, 'control', Buffer.from('x'), DOWN);
    assert.ok(down.ok);
    // Same handshake randoms, other PSK: a different session id and keys altogether.
    const impostor = air(NEW);
    assert.deepEqual(impostor.open(down.envelope, DOWN), { ok: false, reason: 'unknown-session' });
  });

  void test('a key outside the candidates is refused; no candidates means unknown-vehicle', () => {
    const g = new GroundSessionTable({ lookupPsk: (id) => (id === VID ? [NEW, OLD] : []) });
    const r = g.onHello(air(pskFromByte(0x33)).startHello());
    assert.deepEqual(r, { ok: false, reason: 'auth-failed' });
    const other = new AirSession({ psk: NEW, vehicleId: 'drone-2' });
    assert.deepEqual(g.onHello(other.startHello()), { ok: false, reason: 'unknown-vehicle' });
  });

  void test('a single SecretKey (no rotation) works as before', () => {
    const g = new GroundSessionTable({ lookupPsk: () => NEW });
    const a = air(NEW);
    assert.ok(handshake(a, g).ok);
    roundTrip(a, g);
    assert.deepEqual(g.onHello(air(OLD).startHello()), { ok: false, reason: 'auth-failed' });
  });

  void test('after the expiry the old key is refused, without restarting the gateway', () => {
    let now = 1_000_000;
    const ring = new KeyRing(NEW, { key: OLD, expiresAtMs: now + 2 * HOUR }, () => now);
    const g = new GroundSessionTable({ lookupPsk: () => ring.candidates() });
    assert.ok(handshake(air(OLD, 'o1'), g).ok);
    now += 2 * HOUR;
    assert.equal(ring.inOverlap, false);
    assert.deepEqual(g.onHello(air(OLD, 'o2').startHello()), { ok: false, reason: 'auth-failed' });
    assert.ok(handshake(air(NEW, 'n1'), g).ok);
  });

  void test('after a gateway restart, REHELLOs alternate keys so an old-key air recovers within two', () => {
    const g1 = new GroundSessionTable({ lookupPsk: () => [NEW, OLD] });
    const a = air(OLD);
    assert.ok(handshake(a, g1).ok);
    const stale = a.seal('frames', Buffer.of(1), UP);
    assert.ok(stale.ok);

    const g2 = new GroundSessionTable({ lookupPsk: () => [NEW, OLD] }); // restarted: knows no session
    assert.deepEqual(g2.open(VID, stale.envelope, UP), { ok: false, reason: 'unknown-session' });
    const first = g2.onUnknownSession(VID, stale.envelope);
    assert.ok(first.ok);
    assert.deepEqual(a.onRehello(first.rehello), { ok: false, reason: 'auth-failed' }, 'first REHELLO is MAC\'d with the new key');
    const second = g2.onUnknownSession(VID, stale.envelope);
    assert.ok(second.ok);
    const rh = a.onRehello(second.rehello);
    assert.ok(rh.ok, JSON.stringify(rh));
    const h = g2.onHello(rh.hello);
    assert.ok(h.ok && a.onReply(h.reply).ok);
    const conf = a.seal('keepalive', Buffer.alloc(0), UP);
    assert.ok(conf.ok);
    const o = g2.open(VID, conf.envelope, UP);
    assert.ok(o.ok && o.newSession);
    roundTrip(a, g2);

    // Once a session exists, rekey requests use that session's key every time.
    for (let i = 0; i < 3; i++) {
      const rq = g2.requestRekey(VID);
      assert.ok(rq.ok);
      assert.ok(a.onRehello(rq.rehello).ok, `rekey request ${i} must verify at the air`);
    }
  });

  void test('logging the table or a ring shows no key material', () => {
    const ring = new KeyRing(NEW, { key: OLD, expiresAtMs: Date.now() + HOUR });
    const g = new GroundSessionTable({ lookupPsk: () => ring.candidates() });
    assert.ok(handshake(air(OLD), g).ok);
    for (const shown of [inspect(ring, { showHidden: true, depth: 10 }), JSON.stringify({ ring }), inspect(g, { showHidden: true, depth: 10 })]) {
      assert.ok(!shown.includes(OLD.unsafeBytes().toString('hex')) && !shown.includes(NEW.unsafeBytes().toString('base64url')), shown);
    }
  });
});

void describe('key files for rotation', () => {
  void test('rotateKeyFile: new key 0600, old key in .prev with its expiry, both readable; KeyRing offers both', () =>
    withDir(async (dir) => {
      const path = join(dir, `${VID}.key`);
      await writeKeyFile(path, OLD);
      const now = Date.parse('2030-01-01T00:00:00.000Z');
      const r = await rotateKeyFile(path, { overlapMs: 72 * HOUR, now: () => now });
      assert.ok(!r.current.equals(OLD));
      assert.ok((await readKeyFile(path)).equals(r.current));
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.equal((await stat(`${path}.prev`)).mode & 0o777, 0o600);
      assert.equal(await readFile(`${path}.prev`, 'utf8'), `${formatKeyFile(OLD)}expires 2030-01-04T00:00:00.000Z\n`);
      assert.deepEqual((await readdir(dir)).sort(), [`${VID}.key`, `${VID}.key.prev`]);
      const prev = await readPreviousKeyFile(path);
      assert.ok(prev !== null && prev.key.equals(OLD) && prev.expiresAtMs === now + 72 * HOUR);

      let clock = now;
      const ring = await KeyRing.load(path, () => clock);
      assert.equal(ring.candidates().length, 2);
      assert.ok(ring.candidates()[0]!.equals(r.current) && ring.candidates()[1]!.equals(OLD));
      clock = now + 72 * HOUR;
      assert.equal(ring.candidates().length, 1);
    }));

  void test('a second rotation inside the overlap is refused unless forced; after the expiry it is fine', () =>
    withDir(async (dir) => {
      const path = join(dir, `${VID}.key`);
      await writeKeyFile(path, OLD);
      let now = 1_000_000_000;
      const first = await rotateKeyFile(path, { overlapMs: HOUR, now: () => now });
      await assert.rejects(rotateKeyFile(path, { overlapMs: HOUR, now: () => now }), (err: unknown) => {
        assert.ok(err instanceof MavmqError && err.code === ErrorCodes.KEY_FILE, String(err));
        assert.match(err.message, /still in its overlap/);
        return true;
      });
      assert.ok((await readKeyFile(path)).equals(first.current), 'a refused rotation changes nothing');
      const forced = await rotateKeyFile(path, { overlapMs: HOUR, now: () => now, force: true });
      assert.ok((await readPreviousKeyFile(path))!.key.equals(first.current));
      now += 2 * HOUR;
      const third = await rotateKeyFile(path, { overlapMs: HOUR, now: () => now });
      assert.ok((await readPreviousKeyFile(path))!.key.equals(forced.current));
      assert.ok((await readKeyFile(path)).equals(third.current));
    }));

  void test('a rotation interrupted after writing .prev completes when run again', () =>
    withDir(async (dir) => {
      const path = join(dir, `${VID}.key`);
      await writeKeyFile(path, OLD);
      // State after a crash between the two writes: .prev holds the current key.
      await writeFile(`${path}.prev`, formatPreviousKeyFile({ key: OLD, expiresAtMs: Date.now() + HOUR }), { mode: 0o600 });
      const r = await rotateKeyFile(path, { overlapMs: HOUR });
      assert.ok((await readPreviousKeyFile(path))!.key.equals(OLD));
      assert.ok((await readKeyFile(path)).equals(r.current));
    }));

  void test('.prev files: missing is null, wrong mode and malformed content are refused without quoting the key', () =>
    withDir(async (dir) => {
      const path = join(dir, 'k.key');
      assert.equal(await readPreviousKeyFile(path), null);
      const k = generateKey();
      await writeFile(`${path}.prev`, formatPreviousKeyFile({ key: k, expiresAtMs: 0 }), { mode: 0o600 });
      await chmod(`${path}.prev`, 0o644);
      await assert.rejects(readPreviousKeyFile(path), (err: unknown) => err instanceof MavmqError && err.code === ErrorCodes.KEY_PERMISSIONS);
      const b64 = k.unsafeBytes().toString('base64url');
      for (const bad of [formatKeyFile(k), `${formatKeyFile(k)}expires tomorrow\n`, `${formatKeyFile(k)}expires 2030-01-01T00:00:00Z\nmore\n`]) {
        assert.throws(() => parsePreviousKeyFile(bad, 'x.prev'), (err: unknown) => {
          assert.ok(err instanceof MavmqError && err.code === ErrorCodes.KEY_FILE, String(err));
          assert.ok(!err.message.includes(b64.slice(0, 10)));
          return true;
        });
      }
      // A .prev is never accepted as a current key file.
      await chmod(`${path}.prev`, 0o600);
      await assert.rejects(readKeyFile(`${path}.prev`), /more than one line/);
    }));
});
