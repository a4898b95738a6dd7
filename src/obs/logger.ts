import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Paths that may hold secrets anywhere in a log object. Keys never reach a log line. */
export const REDACT_PATHS = [
  'key', '*.key', '*.*.key', 'psk', '*.psk', 'password', '*.password', '*.*.password',
  'secret', '*.secret', 'sessionKey', '*.sessionKey', 'keys', '*.keys',
  'broker.password', 'mqtt.password', 'tls.key', '*.tls.key',
];

export interface LoggerOptions {
  level?: string;
  /** Pretty, human output. Defaults to true when stdout is a terminal (journald gets JSON). */
  pretty?: boolean;
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? process.env['MAVMQ_LOG_LEVEL'] ?? 'info';
  const base = { level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { pid: process.pid } };
  if (opts.destination) return pino(base, opts.destination);
  const pretty = opts.pretty ?? process.stdout.isTTY === true;
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
  }
  return pino(base);
}

/** A silent logger for tests of other parts. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
