import { EventEmitter } from 'node:events';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { MavmqError, ErrorCodes } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import type { EndpointSpec } from './endpoint-url.js';
import { DEFAULT_MAX_QUEUE_BYTES } from './queue.js';
import { Backoff, sleepMs } from './backoff.js';
import type { ByteLink, Transport, TransportDeps, TransportEvents, TransportStats } from './transport.js';

/** Byte counters shared by a transport and its links (links bump them on the hot path). */
export interface LinkCounters {
  bytesIn: number;
  bytesOut: number;
  dropsOut: number;
}

/** What a link needs from its transport: shared counters, queue cap and the event sinks. */
export interface LinkHooks {
  counters: LinkCounters;
  maxQueueBytes: number;
  onData(link: ByteLink, chunk: Buffer): void;
  onError(err: unknown, what: string): void;
}

type RunState = 'idle' | 'running' | 'stopped';

/**
 * Lifecycle, stats and error reporting common to all transports. A subclass implements run():
 * its connect/listen loop, which must return once the signal aborts and everything it opened is
 * closed. Transports are single-use: start() once, stop() once (stop() is idempotent).
 */
export abstract class BaseTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly spec: EndpointSpec;
  protected readonly log: Logger;
  protected readonly maxQueueBytes: number;
  protected readonly counters: LinkCounters = { bytesIn: 0, bytesOut: 0, dropsOut: 0 };
  protected reconnects = 0;
  private lastError: string | null = null;
  /** Last message emitted as 'error': a retry loop repeating the same failure reports it once. */
  private lastReported: string | null = null;
  private state: RunState = 'idle';
  private runAbort: AbortController | null = null;
  private running: Promise<void> | null = null;

  constructor(spec: EndpointSpec, deps: TransportDeps) {
    super();
    this.spec = spec;
    this.log = deps.logger.child({ module: 'link', url: spec.url });
    this.maxQueueBytes = deps.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    if (!Number.isInteger(this.maxQueueBytes) || this.maxQueueBytes <= 0) {
      throw new MavmqError(ErrorCodes.TRANSPORT, `${spec.url}: maxQueueBytes must be a positive integer, got ${this.maxQueueBytes}`);
    }
  }

  /**
   * Starts the connect/listen loop in the background. Resolves once the first attempt has
   * settled (opened/bound, or failed and scheduled for retry); I/O failures never reject, they
   * are reported as 'error' events while the loop keeps retrying.
   */
  async start(signal: AbortSignal): Promise<void> {
    if (this.state === 'running') throw new MavmqError(ErrorCodes.TRANSPORT, `${this.spec.url}: transport already started`);
    if (this.state === 'stopped' || signal.aborted) {
      this.state = 'stopped';
      return;
    }
    this.state = 'running';
    const runAbort = new AbortController();
    this.runAbort = runAbort;
    const onExternalAbort = (): void => runAbort.abort();
    signal.addEventListener('abort', onExternalAbort, { once: true });

    let markReady = (): void => {};
    const ready = new Promise<void>((resolve) => (markReady = resolve));
    this.running = this.run(runAbort.signal, markReady)
      .catch((err: unknown) => this.reportError(err, 'transport loop failed'))
      .finally(() => {
        signal.removeEventListener('abort', onExternalAbort);
        this.state = 'stopped';
        markReady();
      });
    await ready;
  }

  /** Closes every socket/port and cancels every timer; resolves once they are all closed. */
  async stop(): Promise<void> {
    if (this.state === 'idle') this.state = 'stopped';
    this.runAbort?.abort();
    await this.running;
  }

  stats(): TransportStats {
    return {
      url: this.spec.url,
      connected: this.isConnected(),
      peers: this.peerCount(),
      bytesIn: this.counters.bytesIn,
      bytesOut: this.counters.bytesOut,
      dropsOut: this.counters.dropsOut,
      reconnects: this.reconnects,
      lastError: this.lastError,
    };
  }

  /**
   * The connect/listen loop. Call ready() after the first attempt (success or failure). Must not
   * throw for I/O errors (report them) and must resolve only after all handles are closed.
   */
  protected abstract run(signal: AbortSignal, ready: () => void): Promise<void>;
  protected abstract isConnected(): boolean;
  protected abstract peerCount(): number;

  /**
   * Records an error and emits it as a non-fatal 'error' event, unless it repeats the previous
   * report (a device missing for an hour is one event, not 14 400). Safe to call from any event
   * handler: without an 'error' listener it logs instead of throwing.
   */
  protected reportError(cause: unknown, what: string): void {
    const detail = cause instanceof Error ? cause.message : String(cause);
    const message = `${this.spec.url}: ${what}: ${detail}`;
    this.lastError = message;
    if (message === this.lastReported) return;
    this.lastReported = message;
    const err = new MavmqError(ErrorCodes.TRANSPORT, message, { cause });
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.log.warn({ err }, 'transport error');
  }

  protected linkHooks(): LinkHooks {
    return {
      counters: this.counters,
      maxQueueBytes: this.maxQueueBytes,
      onData: (link, chunk) => this.deliver(link, chunk),
      onError: (err, what) => this.reportError(err, what),
    };
  }

  /** Logs a retry: the first of an outage at info, the rest at debug (a long outage is one line). */
  /**
   * The reconnect loop the socket transports share: open, serve until it ends, back off, repeat,
   * until the signal aborts. `stableMs`: the backoff resets only after a session lasted this long
   * (a peer that accepts and drops at once must not be hammered); 0 resets at every open.
   */
  protected async retryLoop<T>(
    signal: AbortSignal, ready: () => void, what: string, maxDelayMs: number,
    open: () => Promise<T | null>, serve: (opened: T) => Promise<void>, stableMs = 0,
  ): Promise<void> {
    const backoff = new Backoff({ initialDelayMs: 100, maxDelayMs });
    let openedBefore = false;
    while (!signal.aborted) {
      const opened = await open();
      ready();
      if (opened !== null) {
        if (openedBefore) this.reconnects++;
        openedBefore = true;
        if (stableMs === 0) backoff.reset();
        const startedMs = performance.now();
        await serve(opened);
        if (stableMs > 0 && performance.now() - startedMs >= stableMs) backoff.reset();
      }
      if (signal.aborted) break;
      const delayMs = backoff.nextDelayMs();
      this.logRetry(backoff, `${what} retrying`, delayMs);
      if (!(await sleepMs(delayMs, signal))) break;
    }
  }

  protected logRetry(backoff: Backoff, what: string, retryDelayMs: number): void {
    if (backoff.attempts <= 1) this.log.info({ retryDelayMs }, what);
    else this.log.debug({ retryDelayMs, attempt: backoff.attempts }, what);
  }

  /** Hot path. A throwing listener is reported, never allowed to unwind into socket/port code. */
  protected deliver(link: ByteLink, chunk: Buffer): void {
    try {
      this.emit('data', link, chunk);
    } catch (err) {
      this.reportError(err, `'data' listener threw`);
    }
  }

  protected emitOpen(link: ByteLink, details: Record<string, unknown> = {}): void {
    this.lastReported = null; // a success makes the next failure news again
    this.log.info({ link: link.id, ...details }, 'link opened');
    try {
      this.emit('open', link);
    } catch (err) {
      this.reportError(err, `'open' listener threw`);
    }
  }

  protected emitClose(link: ByteLink): void {
    this.log.info({ link: link.id }, 'link closed');
    try {
      this.emit('close', link);
    } catch (err) {
      this.reportError(err, `'close' listener threw`);
    }
  }
}

/** Resolves a host name once per (re)connect so the per-datagram path never does DNS. */
export async function resolveHost(host: string): Promise<{ address: string; family: 4 | 6 }> {
  const literal = isIP(host);
  if (literal === 4 || literal === 6) return { address: host, family: literal };
  const { address, family } = await lookup(host);
  return { address, family: family === 6 ? 6 : 4 };
}

/** "127.0.0.1:5760" or "[::1]:5760". */
export function formatHostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Views a Uint8Array as a Buffer without copying (APIs like the serial binding insist on Buffer). */
export function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
