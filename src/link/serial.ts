import { realpath } from 'node:fs/promises';
import { SerialPort } from 'serialport';
import { MavmqError, ErrorCodes } from '../errors.js';
import type { EndpointSpec } from './endpoint-url.js';
import { Backoff, sleepMs } from './backoff.js';
import { DropOldestQueue } from './queue.js';
import { BaseTransport, asBuffer, type LinkHooks } from './transport-base.js';
import type { ByteLink, TransportDeps } from './transport.js';

export type SerialSpec = Extract<EndpointSpec, { kind: 'serial' }>;

/**
 * The slice of serialport's binding layer we use. We drive the binding directly rather than the
 * SerialPort stream: the stream buffers writes itself (a second, unbounded-ish queue next to our
 * drop-oldest one) and, after a write error, is destroyed without closing its fd, so "closed"
 * would be ambiguous. With the binding, read/write/close are plain promises.
 */
export interface SerialBindingPort {
  readonly isOpen: boolean;
  read(buffer: Buffer, offset: number, length: number): Promise<{ bytesRead: number }>;
  write(buffer: Buffer): Promise<void>;
  update(options: { baudRate: number }): Promise<void>;
  close(): Promise<void>;
}

export interface SerialBinding {
  open(options: { path: string; baudRate: number; rtscts: boolean; lock: boolean }): Promise<SerialBindingPort>;
}

export interface SerialTransportOptions {
  /** Defaults to serialport's native binding for this OS. */
  binding?: SerialBinding;
  /** Upper bound of the reopen poll; keeps "device is back" → "link is open" well under 2 s. */
  maxRetryDelayMs?: number;
  /** How often an open port checks that its path still resolves to the device we opened. */
  presenceCheckMs?: number;
}

const READ_POOL_BYTES = 64 * 1024;
/** Start a fresh pool rather than issue reads smaller than this. */
const MIN_READ_BYTES = 1024;
/** Coalesce queued frames into writes of up to this size: one syscall per batch, not per frame. */
const WRITE_BATCH_BYTES = 16 * 1024;

/**
 * serial:// transport. Opens the device at the configured baud rate and, whenever it is missing
 * or goes away (USB unplug), closes the link and polls every ~250 ms until the path resolves to a
 * device again, re-resolving symlinks such as /dev/serial/by-id/… on each attempt.
 */
export class SerialTransport extends BaseTransport {
  declare readonly spec: SerialSpec;
  private readonly binding: SerialBinding;
  private readonly maxRetryDelayMs: number;
  private readonly presenceCheckMs: number;
  private currentBaudRate: number;
  private session: SerialSession | null = null;

  constructor(spec: SerialSpec, deps: TransportDeps, opts: SerialTransportOptions = {}) {
    super(spec, deps);
    this.binding = opts.binding ?? SerialPort.binding;
    this.maxRetryDelayMs = opts.maxRetryDelayMs ?? 250;
    this.presenceCheckMs = opts.presenceCheckMs ?? 250;
    this.currentBaudRate = spec.baudRate;
  }

  get baudRate(): number {
    return this.currentBaudRate;
  }

  /** Device path the open port resolved to (e.g. /dev/ttyUSB0 behind a by-id link), or null. */
  get devicePath(): string | null {
    return this.session?.devicePath ?? null;
  }

  /**
   * Changes the baud rate of the open port (and of every later reopen). When the port is closed
   * the rate is simply remembered. Rejects with E_TRANSPORT if the OS refuses the rate.
   */
  async setBaudRate(baud: number): Promise<void> {
    if (!Number.isInteger(baud) || baud <= 0) {
      throw new MavmqError(ErrorCodes.TRANSPORT, `${this.spec.url}: baud rate must be a positive integer, got ${baud}`);
    }
    this.currentBaudRate = baud;
    const session = this.session;
    if (session === null) return;
    try {
      await session.setBaudRate(baud);
      this.log.info({ baudRate: baud }, 'baud rate changed');
    } catch (err) {
      throw new MavmqError(ErrorCodes.TRANSPORT, `${this.spec.url}: cannot set baud rate ${baud}: ${errorMessage(err)}`, { cause: err });
    }
  }

  protected isConnected(): boolean {
    return this.session !== null;
  }

  protected peerCount(): number {
    return this.session === null ? 0 : 1;
  }

  protected async run(signal: AbortSignal, ready: () => void): Promise<void> {
    const backoff = new Backoff({ initialDelayMs: 100, maxDelayMs: this.maxRetryDelayMs });
    let openedBefore = false;
    let loggedRetrying = false;
    while (!signal.aborted) {
      const session = await this.openSession();
      ready();
      if (session !== null && signal.aborted) {
        await session.run(signal); // stopped while opening: run() just closes the port
        break;
      }
      if (session !== null) {
        if (openedBefore) this.reconnects++;
        openedBefore = true;
        loggedRetrying = false;
        backoff.reset();
        this.session = session;
        this.emitOpen(session, { device: session.devicePath, baudRate: this.currentBaudRate });
        await session.run(signal);
        this.session = null;
        this.emitClose(session);
      }
      if (!loggedRetrying && !signal.aborted) {
        this.log.info({ path: this.spec.path }, 'serial device unavailable; polling until it returns');
        loggedRetrying = true;
      }
      if (!(await sleepMs(backoff.nextDelayMs(), signal))) break;
    }
  }

