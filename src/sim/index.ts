import { MavmqError, ErrorCodes } from '../errors.js';
import { parseEndpointUrl, type EndpointSpec } from '../link/endpoint-url.js';
import { createTransport } from '../link/index.js';
import type { Transport, TransportFactory } from '../link/transport.js';
import type { Logger } from '../obs/logger.js';
import { SimCore } from './core.js';
import { resolveSimOptions, type SimFaults, type SimOptions, type SimOptionsInput } from './options.js';
import { JsonParamFile } from './params-file.js';

export { SimCore, simDialect, streamableMessages, type SimCoreDeps, type SimStats } from './core.js';
export { resolveSimOptions, SIM_DEFAULTS, STREAM_GROUPS, type SimOptions, type SimOptionsInput, type SimFaults, type StreamGroup } from './options.js';
export { CopterMode, modeName } from './modes.js';
export { JsonParamFile } from './params-file.js';
export type { ParamStore } from './params.js';

/** Real-time source and interval timer of the runner (injectable for tests). */
export interface SimScheduler {
  now(): number;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

const realScheduler: SimScheduler = {
  now: () => performance.now(),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as ReturnType<typeof setInterval>),
};

export interface SimAutopilotOptions {
  /** Where the simulated autopilot's telemetry port is, e.g. "tcp-listen://127.0.0.1:5760". */
  link: EndpointSpec | string;
  /** Simulator settings (defaults: SIM_DEFAULTS). */
  sim?: SimOptionsInput;
  logger: Logger;
  /** Defaults to src/link's createTransport. */
  transportFactory?: TransportFactory;
  scheduler?: SimScheduler;
}

/**
 * `mavmq sim`: a SimCore attached to a transport. Every peer link (each GCS connected to a
 * tcp-listen, each UDP peer) gets its own channel with its own sequence numbers and stream rates;
 * all of them see the same vehicle. The constructor validates options and does nothing else.
 */
export class SimAutopilot {
  readonly options: SimOptions;
  readonly spec: EndpointSpec;
  private readonly log: Logger;
  private readonly factory: TransportFactory;
  private readonly scheduler: SimScheduler;
  private simCore: SimCore | null = null;
  private transport: Transport | null = null;
  private paramFile: JsonParamFile | null = null;
  private timer: unknown = null;
  private state: 'idle' | 'running' | 'stopped' = 'idle';
  private stopping: Promise<void> | null = null;

  constructor(opts: SimAutopilotOptions) {
    this.spec = typeof opts.link === 'string' ? parseEndpointUrl(opts.link) : opts.link;
    this.options = resolveSimOptions(opts.sim ?? {});
    this.log = opts.logger.child({ module: 'sim' });
    this.factory = opts.transportFactory ?? createTransport;
    this.scheduler = opts.scheduler ?? realScheduler;
  }

  /** The running simulator (null before start / after stop): for tests and fault injection. */
  get core(): SimCore | null {
    return this.simCore;
  }

  get link(): Transport | null {
    return this.transport;
  }

  async start(signal: AbortSignal): Promise<void> {
    if (this.state !== 'idle') throw new MavmqError(ErrorCodes.USAGE, 'SimAutopilot is single-use: start() called twice or after stop()');
    this.state = 'running';
    if (signal.aborted) return this.stop();
    const o = this.options;
    if (o.paramsFile !== undefined) {
      this.paramFile = new JsonParamFile(o.paramsFile, { onError: (err) => this.log.warn({ err }, 'cannot save sim params') });
    }
    const core = new SimCore(o, {
      ...(this.paramFile === null ? {} : { paramStore: this.paramFile }),
      onError: (err) => this.log.warn({ err }, 'sim failed to handle a frame'),
    });
    this.simCore = core;
    const transport = this.factory(this.spec, { logger: this.log });
    this.transport = transport;
    transport.on('open', (link) => {
      if (core.attach(link.id, (bytes) => void link.write(bytes))) this.log.info({ link: link.id }, 'ground station link attached');
      else this.log.warn({ link: link.id, maxLinks: o.maxLinks }, 'link ignored: too many links');
    });
    transport.on('data', (link, chunk) => core.receive(link.id, chunk));
    transport.on('close', (link) => core.detach(link.id));
    transport.on('error', (err) => this.log.warn({ err }, 'sim link error'));
    core.tick(this.scheduler.now());
    this.timer = this.scheduler.setInterval(() => core.tick(this.scheduler.now()), o.tickMs);
    signal.addEventListener('abort', () => void this.stop(), { once: true });
    this.log.info({ link: this.spec.url, sysid: core.sysid, speedup: o.speedup, params: core.params.count }, 'simulated ArduCopter starting');
    try {
      await transport.start(signal);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Stops ticking, closes the transport and flushes the params file. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  // Test / fault-injection conveniences (no-ops before start).
  reboot(): void {
    this.simCore?.startReboot();
  }

  stall(ms: number): void {
    this.simCore?.stall(ms);
  }

  setFaults(f: Partial<SimFaults>): void {
    this.simCore?.setFaults(f);
  }

  private async doStop(): Promise<void> {
    this.state = 'stopped';
    if (this.timer !== null) this.scheduler.clearInterval(this.timer);
    this.timer = null;
    await this.transport?.stop();
    this.transport?.removeAllListeners();
    await this.paramFile?.close();
    this.simCore = null;
  }
}
