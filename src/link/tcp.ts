import net from 'node:net';
import type { EndpointSpec } from './endpoint-url.js';
import { DropOldestQueue } from './queue.js';
import { BaseTransport, formatHostPort, type LinkHooks } from './transport-base.js';
import type { ByteLink, TransportDeps } from './transport.js';

export type TcpClientSpec = Extract<EndpointSpec, { kind: 'tcp' }>;
export type TcpListenSpec = Extract<EndpointSpec, { kind: 'tcp-listen' }>;

/** Detects a silently dead peer (Wi-Fi bridge power-cycled) within minutes instead of hours. */
const KEEPALIVE_INITIAL_DELAY_MS = 10_000;

/**
 * One connected TCP socket as a ByteLink. Writes go straight to the socket until it signals
 * backpressure (write() → false); from then until 'drain' they wait in a drop-oldest queue, so
 * a peer that stops reading costs at most maxQueueBytes plus the socket's own high-water mark.
 */
export class TcpPeerLink implements ByteLink {
  readonly id: string;
  /** Resolves once the socket has fully closed. */
  readonly closed: Promise<void>;
  private readonly socket: net.Socket;
  private readonly hooks: LinkHooks;
  private readonly queue: DropOldestQueue;
  private blocked = false;
  private isClosed = false;

  constructor(id: string, socket: net.Socket, hooks: LinkHooks) {
    this.id = id;
    this.socket = socket;
    this.hooks = hooks;
    this.queue = new DropOldestQueue(hooks.maxQueueBytes);
    socket.setNoDelay(true); // MAVLink frames are small and latency-sensitive: no Nagle batching
    socket.setKeepAlive(true, KEEPALIVE_INITIAL_DELAY_MS);
    socket.on('data', (chunk: Buffer) => {
      hooks.counters.bytesIn += chunk.length;
      hooks.onData(this, chunk);
    });
    socket.on('drain', () => this.flush());
    socket.on('error', (err) => hooks.onError(err, `${id} socket error`));
    this.closed = new Promise((resolve) => {
      const onClose = (): void => {
        this.isClosed = true;
        this.queue.clear();
        resolve();
      };
      // The peer may hang up between accept/connect and here; 'close' then already fired.
      if (socket.closed) onClose();
      else socket.once('close', onClose);
    });
  }

  /** Bytes waiting in the drop-oldest queue (excludes the socket's own buffer). */
  get queuedBytes(): number {
    return this.queue.bytes;
  }

  write(data: Uint8Array): boolean {
    if (this.isClosed || !this.socket.writable) return false;
    if (!this.blocked && this.queue.length === 0) this.send(data);
    else this.hooks.counters.dropsOut += this.queue.push(data);
    return true;
  }

  /** Destroys the socket; resolves once it is closed. */
  destroy(): Promise<void> {
    this.socket.destroy();
    return this.closed;
  }

  private send(chunk: Uint8Array): void {
    this.hooks.counters.bytesOut += chunk.byteLength;
    if (!this.socket.write(chunk)) this.blocked = true;
  }

  private flush(): void {
    this.blocked = false;
    while (!this.blocked && this.socket.writable) {
      const chunk = this.queue.shift();
      if (chunk === undefined) break;
      this.send(chunk);
    }
  }
}

export interface TcpClientOptions {
  maxRetryDelayMs?: number;
  /** A SYN to a black-holed address otherwise waits ~2 minutes before failing. */
  connectTimeoutMs?: number;
}

/** A connection that stayed up this long counts as healthy: the next failure retries fast again. */
const STABLE_SESSION_MS = 1_000;

/** tcp:// client: connects to host:port and reconnects with backoff whenever the connection fails or drops. */
export class TcpClientTransport extends BaseTransport {
  declare readonly spec: TcpClientSpec;
  private readonly maxRetryDelayMs: number;
  private readonly connectTimeoutMs: number;
  private link: TcpPeerLink | null = null;

  constructor(spec: TcpClientSpec, deps: TransportDeps, opts: TcpClientOptions = {}) {
    super(spec, deps);
    this.maxRetryDelayMs = opts.maxRetryDelayMs ?? 2_000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
  }

  protected isConnected(): boolean {
    return this.link !== null;
  }

  protected peerCount(): number {
    return this.link === null ? 0 : 1;
  }

  protected run(signal: AbortSignal, ready: () => void): Promise<void> {
    return this.retryLoop(signal, ready, 'tcp connect', this.maxRetryDelayMs, () => this.connect(signal), (socket) => this.runSession(socket, signal), STABLE_SESSION_MS);
  }


