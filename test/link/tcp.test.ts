import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { TcpClientTransport, TcpListenTransport, TcpPeerLink } from '../../src/link/tcp.js';
import { parseEndpointUrl } from '../../src/link/endpoint-url.js';
import { MavmqError } from '../../src/errors.js';
import { silentLogger } from '../../src/obs/logger.js';
import type { ByteLink, Transport } from '../../src/link/transport.js';
import { sleep, waitUntil, nextLinkEvent } from '../fakes/wait.js';




/** Bytes received per link id. */
function collectByLink(t: Transport): Map<string, Buffer> {
  const rx = new Map<string, Buffer>();
  t.on('data', (link, chunk) => rx.set(link.id, Buffer.concat([rx.get(link.id) ?? Buffer.alloc(0), chunk])));
  return rx;
}

function listenSpec(port = 0, host = '127.0.0.1') {
  return { kind: 'tcp-listen' as const, url: `tcp-listen://${host}:${port}`, host, port };
}

function listen(server: net.Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host }, () => resolve(socket));
    socket.once('error', reject);
  });
}

function received(socket: net.Socket): { bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return { bytes: () => Buffer.concat(chunks) };
}

/** A test server that records what it receives and can be killed like a restarting SITL. */
class FakeAutopilot {
  readonly server = net.createServer((s) => this.onConnection(s));
  readonly sockets = new Set<net.Socket>();
  rx = Buffer.alloc(0);
  private onConnection(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('data', (c: Buffer) => (this.rx = Buffer.concat([this.rx, c])));
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
  }
  send(data: string): void {
    for (const s of this.sockets) s.write(data);
  }
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

void describe('tcp transports', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });
  function track<T extends Transport>(t: T): T {
    t.on('error', () => {});
    cleanups.push(() => t.stop());
    return t;
  }
  function trackSocket(s: net.Socket): net.Socket {
    cleanups.push(() => void s.destroy());
    return s;
  }

  void it('client reconnects when the server restarts, and data flows both ways each time', async () => {
    let ap = new FakeAutopilot();
    const port = await listen(ap.server);
    const spec = parseEndpointUrl(`tcp://127.0.0.1:${port}`);
    assert.equal(spec.kind, 'tcp');
    const t = track(new TcpClientTransport(spec, { logger: silentLogger() }));
    const rx = collectByLink(t);
    const errors: Error[] = [];
    t.on('error', (err) => errors.push(err));

    const opened = nextLinkEvent(t, 'open', 2_000);
    await t.start(new AbortController().signal);
    const link1 = await opened;
    assert.equal(link1.id, spec.url);
    await waitUntil(() => ap.sockets.size === 1, 1_000, 'server side of the connection');
    ap.send('hello-1');
    assert.equal(link1.write(Buffer.from('up-1')), true);
    await waitUntil(() => rx.get(spec.url)?.toString() === 'hello-1' && ap.rx.toString() === 'up-1', 2_000, 'round trip 1');

    const closed = nextLinkEvent(t, 'close', 2_000);
    await ap.close();
    assert.equal(await closed, link1);
    assert.equal(link1.write(Buffer.from('lost')), false);
    await sleep(300); // a few refused attempts while the server is down
    assert.equal(t.stats().connected, false);
    assert.ok(errors.some((e) => e instanceof MavmqError && /ECONNREFUSED/.test(e.message)), 'refused connects are reported');

    ap = new FakeAutopilot();
    cleanups.push(() => ap.close());
    const reopened = nextLinkEvent(t, 'open', 3_000);
    await listen(ap.server, port);
    const link2 = await reopened;
    await waitUntil(() => ap.sockets.size === 1, 1_000, 'server side of the new connection');
    rx.clear();
    ap.send('hello-2');
    link2.write(Buffer.from('up-2'));
    await waitUntil(() => rx.get(spec.url)?.toString() === 'hello-2' && ap.rx.toString() === 'up-2', 2_000, 'round trip 2');
    assert.equal(t.stats().reconnects, 1);
    assert.equal(t.stats().connected, true);
  });

  void it('listener gives each accepted client its own ByteLink', async () => {
    const spec = listenSpec();
    const t = track(new TcpListenTransport(spec, { logger: silentLogger() }));
    const rx = collectByLink(t);
    const links = new Map<string, ByteLink>();
    t.on('open', (link) => links.set(link.id, link));
    await t.start(new AbortController().signal);
    const port = t.address()?.port;
    assert.ok(port !== undefined && port > 0);

    const c1 = trackSocket(await connect(port));
    const c2 = trackSocket(await connect(port));
    const id1 = `${spec.url}#127.0.0.1:${c1.localPort}`;
    const id2 = `${spec.url}#127.0.0.1:${c2.localPort}`;
    await waitUntil(() => links.has(id1) && links.has(id2), 2_000, 'both clients accepted');
    assert.equal(t.stats().peers, 2);

    const c1rx = received(c1);
    const c2rx = received(c2);
    c1.write('from-one');
    c2.write('from-two');
    links.get(id1)?.write(Buffer.from('to-one'));
    links.get(id2)?.write(Buffer.from('to-two'));
    await waitUntil(() => rx.get(id1)?.length === 8 && rx.get(id2)?.length === 8 && c1rx.bytes().length === 6 && c2rx.bytes().length === 6, 2_000, 'per-client traffic');
    assert.equal(rx.get(id1)?.toString(), 'from-one');
    assert.equal(rx.get(id2)?.toString(), 'from-two');
    assert.equal(c1rx.bytes().toString(), 'to-one');
    assert.equal(c2rx.bytes().toString(), 'to-two');

    const closed = nextLinkEvent(t, 'close', 2_000);
    c1.end();
    assert.equal((await closed).id, id1);
    assert.equal(t.stats().peers, 1);

    const c2closed = new Promise((resolve) => c2.once('close', resolve));
    await t.stop();
    await c2closed; // stop() disconnects the remaining client
    assert.equal(t.stats().peers, 0);
    assert.equal(t.stats().connected, false);
  });

  void it('listener without a host binds loopback, not the wildcard', async () => {
    const parsed = parseEndpointUrl('tcp-listen://:5760'); // the parser picks the default host
    assert.equal(parsed.kind, 'tcp-listen');
    const t = track(new TcpListenTransport({ ...listenSpec(0, parsed.host), url: parsed.url }, { logger: silentLogger() }));
    await t.start(new AbortController().signal);
    const addr = t.address();
    assert.equal(addr?.address, '127.0.0.1');
    const port = addr.port;
    // If this machine has a non-loopback address, the listener must not be reachable through it.
    const external = Object.values(networkInterfaces()).flat().find((i) => i !== undefined && i.family === 'IPv4' && !i.internal);
    if (external !== undefined) {
      await assert.rejects(connect(port, external.address), /ECONNREFUSED/);
    }
    trackSocket(await connect(port, '127.0.0.1'));
    await waitUntil(() => t.stats().peers === 1, 1_000, 'loopback client accepted');
  });

  void it('listener refuses clients beyond its cap', async () => {
    const t = track(new TcpListenTransport(listenSpec(), { logger: silentLogger() }, { maxClients: 1 }));
    const errors: Error[] = [];
    t.on('error', (e) => errors.push(e));
    await t.start(new AbortController().signal);
    const port = t.address()?.port ?? 0;
    trackSocket(await connect(port));
    await waitUntil(() => t.stats().peers === 1, 1_000, 'first client');
    const second = trackSocket(await connect(port));
    await new Promise((resolve) => second.once('close', resolve));
    assert.equal(t.stats().peers, 1);
    assert.ok(errors.some((e) => /refused/.test(e.message)));
  });

  void it('listener retries the bind while the port is taken (EADDRINUSE)', async () => {
    const blocker = net.createServer();
    const port = await listen(blocker);
    const t = track(new TcpListenTransport(listenSpec(port), { logger: silentLogger() }));
    const errors: Error[] = [];
    t.on('error', (e) => errors.push(e));
    await t.start(new AbortController().signal);
    assert.equal(t.stats().connected, false);
    assert.match(errors[0]?.message ?? '', /EADDRINUSE/);
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    await waitUntil(() => t.stats().connected, 3_000, 're-listen after the port is freed');
    const c = trackSocket(await connect(port));
    assert.ok(c.remotePort === port);
  });

  void it('a client that never reads does not block write(); the queue drops the oldest chunks (counted)', async () => {
    const maxQueueBytes = 64 * 1024;
    const t = track(new TcpListenTransport(listenSpec(), { logger: silentLogger(), maxQueueBytes }));
    const opened = nextLinkEvent(t, 'open', 2_000);
    await t.start(new AbortController().signal);
    const client = trackSocket(await connect(t.address()?.port ?? 0));
    client.pause(); // never read: the kernel buffers fill and the server socket reports backpressure
    const link = await opened;
    assert.ok(link instanceof TcpPeerLink);

    // 1 KiB chunks tagged with a sequence number; written a few at a time across event-loop
    // turns so the socket really drains into the kernel until the peer's window is full.
    const CHUNK = 1024;
    const makeChunk = (seq: number): Buffer => {
      const b = Buffer.alloc(CHUNK, seq & 0xff);
      b.writeUInt32BE(seq, 0);
      return b;
    };
    let seq = 0;
    let maxQueued = 0;
    let slowestWriteMs = 0;
    const started = performance.now();
    while (t.stats().dropsOut < 500) {
      assert.ok(performance.now() - started < 15_000, `no drops after ${seq} chunks`);
      for (let i = 0; i < 16; i++) {
        const before = performance.now();
        assert.equal(link.write(makeChunk(seq++)), true);
        slowestWriteMs = Math.max(slowestWriteMs, performance.now() - before);
        maxQueued = Math.max(maxQueued, link.queuedBytes);
      }
      await new Promise((r) => setImmediate(r));
    }
    const lastSeq = seq - 1;
    assert.ok(maxQueued <= maxQueueBytes, `queue stayed within its cap (max ${maxQueued})`);
    assert.ok(slowestWriteMs < 50, `write() never blocked (slowest ${slowestWriteMs.toFixed(1)} ms)`);

    // Now read everything: what arrives is in order, complete chunks, with the oldest queued
    // chunks missing, and the newest chunk present (newest telemetry wins).
    const chunks: Buffer[] = [];
    let total = 0;
    client.on('data', (c: Buffer) => {
      chunks.push(c);
      total += c.length;
    });
    client.resume();
    const lastSeen = (): number => {
      if (total < CHUNK || total % CHUNK !== 0) return -1;
      const tail = chunks.at(-1);
      return tail !== undefined && tail.length >= CHUNK ? tail.readUInt32BE(tail.length - CHUNK) : -1;
    };
    await waitUntil(() => lastSeen() === lastSeq, 10_000, 'the newest chunk to arrive');
    const all = Buffer.concat(chunks);
    assert.equal(all.length % CHUNK, 0, 'chunks are never split');
    let prev = -1;
    let count = 0;
    for (let off = 0; off < all.length; off += CHUNK) {
      const s = all.readUInt32BE(off);
      assert.ok(s > prev, `sequence increases (${prev} → ${s})`);
      assert.equal(all[off + CHUNK - 1], s & 0xff, 'chunk content intact');
      prev = s;
      count++;
    }
    const stats = t.stats();
    assert.equal(count + stats.dropsOut, lastSeq + 1, 'every chunk was either delivered or counted as dropped');
    assert.equal(stats.bytesOut, count * CHUNK);
  });
});
