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
import { MqttMitm } from './mqtt-spy.js';

const MITM_PREFIX = 'mavmq';

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
  /**
   * Put the air side on its own broker, bridged to the gateway's by a man in the middle that can
   * hold, delay, duplicate or reorder traffic (`chain.mitm`).
   */
  mitm?: boolean;
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
  mitm: MqttMitm | null = null;
  private airBroker: Mosquitto | null = null;
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
    const airBrokerUrl = this.opts.mitm === true ? await this.ensureMitm() : this.broker.url;
    this.air = new AirApp(airConfigSchema.parse({
      link: { url: `tcp://127.0.0.1:${this.simPort}` },
      vehicle: { id: this.vehicleId },
      keyFile: this.keyFile,
      mqtt: { url: airBrokerUrl, reconnectPeriodMs: 300 },
      ...(this.opts.tlog ? { tlog: { dir: join(this.dir, 'air-tlog'), flushIntervalMs: 200 } } : {}),
      ...(this.opts.spool ? { spool: { dir: join(this.dir, 'spool'), syncIntervalMs: 200 } } : {}),
      ...this.opts.air,
    }), { logger: this.logger, createTransport });
    await this.air.start(new AbortController().signal);
  }

  /** The air side's own broker and the bridge to the gateway's (made once); returns its URL. */
  protected async ensureMitm(): Promise<string> {
    if (this.airBroker === null) {
      this.airBroker = new Mosquitto();
      await this.airBroker.start();
      this.mitm = new MqttMitm(this.broker.url, this.airBroker.url, MITM_PREFIX, 20);
      await this.mitm.start();
    }
    return this.airBroker.url;
  }

  async stop(): Promise<void> {
    this.gcs?.close();
    await this.air?.stop();
    await this.ground?.stop();
    await this.sim?.stop();
    await this.mitm?.stop();
    await this.airBroker?.dispose();
    await this.broker.dispose();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
