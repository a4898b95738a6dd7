import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { UdpClientTransport, UdpListenTransport } from '../../src/link/udp.js';
import { parseEndpointUrl } from '../../src/link/endpoint-url.js';
import { silentLogger } from '../../src/obs/logger.js';
import type { ByteLink, Transport } from '../../src/link/transport.js';
import { waitUntil, nextLinkEvent } from '../fakes/wait.js';




function listenSpec(port = 0) {
  return { kind: 'udp-listen' as const, url: `udp-listen://127.0.0.1:${port}`, host: '127.0.0.1', port };
}

/** A UDP socket on 127.0.0.1 (ephemeral port) that records datagrams it receives. */
async function udpPeer(): Promise<{ socket: dgram.Socket; port: number; rx: Buffer[] }> {
  const socket = dgram.createSocket('udp4');
  const rx: Buffer[] = [];
  socket.on('message', (m) => rx.push(m));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return { socket, port: socket.address().port, rx };
}

void describe('udp transports', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });
  function track<T extends Transport>(t: T): T {
    t.on('error', () => {});
    cleanups.push(() => t.stop());
    return t;
  }
  async function peer(): Promise<Awaited<ReturnType<typeof udpPeer>>> {
    const p = await udpPeer();
    cleanups.push(() => new Promise<void>((resolve) => p.socket.close(() => resolve())));
    return p;
  }

  void it('udp-listen learns two peers and replies to each separately', async () => {
    const spec = listenSpec();
    const t = track(new UdpListenTransport(spec, { logger: silentLogger() }));
    const links = new Map<string, ByteLink>();
    const rx = new Map<string, string[]>();
    t.on('open', (link) => links.set(link.id, link));
    t.on('data', (link, chunk) => rx.set(link.id, [...(rx.get(link.id) ?? []), chunk.toString()]));
    await t.start(new AbortController().signal);
    const port = t.address()?.port ?? 0;
    assert.ok(port > 0);

    const p1 = await peer();
    const p2 = await peer();
    p1.socket.send('one-a', port, '127.0.0.1');
    p2.socket.send('two-a', port, '127.0.0.1');
    p1.socket.send('one-b', port, '127.0.0.1');
    const id1 = `${spec.url}#127.0.0.1:${p1.port}`;
    const id2 = `${spec.url}#127.0.0.1:${p2.port}`;
    await waitUntil(() => rx.get(id1)?.length === 2 && rx.get(id2)?.length === 1, 2_000, 'datagrams from both peers');
    assert.deepEqual(rx.get(id1), ['one-a', 'one-b'], 'each datagram is one chunk, attributed to its sender');
    assert.deepEqual(rx.get(id2), ['two-a']);
    assert.equal(t.stats().peers, 2);

    assert.equal(links.get(id1)?.write(Buffer.from('reply-1')), true);
    assert.equal(links.get(id2)?.write(Buffer.from('reply-2')), true);
    await waitUntil(() => p1.rx.length === 1 && p2.rx.length === 1, 2_000, 'replies');
    assert.equal(p1.rx[0]?.toString(), 'reply-1');
    assert.equal(p2.rx[0]?.toString(), 'reply-2');
    const stats = t.stats();
    assert.equal(stats.bytesIn, 15);
    assert.equal(stats.bytesOut, 14);
  });

  void it('udp-listen forgets a peer that falls silent and re-learns it when it speaks again', async () => {
    const t = track(new UdpListenTransport(listenSpec(), { logger: silentLogger() }, { peerTimeoutMs: 300 }));
    await t.start(new AbortController().signal);
    const port = t.address()?.port ?? 0;
    const p = await peer();

    const opened = nextLinkEvent(t, 'open', 1_000);
    p.socket.send('hi', port, '127.0.0.1');
    const link = await opened;
    const closed = nextLinkEvent(t, 'close', 2_000);
    const heardAt = performance.now();
    assert.equal(await closed, link);
    const silentMs = performance.now() - heardAt;
    assert.ok(silentMs >= 250 && silentMs < 1_000, `expired after ${silentMs.toFixed(0)} ms of silence`);
    assert.equal(t.stats().peers, 0);
    assert.equal(link.write(Buffer.from('late')), false, 'a forgotten peer refuses writes');

    const reopened = nextLinkEvent(t, 'open', 1_000);
    p.socket.send('back', port, '127.0.0.1');
    assert.equal((await reopened).id, link.id);
    assert.equal(t.stats().peers, 1);
  });

  void it('udp-listen ignores new senders beyond its peer cap', async () => {
    const t = track(new UdpListenTransport(listenSpec(), { logger: silentLogger() }, { maxPeers: 1 }));
    const errors: Error[] = [];
    t.on('error', (e) => errors.push(e));
    const seen: string[] = [];
    t.on('data', (_l, c) => seen.push(c.toString()));
    await t.start(new AbortController().signal);
    const port = t.address()?.port ?? 0;
    const p1 = await peer();
    const p2 = await peer();
    p1.socket.send('first', port, '127.0.0.1');
    await waitUntil(() => seen.length === 1, 1_000, 'first peer');
    p2.socket.send('second', port, '127.0.0.1');
    p1.socket.send('third', port, '127.0.0.1');
    await waitUntil(() => seen.length === 2, 1_000, 'first peer again');
    assert.deepEqual(seen, ['first', 'third']);
    assert.equal(t.stats().peers, 1);
    assert.ok(errors.some((e) => /peers already known/.test(e.message)));
  });

  void it('udp client sends to its target and receives the replies on the same socket', async () => {
    const server = await peer();
    server.socket.on('message', (m, rinfo) => server.socket.send(Buffer.concat([Buffer.from('echo:'), m]), rinfo.port, rinfo.address));
    const spec = parseEndpointUrl(`udp://127.0.0.1:${server.port}`);
    assert.equal(spec.kind, 'udp');
    const t = track(new UdpClientTransport(spec, { logger: silentLogger() }));
    const rx: string[] = [];
    t.on('data', (link, chunk) => {
      assert.equal(link.id, spec.url);
      rx.push(chunk.toString());
    });
    const opened = nextLinkEvent(t, 'open', 1_000);
    await t.start(new AbortController().signal);
    const link = await opened;
    assert.equal(link.id, spec.url);
    for (const m of ['a', 'bb', 'ccc']) assert.equal(link.write(Buffer.from(m)), true);
    await waitUntil(() => rx.length === 3, 2_000, 'three echoed datagrams');
    assert.deepEqual([...server.rx.map(String)], ['a', 'bb', 'ccc'], 'the target got each datagram');
    assert.deepEqual(rx, ['echo:a', 'echo:bb', 'echo:ccc'], 'one chunk per datagram, boundaries kept');
    const stats = t.stats();
    assert.equal(stats.connected, true);
    assert.equal(stats.bytesOut, 6);
    assert.equal(stats.bytesIn, 21);

    const closed = nextLinkEvent(t, 'close', 1_000);
    await t.stop();
    assert.equal(await closed, link);
    assert.equal(link.write(Buffer.from('x')), false);
    assert.equal(t.stats().connected, false);
  });

  void it('udp client counts a failed send instead of throwing', async () => {
    // Port 0 is not a valid destination: the kernel rejects every send.
    const spec = { kind: 'udp' as const, url: 'udp://127.0.0.1:0', host: '127.0.0.1', port: 0 };
    const t = track(new UdpClientTransport(spec, { logger: silentLogger() }));
    const errors: Error[] = [];
    t.on('error', (e) => errors.push(e));
    const opened = nextLinkEvent(t, 'open', 1_000);
    await t.start(new AbortController().signal);
    const link = await opened;
    assert.equal(link.write(Buffer.from('x')), true);
    assert.equal(link.write(Buffer.from('y')), true);
    await waitUntil(() => t.stats().dropsOut === 2, 1_000, 'both failed sends counted');
    assert.equal(errors.length, 1, 'identical send errors are reported once');
    assert.ok(t.stats().lastError !== null);
  });
});