  private async openSession(): Promise<SerialSession | null> {
    let devicePath: string;
    try {
      // Resolved on every attempt: a by-id symlink re-points to a new ttyUSBn after a replug.
      devicePath = await realpath(this.spec.path);
    } catch (err) {
      this.reportError(err, `device ${this.spec.path} not present`);
      return null;
    }
    try {
      const port = await this.binding.open({
        path: devicePath,
        baudRate: this.currentBaudRate,
        rtscts: this.spec.flowControl === 'rtscts',
        lock: true,
      });
      return new SerialSession(this.spec.url, port, devicePath, {
        ...this.linkHooks(),
        presenceCheckMs: this.presenceCheckMs,
        configuredPath: this.spec.path,
      });
    } catch (err) {
      this.reportError(err, `cannot open ${devicePath}`);
      return null;
    }
  }
}

interface SessionHooks extends LinkHooks {
  presenceCheckMs: number;
  configuredPath: string;
}

/** One open period of the port; it is the ByteLink the router sees until the device goes away. */
class SerialSession implements ByteLink {
  readonly id: string;
  readonly devicePath: string;
  private readonly port: SerialBindingPort;
  private readonly hooks: SessionHooks;
  private readonly queue: DropOldestQueue;
  private closed = false;
  private closing: Promise<void> | null = null;
  private pumping = false;
  private pumpDone: Promise<void> = Promise.resolve();
  private presenceTimer: NodeJS.Timeout | null = null;
  private presenceChecking = false;

  constructor(id: string, port: SerialBindingPort, devicePath: string, hooks: SessionHooks) {
    this.id = id;
    this.port = port;
    this.devicePath = devicePath;
    this.hooks = hooks;
    this.queue = new DropOldestQueue(hooks.maxQueueBytes);
  }

  write(data: Uint8Array): boolean {
    if (this.closed) return false;
    this.hooks.counters.dropsOut += this.queue.push(data);
    if (!this.pumping) this.pumpDone = this.pumpQueue();
    return true;
  }

  setBaudRate(baud: number): Promise<void> {
    return this.port.update({ baudRate: baud });
  }

  /** Reads until the device goes away or the signal aborts; resolves once the port is closed. */
  async run(signal: AbortSignal): Promise<void> {
    const onAbort = (): void => void this.close();
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    // Some USB-serial drivers make read() return 0 forever after an unplug instead of failing
    // (serialport/bindings-cpp#162); polling the path catches that, and a re-pointed by-id link.
    this.presenceTimer = setInterval(() => void this.checkPresence(), this.hooks.presenceCheckMs);
    const reading = this.readLoop();
    await reading;
    await this.close();
    await this.pumpDone;
    signal.removeEventListener('abort', onAbort);
  }

  private async readLoop(): Promise<void> {
    // Reads land in a shared pool and are emitted as subarrays: no copy, no per-read allocation.
    let pool = Buffer.allocUnsafe(READ_POOL_BYTES);
    let used = 0;
    while (!this.closed) {
      if (pool.length - used < MIN_READ_BYTES) {
        pool = Buffer.allocUnsafe(READ_POOL_BYTES);
        used = 0;
      }
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.port.read(pool, used, pool.length - used));
      } catch (err) {
        // After our own close() the binding rejects pending reads with `canceled`: not news.
        if (!this.closed) this.fail(err, `${this.devicePath} disconnected (read)`);
        return;
      }
      if (this.closed) return;
      if (bytesRead === 0) continue;
      const chunk = pool.subarray(used, used + bytesRead);
      used += bytesRead;
      this.hooks.counters.bytesIn += bytesRead;
      this.hooks.onData(this, chunk);
    }
  }

  /** Single writer: the binding allows one pending write at a time. */
  private async pumpQueue(): Promise<void> {
    this.pumping = true;
    try {
      while (!this.closed && this.queue.length > 0) {
        const batch = this.queue.shiftBatch(WRITE_BATCH_BYTES);
        const buf = batch.length === 1 && batch[0] !== undefined ? asBuffer(batch[0]) : Buffer.concat(batch);
        await this.port.write(buf);
        this.hooks.counters.bytesOut += buf.length;
      }
    } catch (err) {
      if (!this.closed) this.fail(err, `${this.devicePath} disconnected (write)`);
    } finally {
      this.pumping = false;
    }
  }

  private async checkPresence(): Promise<void> {
    if (this.presenceChecking || this.closed) return;
    this.presenceChecking = true;
    try {
      const now = await realpath(this.hooks.configuredPath);
      if (now !== this.devicePath && !this.closed) this.fail(new Error(`now resolves to ${now}`), `${this.hooks.configuredPath} changed device`);
    } catch (err) {
      if (!this.closed) this.fail(err, `${this.devicePath} disappeared`);
    } finally {
      this.presenceChecking = false;
    }
  }

  private fail(err: unknown, what: string): void {
    this.hooks.onError(err, what);
    void this.close();
  }

  private close(): Promise<void> {
    if (this.closing === null) {
      this.closed = true;
      this.queue.clear();
      if (this.presenceTimer !== null) clearInterval(this.presenceTimer);
      this.presenceTimer = null;
      // Closing also cancels the pending read/write (they reject with `canceled`).
      this.closing = this.port.isOpen ? this.port.close().catch(() => undefined) : Promise.resolve();
    }
    return this.closing;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
