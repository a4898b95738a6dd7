import { MavmqError, ErrorCodes, ExitCodes } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import { checkConfigFile, loadAirConfig } from '../config/loader.js';
import { createTransport } from '../link/index.js';
import { AirApp } from '../app/air.js';

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

/** Run a daemon until SIGINT/SIGTERM, then stop it cleanly. */
export async function runDaemon(io: CliIo, app: { start(s: AbortSignal): Promise<void>; stop(): Promise<void> }, log: Logger): Promise<number> {
  const controller = new AbortController();
  const stopped = io.untilSignal(controller);
  await app.start(controller.signal);
  await stopped;
  log.info('stopping');
  await app.stop();
  return ExitCodes.OK;
}

const airCommand: Command = {
  name: 'air',
  summary: 'run the onboard side: autopilot link, local router, recorder (and the MQTT relay when configured)',
  usage: '[--config FILE] [--link URL] [--endpoint URL ...] [--tlog-dir DIR]',
  options: {
    config: { type: 'string', help: 'YAML config file (see config/air.example.yaml)' },
    link: { type: 'string', help: 'autopilot endpoint URL (overrides link.url; env MAVMQ_LINK_URL)' },
    endpoint: { type: 'string', multiple: true, help: 'local endpoint URL, repeatable (added to the config\'s)' },
    'tlog-dir': { type: 'string', help: 'record every frame into rotating .tlog files here' },
    'log-level': { type: 'string', help: 'fatal|error|warn|info|debug|trace' },
  },
  examples: [
    'mavmq air --link serial:///dev/ttyACM0?baud=921600 --endpoint udp://127.0.0.1:14550',
    'mavmq air --link tcp://127.0.0.1:5760 --endpoint udp-listen://127.0.0.1:14550 --tlog-dir /var/lib/mavmq/tlog',
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
    if (file === undefined && link === undefined && io.env['MAVMQ_LINK_URL'] === undefined) {
      throw new MavmqError(ErrorCodes.USAGE, 'give --config FILE or --link URL');
    }
    const config = await loadAirConfig({ ...(file ? { file } : {}), overrides, appendEndpoints: strs(args, 'endpoint'), env: io.env });
    const logger = io.makeLogger(config.log.level);
    return runDaemon(io, new AirApp(config, { logger, createTransport }), logger);
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

export const COMMANDS: Command[] = [airCommand, configCheckCommand];
