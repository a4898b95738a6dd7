import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { airConfigSchema, groundConfigSchema } from '../config/schema.js';
import { generateKey, writeKeyFile } from '../crypto/keys.js';
import type { TransportFactory } from '../link/transport.js';
import type { Logger } from '../obs/logger.js';
import { SimAutopilot } from '../sim/index.js';
import { AirApp } from './air.js';
import { GroundGateway } from './ground.js';
import { MavmqError, ErrorCodes } from '../errors.js';
import { freeTcpPort } from '../link/free-port.js';

/**
 * `npm start`: the whole chain on one machine with embedded defaults —
 *   simulated ArduCopter (on a pty through socat when available, else TCP)
 *   -> mavmq air -> in-process MQTT broker (aedes) -> mavmq ground -> UDP 14550 + TCP 5760 for a GCS.
 * Keys are throwaway, made fresh in a temp directory. Against a real broker only the URL changes.
 */
export interface DemoOptions {
  logger: Logger;
  createTransport: TransportFactory;
  out: (line: string) => void;
  gcsUdpPort: number;
  gcsTcpPort: number;
  brokerUrl?: string;
  speedup: number;
  usePty: boolean;
}

export class Demo {
  private dir: string | null = null;
  private socat: ChildProcess | null = null;
  private broker: { server: Server; close: () => void } | null = null;
  private sim: SimAutopilot | null = null;
  private air: AirApp | null = null;
  private ground: GroundGateway | null = null;

  constructor(private readonly opts: DemoOptions) {}

  async start(signal: AbortSignal): Promise<void> {
    const { opts } = this;
    const log = opts.logger.child({ module: 'demo' });
    this.dir = await mkdtemp(join(tmpdir(), 'mavmq-demo-'));
    const vehicleId = 'demo-1';
    const keyFile = join(this.dir, `${vehicleId}.key`);
    await writeKeyFile(keyFile, generateKey());

    // 1. The broker: a real one if given, else aedes in-process on a free loopback port.
    let brokerUrl = opts.brokerUrl;
    let protocolVersion: 4 | 5 = 5;
    if (brokerUrl === undefined) {
      const { Aedes } = await import('aedes');
      const aedes = await Aedes.createBroker();
      const server = createServer(aedes.handle);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
      const port = (server.address() as { port: number }).port;
      this.broker = { server, close: () => { server.close(); aedes.close(); } };
      brokerUrl = `mqtt://127.0.0.1:${port}`;
      protocolVersion = 4; // aedes speaks MQTT 3.1.1 only
    }

    // 2. The autopilot: a pty pair (as a real serial port) when socat exists, else TCP.
    let simLink: string;
    let airLink: string;
    if (opts.usePty && spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0) {
      const a = join(this.dir, 'autopilot');
      const b = join(this.dir, 'companion');
      this.socat = spawn('socat', [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: 'ignore' });
      for (let i = 0; i < 100 && !(existsSync(a) && existsSync(b)); i++) await sleep(50);
      if (!existsSync(a)) throw new MavmqError(ErrorCodes.TRANSPORT, 'socat did not create the demo pty pair');
      simLink = `serial://${a}?baud=921600`;
      airLink = `serial://${b}?baud=921600`;
    } else {
      const port = await freeTcpPort();
      simLink = `tcp-listen://127.0.0.1:${port}`;
      airLink = `tcp://127.0.0.1:${port}`;
    }
    this.sim = new SimAutopilot({ link: simLink, sim: { speedup: opts.speedup }, logger: opts.logger, transportFactory: opts.createTransport });
    await this.sim.start(signal);

    // 3. Ground first, so the vehicle's first HELLO finds it listening.
    const mqtt = { url: brokerUrl, protocolVersion };
    this.ground = new GroundGateway(groundConfigSchema.parse({
      role: 'ground', mqtt,
      fleet: [{ id: vehicleId, keyFile, gcs: [{ url: `udp://127.0.0.1:${opts.gcsUdpPort}` }, { url: `tcp-listen://127.0.0.1:${opts.gcsTcpPort}` }] }],
      stats: { intervalMs: 30_000 },
    }), { logger: opts.logger, createTransport: opts.createTransport, gatewayId: 'demo' });
    await this.ground.start(signal);

    this.air = new AirApp(airConfigSchema.parse({
      link: { url: airLink }, vehicle: { id: vehicleId }, keyFile, mqtt, stats: { intervalMs: 30_000 },
    }), { logger: opts.logger, createTransport: opts.createTransport });
    await this.air.start(signal);

    log.info({ sim: simLink, air: airLink, broker: brokerUrl, vehicle: vehicleId }, 'demo running');
    opts.out([
      '',
      'mavmq demo is running: simulated ArduCopter -> mavmq air -> MQTT (encrypted) -> mavmq ground',
      `  autopilot link : ${airLink}`,
      `  broker         : ${brokerUrl}${this.broker ? ' (in-process aedes)' : ''}`,
      'Point a ground station at the gateway:',
      `  QGroundControl / Mission Planner: the gateway sends to UDP 127.0.0.1:${opts.gcsUdpPort}${opts.gcsUdpPort === 14550 ? ' (their default: nothing to set)' : ''}`,
      `  MAVProxy: mavproxy.py --master=tcp:127.0.0.1:${opts.gcsTcpPort}`,
      `  pymavlink: mavutil.mavlink_connection('tcp:127.0.0.1:${opts.gcsTcpPort}')`,
      'Ctrl-C stops everything.',
      '',
    ].join('\n'));
  }

  async stop(): Promise<void> {
    await this.air?.stop();
    await this.ground?.stop();
    await this.sim?.stop();
    this.broker?.close();
    this.socat?.kill('SIGTERM');
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
