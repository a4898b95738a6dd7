import { MavmqError, ErrorCodes, ExitCodes } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { checkConfigFile, loadAirConfig, loadGroundConfig } from '../config/loader.js';
import { createTransport } from '../link/index.js';
import { generateKey, writeKeyFile } from '../crypto/keys.js';
import { pskFingerprint } from '../crypto/hkdf.js';
import { policyCheckCommand } from '../policy/cli.js';
import { OPS_COMMANDS, DaemonOps } from './ops.js';
import { HTTP_OPTION } from '../obs/health-server.js';
// Daemons are imported when their command runs: each process carries only the code it uses
// (RSS on a Pi matters: mqtt.js, the simulator and the gateway are not needed by a pure router).

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  makeLogger: (level?: string) => Logger;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM) or the controller aborts. */
  untilSignal: (controller: AbortController) => Promise<void>;
}

export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  help: string;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: Record<string, OptionSpec>;
  examples: string[];
  run: (args: ParsedArgs, io: CliIo) => Promise<number>;
}

export function str(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === 'string' ? v : undefined;
}
export function strs(args: ParsedArgs, name: string): string[] {
  const v = args.values[name];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : [];
}
export function num(args: ParsedArgs, name: string): number | undefined {
  const v = str(args, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new MavmqError(ErrorCodes.USAGE, `--${name} must be a number, got "${v}"`);
  return n;
}

/**
 * Run a daemon until SIGINT/SIGTERM, then stop it cleanly. With `ops`: the health/metrics listener
 * opens first (a taken port fails before the autopilot link is touched), systemd hears READY=1 and
 * watchdog pings while healthy, and STOPPING=1 on the way out.
 */
export async function runDaemon(io: CliIo, app: { start(s: AbortSignal): Promise<void>; stop(): Promise<void> }, log: Logger, ops?: DaemonOps): Promise<number> {
  const controller = new AbortController();
  const stopped = io.untilSignal(controller);
  await ops?.listen();
  try {
    await app.start(controller.signal);
  } catch (err) {
    await ops?.stop();
    await app.stop().catch(() => undefined);
    throw err;
  }
  ops?.started(controller.signal);
  await stopped;
  log.info('stopping');
  await ops?.stop();
  await app.stop();
  return ExitCodes.OK;
}

const VERSION = '0.1.0';

/** Every daemon takes it; one spelling of its help. */
const LOG_LEVEL_OPTION: OptionSpec = { type: 'string', help: 'fatal|error|warn|info|debug|trace (default info; env MAVMQ_LOG_LEVEL)' };

const airCommand: Command = {
  name: 'air',
  summary: 'run the onboard side: autopilot link, local router, recorder (and the MQTT relay when configured)',
  usage: '[--config FILE] [--link URL] [--endpoint URL ...] [--tlog-dir DIR] [--broker URL --vehicle ID --key FILE]',
  options: {
    config: { type: 'string', help: 'YAML config file (see config/air.example.yaml)' },
    link: { type: 'string', help: 'autopilot endpoint URL (overrides link.url; env MAVMQ_LINK_URL)' },
    endpoint: { type: 'string', multiple: true, help: 'local endpoint URL, repeatable (added to the config\'s)' },
    'tlog-dir': { type: 'string', help: 'record every frame into rotating .tlog files here' },
    broker: { type: 'string', help: 'MQTT broker URL: relay to the ground, end-to-end encrypted (env MAVMQ_MQTT_URL)' },
    vehicle: { type: 'string', help: 'vehicle id: one MQTT topic level, bound into every envelope (env MAVMQ_VEHICLE_ID)' },
    key: { type: 'string', help: 'the vehicle key file from `mavmq keys new` (mode 0600; env MAVMQ_KEY_FILE)' },
    'mqtt-version': { type: 'string', help: '5 (default) or 4 for MQTT 3.1.1 brokers' },
    http: HTTP_OPTION,
    'log-level': LOG_LEVEL_OPTION,
  },
  examples: [
    'mavmq air --link serial:///dev/ttyACM0?baud=921600 --endpoint udp://127.0.0.1:14550',
    'mavmq air --link tcp://127.0.0.1:5760 --endpoint udp-listen://127.0.0.1:14550 --tlog-dir /var/lib/mavmq/tlog',
    'mavmq air --link serial:///dev/ttyAMA0?baud=921600 --broker mqtts://broker.example:8883 --vehicle drone-1 --key /etc/mavmq/keys/drone-1.key',
    'mavmq air --config /etc/mavmq/air.yaml',
  ],
  run: async (args, io) => {
    const overrides: Record<string, unknown> = {};
    const link = str(args, 'link');
    if (link !== undefined) overrides['link'] = { url: link };
    const file = str(args, 'config');
    const tlogDir = str(args, 'tlog-dir');
    if (tlogDir !== undefined) overrides['tlog'] = { dir: tlogDir };
    const level = str(args, 'log-level');
    if (level !== undefined) overrides['log'] = { level };
    const broker = str(args, 'broker');
    if (broker !== undefined) overrides['mqtt'] = { url: broker, ...mqttVersion(args) };
    const vehicle = str(args, 'vehicle');
    if (vehicle !== undefined) overrides['vehicle'] = { id: vehicle };
    const key = str(args, 'key');
    if (key !== undefined) overrides['keyFile'] = key;
    if (file === undefined && link === undefined && io.env['MAVMQ_LINK_URL'] === undefined) {
      throw new MavmqError(ErrorCodes.USAGE, 'give --config FILE or --link URL');
    }
    const config = await loadAirConfig({ ...(file ? { file } : {}), overrides, appendEndpoints: strs(args, 'endpoint'), env: io.env });
    const logger = io.makeLogger(config.log.level);
    const { AirApp } = await import('../app/air.js');
    const app = new AirApp(config, { logger, createTransport });
    const ops = new DaemonOps({ role: 'air', http: str(args, 'http'), snapshot: () => app.snapshot(), extras: () => app.extras(), logger, env: io.env, version: VERSION });
    return runDaemon(io, app, logger, ops);
  },
};

function mqttVersion(args: ParsedArgs): { protocolVersion?: 4 | 5 } {
  const v = str(args, 'mqtt-version');
  if (v === undefined) return {};
  if (v === '4' || v === '3.1.1') return { protocolVersion: 4 };
  if (v === '5') return { protocolVersion: 5 };
  throw new MavmqError(ErrorCodes.USAGE, `--mqtt-version must be 5 or 4, got "${v}"`);
}

/** `--vehicle ID=KEYFILE` and `--gcs URL` / `--gcs ID=URL` into a fleet list. */
export function fleetFromFlags(vehicles: string[], gcs: string[], tlogDir: string | undefined): Record<string, unknown>[] {
  const fleet = vehicles.map((v) => {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new MavmqError(ErrorCodes.USAGE, `--vehicle must be ID=KEYFILE, got "${v}"`);
    return { id: v.slice(0, eq), keyFile: v.slice(eq + 1), gcs: [] as { url: string }[], ...(tlogDir ? { tlog: { dir: tlogDir } } : {}) };
  });
  for (const g of gcs) {
    const m = /^([A-Za-z0-9_-]+)=(.+)$/.exec(g);
    const target = m ? fleet.find((v) => v.id === m[1]) : fleet.length === 1 ? fleet[0] : undefined;
    if (target === undefined) {
      throw new MavmqError(ErrorCodes.USAGE, m ? `--gcs ${g}: no --vehicle ${m[1]}` : `--gcs ${g}: with several vehicles write --gcs ID=URL`);
    }
    target.gcs.push({ url: m ? (m[2] as string) : g });
  }
  return fleet;
}

const groundCommand: Command = {
  name: 'ground',
  summary: 'run the ground gateway: open the vehicles\' envelopes and serve plain MAVLink to ground stations',
  usage: '[--config FILE] | --broker URL --vehicle ID=KEYFILE [--vehicle ...] --gcs URL [--gcs ...] [--tlog-dir DIR]',
  options: {
    config: { type: 'string', help: 'YAML config file (see config/ground.example.yaml)' },
    broker: { type: 'string', help: 'MQTT broker URL' },
    vehicle: { type: 'string', multiple: true, help: 'ID=KEYFILE, repeatable' },
    gcs: { type: 'string', multiple: true, help: 'GCS endpoint URL (one vehicle) or ID=URL, repeatable' },
    'tlog-dir': { type: 'string', help: 'record each vehicle\'s frames into rotating .tlog files here' },
    'mqtt-version': { type: 'string', help: '5 (default) or 4 for MQTT 3.1.1 brokers' },
    http: HTTP_OPTION,
    'log-level': LOG_LEVEL_OPTION,
  },
  examples: [
    'mavmq ground --broker mqtt://127.0.0.1:1883 --vehicle drone-1=keys/drone-1.key --gcs udp://127.0.0.1:14550 --gcs tcp-listen://127.0.0.1:5760',
    'mavmq ground --broker mqtts://broker:8883 --vehicle a=a.key --vehicle b=b.key --gcs a=udp://127.0.0.1:14550 --gcs b=udp://127.0.0.1:14551',
    'mavmq ground --config /etc/mavmq/ground.yaml',
  ],
  run: async (args, io) => {
    const file = str(args, 'config');
    const overrides: Record<string, unknown> = { role: 'ground' };
    const broker = str(args, 'broker');
    if (broker !== undefined) overrides['mqtt'] = { url: broker, ...mqttVersion(args) };
    const vehicles = strs(args, 'vehicle');
    if (vehicles.length > 0) overrides['fleet'] = fleetFromFlags(vehicles, strs(args, 'gcs'), str(args, 'tlog-dir'));
    const level = str(args, 'log-level');
    if (level !== undefined) overrides['log'] = { level };
    if (file === undefined && (broker === undefined || vehicles.length === 0)) {
      throw new MavmqError(ErrorCodes.USAGE, 'give --config FILE, or --broker URL with --vehicle ID=KEYFILE and --gcs URL');
    }
    const config = await loadGroundConfig({ ...(file ? { file } : {}), overrides });
    const logger = io.makeLogger(config.log.level);
    const { GroundGateway } = await import('../app/ground.js');
    const app = new GroundGateway(config, { logger, createTransport });
    const ops = new DaemonOps({ role: 'ground', http: str(args, 'http'), snapshot: () => app.snapshot(), logger, env: io.env, version: VERSION });
    return runDaemon(io, app, logger, ops);
  },
};

const keysNewCommand: Command = {
  name: 'keys new',
  summary: 'make a vehicle\'s 32-byte pre-shared key: DIR/ID.key, mode 0600 (copy it to the vehicle and the gateway)',
  usage: '--vehicle ID --out DIR [--force]',
  options: {
    vehicle: { type: 'string', help: 'vehicle id (letters, digits, _ and -)' },
    out: { type: 'string', help: 'directory for ID.key (created 0700 if missing)' },
    force: { type: 'boolean', help: 'overwrite an existing key (the old one stops working)' },
  },
  examples: ['mavmq keys new --vehicle drone-1 --out /etc/mavmq/keys'],
  run: async (args, io) => {
    const vehicle = str(args, 'vehicle');
    const out = str(args, 'out');
    if (vehicle === undefined || out === undefined) throw new MavmqError(ErrorCodes.USAGE, 'give --vehicle ID and --out DIR');
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(vehicle)) throw new MavmqError(ErrorCodes.USAGE, `vehicle id "${vehicle}": letters, digits, "_" or "-", 1 to 64 characters`);
    await mkdir(out, { recursive: true, mode: 0o700 });
    const path = join(out, `${vehicle}.key`);
    const key = generateKey();
    await writeKeyFile(path, key, { force: args.values['force'] === true });
    // The fingerprint is public: technicians compare it on both sides without exposing the key.
    io.out(`wrote ${path} (mode 0600, fingerprint ${pskFingerprint(key)})`);
    return ExitCodes.OK;
  },
};

