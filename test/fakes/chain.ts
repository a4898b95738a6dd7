import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { airConfigSchema, groundConfigSchema, type AirConfigInput } from '../../src/config/schema.js';
import { generateKey, writeKeyFile } from '../../src/crypto/keys.js';
import { createTransport } from '../../src/link/index.js';
import { AirApp } from '../../src/app/air.js';
import { GroundGateway } from '../../src/app/ground.js';
import { SimAutopilot, type SimOptionsInput } from '../../src/sim/index.js';
import { silentLogger, type Logger } from '../../src/obs/logger.js';
import { Mosquitto, freePort } from './mosquitto.js';
import { GcsClient } from './gcs-client.js';

/**
 * The whole chain for end-to-end tests, every part real: simulated autopilot on TCP -> AirApp ->
 * a real mosquitto -> GroundGateway -> a GCS client on the gateway's TCP port. Each part can be
 * stopped and started again (reboots, broker restarts).
 */
export interface ChainOptions {
  vehicleId?: string;
  sim?: SimOptionsInput;
  air?: Partial<AirConfigInput>;
  logger?: Logger;
  tlog?: boolean;
  /** Store-and-forward spool for the air side (in the chain's temp dir). */
  spool?: boolean;
  /** Extra top-level ground config (e.g. `policy`). */
  ground?: Record<string, unknown>;
}

export class Chain {
  readonly broker = new Mosquitto();
  dir = '';
  keyFile = '';
  simPort = 0;
  gcsPort = 0;
  vehicleId: string;
  sim: SimAutopilot | null = null;
  air: AirApp | null = null;
  ground: GroundGateway | null = null;
  gcs: GcsClient | null = null;
  private readonly logger: Logger;

  constructor(private readonly opts: ChainOptions = {}) {
    this.vehicleId = opts.vehicleId ?? 'e2e-1';
    this.logger = opts.logger ?? silentLogger();
  }

  async start(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'mavmq-e2e-'));
    this.keyFile = join(this.dir, `${this.vehicleId}.key`);
    await writeKeyFile(this.keyFile, generateKey());
    await this.broker.start();
    this.simPort = await freePort();
    this.gcsPort = await freePort();
    await this.startSim();
    await this.startGround();
    await this.startAir();
    this.gcs = new GcsClient();
    await this.gcs.connect(this.gcsPort);
  }

  async startSim(): Promise<void> {
    this.sim = new SimAutopilot({
      link: `tcp-listen://127.0.0.1:${this.simPort}`, logger: this.logger, transportFactory: createTransport,
      sim: { speedup: 4, gpsDelayMs: 2000, ...this.opts.sim },
    });
    await this.sim.start(new AbortController().signal);
  }

  async startGround(): Promise<void> {
    this.ground = new GroundGateway(groundConfigSchema.parse({
      role: 'ground',
      mqtt: { url: this.broker.url, reconnectPeriodMs: 300 },
      fleet: [{ id: this.vehicleId, keyFile: this.keyFile, gcs: [{ url: `tcp-listen://127.0.0.1:${this.gcsPort}` }], ...(this.opts.tlog ? { tlog: { dir: join(this.dir, 'ground-tlog'), flushIntervalMs: 200 } } : {}) }],
      ...this.opts.ground,
    }), { logger: this.logger, createTransport, gatewayId: 'test' });
    await this.ground.start(new AbortController().signal);
  }

  async startAir(): Promise<void> {
    this.air = new AirApp(airConfigSchema.parse({
      link: { url: `tcp://127.0.0.1:${this.simPort}` },
      vehicle: { id: this.vehicleId },
      keyFile: this.keyFile,
      mqtt: { url: this.broker.url, reconnectPeriodMs: 300 },
      ...(this.opts.tlog ? { tlog: { dir: join(this.dir, 'air-tlog'), flushIntervalMs: 200 } } : {}),
      ...(this.opts.spool ? { spool: { dir: join(this.dir, 'spool'), syncIntervalMs: 200 } } : {}),
      ...this.opts.air,
    }), { logger: this.logger, createTransport });
    await this.air.start(new AbortController().signal);
  }

  async stop(): Promise<void> {
    this.gcs?.close();
    await this.air?.stop();
    await this.ground?.stop();
    await this.sim?.stop();
    await this.broker.dispose();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
