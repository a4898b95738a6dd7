import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import type { EndpointSpec } from './endpoint-url.js';
import { BaseTransport, formatHostPort, resolveHost, type LinkHooks } from './transport-base.js';
import type { ByteLink, TransportDeps } from './transport.js';

export type UdpClientSpec = Extract<EndpointSpec, { kind: 'udp' }>;
export type UdpListenSpec = Extract<EndpointSpec, { kind: 'udp-listen' }>;

/**
 * One remote address:port reached through a shared UDP socket. UDP has no backpressure signal
 * we can act on and never blocks; a failed send is counted (dropsOut, lastError), not thrown.
 */
export class UdpPeerLink implements ByteLink {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  /** performance.now() of the last datagram received from this peer. */
  lastHeardMs = performance.now();
  private readonly socket: dgram.Socket;
  private readonly hooks: LinkHooks;
  private isClosed = false;

  constructor(id: string, socket: dgram.Socket, address: string, port: number, hooks: LinkHooks) {
    this.id = id;
    this.socket = socket;
    this.address = address;
    this.port = port;
    this.hooks = hooks;
  }

  write(data: Uint8Array): boolean {
    if (this.isClosed) return false;
    // libuv queues sends the kernel cannot take yet, without limit. We cannot evict the oldest
    // from that queue, so past the cap the newest datagram is shed instead (still counted).
    if (this.socket.getSendQueueSize() > this.hooks.maxQueueBytes) {
      this.hooks.counters.dropsOut++;
      return true;
    }
    try {
      this.socket.send(data, this.port, this.address, this.onSent);
    } catch (err) {
      this.onSent(err instanceof Error ? err : new Error(String(err)), 0);
    }
    return true;
  }

  close(): void {
    this.isClosed = true;
  }

  // One bound callback for every send: no closure allocated per datagram.
  private readonly onSent = (err: Error | null, bytes: number): void => {
    if (err === null) {
      this.hooks.counters.bytesOut += bytes;
    } else {
      this.hooks.counters.dropsOut++;
      this.hooks.onError(err, `send to ${formatHostPort(this.address, this.port)} failed`);
    }
  };
}

/** Binds a fresh socket; resolves null (after closing it) when the bind fails. */
function bindSocket(type: 'udp4' | 'udp6', address: string | undefined, port: number, onError: (err: Error) => void): Promise<dgram.Socket | null> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket({ type, reuseAddr: false });
    const onBindError = (err: Error): void => {
      socket.off('listening', onListening);
      onError(err);
      socket.close(() => resolve(null));
    };
    const onListening = (): void => {
      socket.off('error', onBindError);
      resolve(socket);
    };
    socket.once('error', onBindError);
    socket.once('listening', onListening);
    socket.bind(address === undefined ? { port } : { address, port, exclusive: true });
  });
}