const simCommand: Command = {
  name: 'sim',
  summary: 'run a simulated ArduPilot Copter that ground stations can connect to and fly',
  usage: '--link URL [--speedup N] [--sysid N] [--params-file FILE] [--gps-delay-ms N]',
  options: {
    link: { type: 'string', help: 'where the autopilot listens or connects, e.g. tcp-listen://127.0.0.1:5760 or serial:///dev/pts/5' },
    speedup: { type: 'string', help: 'vehicle time runs N times faster (tests); default 1' },
    sysid: { type: 'string', help: 'MAVLink system id (default 1, or SYSID_THISMAV from the params file)' },
    'params-file': { type: 'string', help: 'keep parameter changes across restarts in this JSON file' },
    'gps-delay-ms': { type: 'string', help: 'time to the first GPS 3D fix (arming is refused before it); default 3000' },
    'log-level': LOG_LEVEL_OPTION,
  },
  examples: [
    'mavmq sim --link tcp-listen://127.0.0.1:5760        # then: mavproxy.py --master=tcp:127.0.0.1:5760',
    'mavmq sim --link udp://127.0.0.1:14550              # QGroundControl picks it up on its default UDP port',
    'mavmq sim --link tcp-listen://127.0.0.1:5760 --speedup 5 --params-file /tmp/sim-params.json',
  ],
  run: async (args, io) => {
    const link = str(args, 'link');
    if (link === undefined) throw new MavmqError(ErrorCodes.USAGE, 'give --link URL');
    const sysid = num(args, 'sysid');
    const speedup = num(args, 'speedup');
    const gpsDelayMs = num(args, 'gps-delay-ms');
    const paramsFile = str(args, 'params-file');
    const logger = io.makeLogger(str(args, 'log-level'));
    const { SimAutopilot } = await import('../sim/index.js');
    const sim = new SimAutopilot({
      link, logger, transportFactory: createTransport,
      sim: { ...(sysid !== undefined ? { sysid } : {}), ...(speedup !== undefined ? { speedup } : {}), ...(gpsDelayMs !== undefined ? { gpsDelayMs } : {}), ...(paramsFile !== undefined ? { paramsFile } : {}) },
    });
    return runDaemon(io, sim, logger);
  },
};

