import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialPort } from 'serialport';
import { SerialTransport } from '../../src/link/serial.js';
import { parseEndpointUrl } from '../../src/link/endpoint-url.js';
import { MavmqError } from '../../src/errors.js';
import { silentLogger } from '../../src/obs/logger.js';
import type { ByteLink, Transport } from '../../src/link/transport.js';
import { sleep, waitUntil, nextLinkEvent } from '../fakes/wait.js';
import { PtyPair, socatAvailable } from '../fakes/pty.js';

const skip = socatAvailable() ? false : 'socat not installed (apt-get install -y socat)';


/** Resolves with the next 'open'/'close' link (rejects after timeoutMs). */

/** Accumulates everything a transport (or a peer port) delivers. */
class Sink {
  private chunks: Buffer[] = [];
  length = 0;
  push(chunk: Buffer): void {
    this.chunks.push(Buffer.from(chunk));
    this.length += chunk.length;
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
  reset(): void {
    this.chunks = [];
    this.length = 0;
  }
  waitFor(n: number, timeoutMs = 3_000): Promise<void> {
    return waitUntil(() => this.length >= n, timeoutMs, `${n} bytes (have ${this.length})`);
  }
}

function serialSpec(path: string, baud = 921600) {
  const spec = parseEndpointUrl(`serial://${path}?baud=${baud}`);
  assert.equal(spec.kind, 'serial');
  return spec;
}

/** The far end of the cable (what the autopilot would be), through serialport's stream API. */
async function openPeer(path: string): Promise<{ port: SerialPort; rx: Sink }> {
  const port = new SerialPort({ path, baudRate: 921600, autoOpen: false });
  port.on('error', () => {}); // hang-ups during unplug tests are expected
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  const rx = new Sink();
  port.on('data', (chunk: Buffer) => rx.push(chunk));
  return { port, rx };
}

async function closePeer(port: SerialPort): Promise<void> {
  if (port.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
}

/** Writes `data` to the link in MAVLink-sized pieces. */
function writeFramed(link: ByteLink, data: Buffer, frameBytes = 280): void {
  for (let i = 0; i < data.length; i += frameBytes) assert.equal(link.write(data.subarray(i, i + frameBytes)), true);
}

async function assertBothWays(t: Transport, link: ByteLink, sink: Sink, peer: { port: SerialPort; rx: Sink }, bytes: number): Promise<void> {
  sink.reset();
  peer.rx.reset();
  const up = randomBytes(bytes);
  const down = randomBytes(bytes);
  peer.port.write(up);
  writeFramed(link, down);
  await Promise.all([sink.waitFor(bytes), peer.rx.waitFor(bytes)]).catch((err: unknown) => {
    const detail = `transport got ${sink.length}/${bytes}, device got ${peer.rx.length}/${bytes}, stats ${JSON.stringify(t.stats())}`;
    throw new Error(`${err instanceof Error ? err.message : String(err)}; ${detail}`);
  });
  assert.ok(sink.bytes().equals(up), 'bytes from the device arrive intact through the transport');
  assert.ok(peer.rx.bytes().equals(down), 'bytes written to the link arrive intact at the device');
  assert.equal(t.stats().connected, true);
}

void describe('serial transport over socat ptys', { skip }, () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  function track(t: SerialTransport): { sink: Sink; errors: Error[] } {
    const sink = new Sink();
    const errors: Error[] = [];
    t.on('data', (_link, chunk) => sink.push(chunk));
    t.on('error', (err) => errors.push(err));
    cleanups.push(() => t.stop());
    return { sink, errors };
  }

  async function startPair(pair: PtyPair): Promise<PtyPair> {
    cleanups.push(() => pair.dispose());
    await pair.start();
    return pair;
  }

  async function peerOn(path: string): Promise<{ port: SerialPort; rx: Sink }> {
    const peer = await openPeer(path);
    cleanups.push(() => closePeer(peer.port));
    return peer;
  }

  void it('moves data both ways at 921600 and changes baud rate on the fly', async () => {
    const pair = await startPair(new PtyPair());
    const t = new SerialTransport(serialSpec(pair.pathA), { logger: silentLogger() });
    const { sink } = track(t);
    const opened = nextLinkEvent(t, 'open', 2_000);
    await t.start(new AbortController().signal);
    const link = await opened;
    assert.equal(link.id, `serial://${pair.pathA}?baud=921600`);
    assert.equal(t.devicePath, realpathSync(pair.pathA));
    const peer = await peerOn(pair.pathB);

    await assertBothWays(t, link, sink, peer, 48 * 1024);
    const stats = t.stats();
    assert.equal(stats.bytesIn, 48 * 1024);
    assert.equal(stats.bytesOut, 48 * 1024);
    assert.equal(stats.peers, 1);
    assert.equal(stats.dropsOut, 0);

    await t.setBaudRate(115200);
    assert.equal(t.baudRate, 115200);
    await assertBothWays(t, link, sink, peer, 4 * 1024);
    await assert.rejects(t.setBaudRate(0), (err: unknown) => err instanceof MavmqError && err.code === 'E_TRANSPORT');

    const closed = nextLinkEvent(t, 'close', 2_000);
    await t.stop();
    assert.equal(await closed, link);
    assert.equal(link.write(Buffer.from([1])), false, 'a closed link refuses writes');
    assert.equal(t.stats().connected, false);
  });

  void it('survives an unplug while streaming and reopens within 2 s of the device returning', async () => {
    const pair = await startPair(new PtyPair());
    const t = new SerialTransport(serialSpec(pair.pathA), { logger: silentLogger() });
    const { sink, errors } = track(t);
    const opened = nextLinkEvent(t, 'open', 2_000);
    await t.start(new AbortController().signal);
    let link: ByteLink | null = await opened;
    let peer = await peerOn(pair.pathB);

    // Stream both ways until the plug is pulled.
    const frame = Buffer.alloc(100, 0x55);
    const streaming = setInterval(() => {
      if (peer.port.isOpen) peer.port.write(frame);
      link?.write(frame);
    }, 5);
    cleanups.push(() => clearInterval(streaming));
    await sink.waitFor(2_000);
    await peer.rx.waitFor(2_000);

    const closed = nextLinkEvent(t, 'close', 2_000);
    await pair.kill();
    await closed;
    link = null;
    assert.equal(t.stats().connected, false);
    assert.ok(errors.length >= 1, 'the disconnect is reported as an error event');

    await sleep(1_500); // device absent; the transport keeps polling
    assert.equal(t.stats().connected, false);
    assert.ok(errors.length <= 3, `repeated "not present" failures are reported once, got ${errors.length}`);
    assert.ok(errors.every((e) => e instanceof MavmqError && e.code === 'E_TRANSPORT'));

    const reopened = nextLinkEvent(t, 'open', 4_000);
    await pair.start();
    const returnedAt = performance.now();
    const link2 = await reopened;
    const reopenDelayMs = performance.now() - returnedAt;
    // The requirement is < 2 s; the ~250 ms poll should make it far less. The tighter bound also
    // catches a regression to plain exponential backoff, which after this 1.5 s gap would next
    // try ~1.5 s later and still scrape under 2 s.
    assert.ok(reopenDelayMs < 1_000, `reopened ${reopenDelayMs.toFixed(0)} ms after the device returned`);
    clearInterval(streaming);

    peer = await peerOn(pair.pathB);
    await assertBothWays(t, link2, sink, peer, 8 * 1024);
    assert.equal(t.stats().reconnects, 1);
  });

  void it('follows a by-id style symlink that is re-pointed to a new device after replug', async () => {
    const root = mkdtempSync(join(tmpdir(), 'mavmq-byid-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    mkdirSync(join(root, 'p1'));
    mkdirSync(join(root, 'p2'));
    mkdirSync(join(root, 'by-id'));
    const byId = join(root, 'by-id', 'usb-ArduPilot_fmuv3_0001-if00');
    const pointTo = (target: string): void => {
      symlinkSync(target, `${byId}.tmp`);
      renameSync(`${byId}.tmp`, byId); // atomic, like udev
    };
    const pair1 = await startPair(new PtyPair(join(root, 'p1')));
    pointTo(pair1.pathA);

    const t = new SerialTransport(serialSpec(byId), { logger: silentLogger() });
    const { sink } = track(t);
    const opened = nextLinkEvent(t, 'open', 2_000);
    await t.start(new AbortController().signal);
    const link1 = await opened;
    assert.equal(t.devicePath, realpathSync(pair1.pathA));
    await assertBothWays(t, link1, sink, await peerOn(pair1.pathB), 4 * 1024);

    // Unplug: the old device vanishes, the by-id link dangles.
    const closed = nextLinkEvent(t, 'close', 2_000);
    await pair1.kill();
    await closed;
    await sleep(500);

    // Replug: a new tty appears and udev re-points the by-id link at it.
    const pair2 = await startPair(new PtyPair(join(root, 'p2')));
    const reopened = nextLinkEvent(t, 'open', 4_000);
    pointTo(pair2.pathA);
    const returnedAt = performance.now();
    const link2 = await reopened;
    assert.ok(performance.now() - returnedAt < 2_000);
    assert.equal(t.devicePath, realpathSync(pair2.pathA));
    await assertBothWays(t, link2, sink, await peerOn(pair2.pathB), 4 * 1024);
  });

  void it('moves to the new device when the symlink is re-pointed while the old one is still open', async () => {
    const root = mkdtempSync(join(tmpdir(), 'mavmq-byid-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    mkdirSync(join(root, 'p1'));
    mkdirSync(join(root, 'p2'));
    const byId = join(root, 'serial0');
    const pair1 = await startPair(new PtyPair(join(root, 'p1')));
    const pair2 = await startPair(new PtyPair(join(root, 'p2')));
    symlinkSync(pair1.pathA, byId);

    const t = new SerialTransport(serialSpec(byId), { logger: silentLogger() });
    const { sink } = track(t);
    const opened = nextLinkEvent(t, 'open', 2_000);
    await t.start(new AbortController().signal);
    await opened;

    const closed = nextLinkEvent(t, 'close', 2_000);
    const reopened = nextLinkEvent(t, 'open', 2_000);
    symlinkSync(pair2.pathA, `${byId}.tmp`);
    renameSync(`${byId}.tmp`, byId);
    await closed;
    const link2 = await reopened;
    assert.equal(t.devicePath, realpathSync(pair2.pathA));
    await assertBothWays(t, link2, sink, await peerOn(pair2.pathB), 2 * 1024);
  });

  void it('starts with the device missing, reports it once, and opens when it appears', async () => {
    const pair = new PtyPair();
    cleanups.push(() => pair.dispose());
    const t = new SerialTransport(serialSpec(pair.pathA), { logger: silentLogger() });
    const { sink, errors } = track(t);
    await t.start(new AbortController().signal); // resolves after the first (failed) attempt
    assert.equal(t.stats().connected, false);
    assert.equal(errors.length, 1);
    assert.match(t.stats().lastError ?? '', /not present/);

    await sleep(600);
    assert.equal(errors.length, 1, 'the same failure is not re-emitted on every poll');
    const opened = nextLinkEvent(t, 'open', 2_000);
    await pair.start();
    const link = await opened;
    await assertBothWays(t, link, sink, await peerOn(pair.pathB), 2 * 1024);
    assert.equal(t.stats().reconnects, 0, 'the first successful open is not a reconnect');
  });

  void it('stop() during the retry loop resolves promptly and leaves nothing running', async () => {
    const t = new SerialTransport(serialSpec('/nonexistent/mavmq-tty'), { logger: silentLogger() });
    t.on('error', () => {});
    const ac = new AbortController();
    await t.start(ac.signal);
    const stoppedAt = performance.now();
    ac.abort();
    await t.stop();
    assert.ok(performance.now() - stoppedAt < 100);
  });
});