/** Waits until the signal aborts or the socket reports an error, then closes the socket. */
async function holdSocket(socket: dgram.Socket, signal: AbortSignal, onError: (err: Error) => void): Promise<void> {
  await new Promise<void>((resolve) => {
    const onAbort = (): void => resolve();
    signal.addEventListener('abort', onAbort, { once: true });
    socket.on('error', (err) => {
      onError(err);
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
  await new Promise<void>((resolve) => socket.close(() => resolve()));
}

export interface UdpClientOptions {
  maxRetryDelayMs?: number;
}

/**
 * udp:// client: sends to host:port from an ephemeral socket; whatever arrives on that socket is
 * the reply stream of the single ByteLink (any source is accepted, as MAVLink GCSs expect: a
 * target reached through a broadcast address answers from its own unicast address).
 */
export class UdpClientTransport extends BaseTransport {
  declare readonly spec: UdpClientSpec;
  private readonly maxRetryDelayMs: number;
  private link: UdpPeerLink | null = null;

  constructor(spec: UdpClientSpec, deps: TransportDeps, opts: UdpClientOptions = {}) {
    super(spec, deps);
    this.maxRetryDelayMs = opts.maxRetryDelayMs ?? 5_000;
  }

  protected isConnected(): boolean {
    return this.link !== null;
  }

  protected peerCount(): number {
    return this.link === null ? 0 : 1;
  }

  protected run(signal: AbortSignal, ready: () => void): Promise<void> {
    return this.retryLoop(signal, ready, 'udp socket', this.maxRetryDelayMs, () => this.open(), (s) => this.runSession(s.socket, s.address, signal));
  }


  private async open(): Promise<{ socket: dgram.Socket; address: string } | null> {
    let target: { address: string; family: 4 | 6 };
    try {
      target = await resolveHost(this.spec.host);
    } catch (err) {
      this.reportError(err, `cannot resolve ${this.spec.host}`);
      return null;
    }
    const socket = await bindSocket(target.family === 6 ? 'udp6' : 'udp4', undefined, 0, (err) => this.reportError(err, 'cannot bind'));
    return socket === null ? null : { socket, address: target.address };
  }

  private async runSession(socket: dgram.Socket, address: string, signal: AbortSignal): Promise<void> {
    const link = new UdpPeerLink(this.spec.url, socket, address, this.spec.port, this.linkHooks());
    socket.on('message', (msg) => {
      this.counters.bytesIn += msg.length;
      link.lastHeardMs = performance.now();
      this.deliver(link, msg);
    });
    this.link = link;
    this.emitOpen(link, { localPort: socket.address().port });
    await holdSocket(socket, signal, (err) => this.reportError(err, 'socket error'));
    link.close();
    this.link = null;
    this.emitClose(link);
  }
}

export interface UdpListenOptions {
  /** A peer silent this long is forgotten (its ByteLink closes). */
  peerTimeoutMs?: number;
  /** Datagrams from new senders are ignored while this many peers are known. */
  maxPeers?: number;
  maxRetryDelayMs?: number;
}

/** udp-listen:// server: every distinct sender address:port becomes a ByteLink until it falls silent. */
export class UdpListenTransport extends BaseTransport {
  declare readonly spec: UdpListenSpec;
  private readonly peerTimeoutMs: number;
  private readonly maxPeers: number;
  private readonly maxRetryDelayMs: number;
  private readonly peers = new Map<string, UdpPeerLink>();
  private socket: dgram.Socket | null = null;

  constructor(spec: UdpListenSpec, deps: TransportDeps, opts: UdpListenOptions = {}) {
    super(spec, deps);
    this.peerTimeoutMs = opts.peerTimeoutMs ?? 30_000;
    this.maxPeers = opts.maxPeers ?? 16;
    this.maxRetryDelayMs = opts.maxRetryDelayMs ?? 5_000;
  }

  /** The bound address (useful with port 0), or null while not bound. */
  address(): AddressInfo | null {
    return this.socket === null ? null : this.socket.address();
  }

  protected isConnected(): boolean {
    return this.socket !== null;
  }

  protected peerCount(): number {
    return this.peers.size;
  }

  protected run(signal: AbortSignal, ready: () => void): Promise<void> {
    return this.retryLoop(signal, ready, 'udp bind', this.maxRetryDelayMs, () => this.bind(), (socket) => this.serve(socket, signal));
  }


  private async bind(): Promise<dgram.Socket | null> {
    let local: { address: string; family: 4 | 6 };
    try {
      local = await resolveHost(this.spec.host);
    } catch (err) {
      this.reportError(err, `cannot resolve ${this.spec.host}`);
      return null;
    }
    return bindSocket(local.family === 6 ? 'udp6' : 'udp4', local.address, this.spec.port, (err) =>
      this.reportError(err, `cannot bind ${formatHostPort(local.address, this.spec.port)}`),
    );
  }

  private async serve(socket: dgram.Socket, signal: AbortSignal): Promise<void> {
    this.socket = socket;
    const addr = socket.address();
    this.log.info({ address: formatHostPort(addr.address, addr.port) }, 'listening');
    socket.on('message', (msg, rinfo) => this.onDatagram(socket, msg, rinfo));
    // Sweep often enough that a peer is forgotten within ~1.25 × peerTimeoutMs.
    const sweepMs = Math.min(Math.max(this.peerTimeoutMs / 4, 50), 1_000);
    const sweeper = setInterval(() => this.expirePeers(performance.now() - this.peerTimeoutMs), sweepMs);
    await holdSocket(socket, signal, (err) => this.reportError(err, 'socket error'));
    clearInterval(sweeper);
    this.socket = null;
    this.expirePeers(Infinity);
    this.log.info('listener closed');
  }

  private onDatagram(socket: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const key = formatHostPort(rinfo.address, rinfo.port);
    let link = this.peers.get(key);
    if (link === undefined) {
      if (this.peers.size >= this.maxPeers) {
        this.reportError(new Error(`${this.maxPeers} peers already known`), 'ignoring datagrams from new senders');
        return;
      }
      link = new UdpPeerLink(`${this.spec.url}#${key}`, socket, rinfo.address, rinfo.port, this.linkHooks());
      this.peers.set(key, link);
      this.emitOpen(link);
    }
    link.lastHeardMs = performance.now();
    this.counters.bytesIn += msg.length;
    this.deliver(link, msg);
  }

  /** Forgets (and closes) peers last heard before cutoffMs; Infinity forgets all. */
  private expirePeers(cutoffMs: number): void {
    for (const [key, link] of this.peers) {
      if (link.lastHeardMs >= cutoffMs) continue;
      this.peers.delete(key);
      link.close();
      this.emitClose(link);
    }
  }
}