const demoCommand: Command = {
  name: 'demo',
  summary: 'the whole chain on this machine: simulated autopilot, air side, in-process broker, ground gateway (npm start)',
  usage: '[--gcs-udp-port N] [--gcs-tcp-port N] [--broker URL] [--speedup N] [--no-pty]',
  options: {
    'gcs-udp-port': { type: 'string', help: 'UDP port the gateway sends to (QGroundControl listens on 14550)' },
    'gcs-tcp-port': { type: 'string', help: 'TCP port the gateway listens on, on 127.0.0.1 (default 5760)' },
    broker: { type: 'string', help: 'use this MQTT broker instead of the in-process one' },
    speedup: { type: 'string', help: 'simulated vehicle time speed-up (default 1)' },
    'no-pty': { type: 'boolean', help: 'connect the simulated autopilot over TCP even when socat is installed' },
    'log-level': LOG_LEVEL_OPTION,
  },
  examples: ['npm start', 'npx mavmq demo --gcs-udp-port 14551 --broker mqtt://127.0.0.1:1883'],
  run: async (args, io) => {
    const logger = io.makeLogger(str(args, 'log-level') ?? 'info');
    const broker = str(args, 'broker');
    const { Demo } = await import('../app/demo.js');
    const demo = new Demo({
      logger, createTransport, out: io.out,
      gcsUdpPort: num(args, 'gcs-udp-port') ?? 14550, gcsTcpPort: num(args, 'gcs-tcp-port') ?? 5760,
      speedup: num(args, 'speedup') ?? 1, usePty: args.values['no-pty'] !== true, ...(broker !== undefined ? { brokerUrl: broker } : {}),
    });
    return runDaemon(io, demo, logger);
  },
};

const configCheckCommand: Command = {
  name: 'config check',
  summary: 'validate a config file and list every problem with its path, line and a hint',
  usage: 'FILE',
  options: {},
  examples: ['mavmq config check /etc/mavmq/air.yaml', 'mavmq config check config/ground.example.yaml'],
  run: async (args, io) => {
    const file = args.positionals[0];
    if (file === undefined) throw new MavmqError(ErrorCodes.USAGE, 'give the config FILE to check');
    const { role } = await checkConfigFile(file, io.env);
    io.out(`${file}: ok (${role} config)`);
    return ExitCodes.OK;
  },
};

export const COMMANDS: Command[] = [airCommand, groundCommand, simCommand, demoCommand, keysNewCommand, configCheckCommand, policyCheckCommand, ...OPS_COMMANDS];