  private connect(signal: AbortSignal): Promise<net.Socket | null> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: this.spec.host, port: this.spec.port });
      const settle = (result: net.Socket | null): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        socket.off('connect', onConnect);
        socket.off('error', onError);
        if (result === null) {
          // Resolve only once the handle is really closed: stop() must not leave it behind.
          socket.once('close', () => resolve(null));
          socket.destroy();
        } else {
          resolve(result);
        }
      };
      const onConnect = (): void => settle(socket);
      const onError = (err: Error): void => {
        this.reportError(err, 'connect failed');
        settle(null);
      };
      const onAbort = (): void => settle(null);
      const timer = setTimeout(() => onError(new Error(`timed out after ${this.connectTimeoutMs} ms`)), this.connectTimeoutMs);
      socket.once('connect', onConnect);
      socket.once('error', onError);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private async runSession(socket: net.Socket, signal: AbortSignal): Promise<void> {
    const link = new TcpPeerLink(this.spec.url, socket, this.linkHooks());
    this.link = link;
    const onAbort = (): void => void link.destroy();
    signal.addEventListener('abort', onAbort, { once: true });
    this.emitOpen(link, { remote: formatHostPort(socket.remoteAddress ?? this.spec.host, socket.remotePort ?? this.spec.port) });
    await link.closed;
    signal.removeEventListener('abort', onAbort);
    this.link = null;
    this.emitClose(link);
  }
}

export interface TcpListenOptions {
  /** Further connections are refused (closed at once) while this many clients are connected. */
  maxClients?: number;
  maxRetryDelayMs?: number;
}

/** tcp-listen:// server: every accepted client is its own ByteLink (its own router port). */
export class TcpListenTransport extends BaseTransport {
  declare readonly spec: TcpListenSpec;
  private readonly maxClients: number;
  private readonly maxRetryDelayMs: number;
  private readonly clients = new Set<TcpPeerLink>();
  private server: net.Server | null = null;

  constructor(spec: TcpListenSpec, deps: TransportDeps, opts: TcpListenOptions = {}) {
    super(spec, deps);
    this.maxClients = opts.maxClients ?? 16;
    this.maxRetryDelayMs = opts.maxRetryDelayMs ?? 5_000;
  }

  /** The bound address (useful with port 0), or null while not listening. */
  address(): net.AddressInfo | null {
    const addr = this.server?.address();
    return addr !== null && typeof addr === 'object' ? addr : null;
  }

  protected isConnected(): boolean {
    return this.server !== null;
  }

  protected peerCount(): number {
    return this.clients.size;
  }

  protected run(signal: AbortSignal, ready: () => void): Promise<void> {
    return this.retryLoop(signal, ready, 'tcp listen', this.maxRetryDelayMs, () => this.listen(), (server) => this.serve(server, signal));
  }


  private listen(): Promise<net.Server | null> {
    return new Promise((resolve) => {
      const server = net.createServer();
      const onError = (err: Error): void => {
        server.off('listening', onListening);
        this.reportError(err, `cannot listen on ${formatHostPort(this.spec.host, this.spec.port)}`);
        server.close(() => resolve(null));
      };
      const onListening = (): void => {
        server.off('error', onError);
        resolve(server);
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen({ host: this.spec.host, port: this.spec.port, exclusive: true });
    });
  }

  /** Accepts clients until the signal aborts or the server fails; then closes everything. */
  private async serve(server: net.Server, signal: AbortSignal): Promise<void> {
    this.server = server;
    const addr = this.address();
    this.log.info({ address: addr === null ? null : formatHostPort(addr.address, addr.port) }, 'listening');
    server.on('connection', (socket) => this.accept(socket));
    await new Promise<void>((resolve) => {
      const onAbort = (): void => resolve();
      signal.addEventListener('abort', onAbort, { once: true });
      // Stays attached until the process forgets the server: a second 'error' must not crash.
      server.on('error', (err) => {
        this.reportError(err, 'server error');
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
    // close() first: it stops accepting at once, so the client snapshot below is complete.
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    await Promise.all([...this.clients].map((client) => client.destroy()));
    await serverClosed;
    this.server = null;
    this.log.info('listener closed');
  }

  private accept(socket: net.Socket): void {
    const { remoteAddress, remotePort } = socket;
    if (remoteAddress === undefined || remotePort === undefined) {
      socket.destroy(); // already gone
      return;
    }
    const peer = formatHostPort(remoteAddress, remotePort);
    if (this.clients.size >= this.maxClients) {
      this.reportError(new Error(`${this.maxClients} clients already connected`), `refused ${peer}`);
      socket.destroy();
      return;
    }
    const link = new TcpPeerLink(`${this.spec.url}#${peer}`, socket, this.linkHooks());
    this.clients.add(link);
    this.emitOpen(link);
    void link.closed.then(() => {
      this.clients.delete(link);
      this.emitClose(link);
    });
  }
}
