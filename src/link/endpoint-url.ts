import { MavmqError, ErrorCodes } from '../errors.js';

/**
 * Every MAVLink endpoint is written as a URL and parsed here, once, into a discriminated union.
 *   serial:///dev/ttyAMA0?baud=921600&flow=rtscts&bauds=57600,115200,921600
 *   tcp://127.0.0.1:5760            client (ArduPilot SITL)
 *   tcp-listen://127.0.0.1:5760     server, one router port per accepted client
 *   udp://127.0.0.1:14550           send to that address; replies come back to our socket
 *   udp-listen://127.0.0.1:14550    bind; send to the peers we have heard from
 * Listening endpoints without a host bind to loopback: exposing the autopilot is an explicit choice.
 */
export type EndpointSpec =
  | { kind: 'serial'; url: string; path: string; baudRate: number; flowControl: 'none' | 'rtscts'; autoBaud: readonly number[] }
  | { kind: 'tcp'; url: string; host: string; port: number }
  | { kind: 'tcp-listen'; url: string; host: string; port: number }
  | { kind: 'udp'; url: string; host: string; port: number }
  | { kind: 'udp-listen'; url: string; host: string; port: number };

export type EndpointKind = EndpointSpec['kind'];

export const DEFAULT_BAUD = 115200;
const STANDARD_BAUDS = new Set([9600, 19200, 38400, 57600, 111100, 115200, 230400, 256000, 460800, 500000, 921600, 1000000, 1500000, 2000000, 3000000]);

function fail(url: string, message: string, hint: string): never {
  throw new MavmqError(ErrorCodes.ENDPOINT_URL, `bad endpoint URL "${url}": ${message}`, {
    problems: [{ path: url, message, hint }],
  });
}

function parseBaud(url: string, text: string, what: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) fail(url, `${what} "${text}" is not a positive integer`, 'e.g. baud=921600');
  if (!STANDARD_BAUDS.has(n)) fail(url, `${what} ${n} is not a standard rate`, `one of ${[...STANDARD_BAUDS].join(', ')}`);
  return n;
}

export function parseEndpointUrl(text: string): EndpointSpec {
  const url = text.trim();
  const m = /^([a-z-]+):\/\/(.*)$/.exec(url);
  if (!m) fail(url, 'missing scheme', 'start with serial://, tcp://, tcp-listen://, udp:// or udp-listen://');
  const scheme = m[1] ?? '';
  const rest = m[2] ?? '';
  if (scheme === 'serial') {
    const q = rest.indexOf('?');
    const path = decodeURIComponent(q < 0 ? rest : rest.slice(0, q));
    if (!path.startsWith('/')) fail(url, 'serial path must be absolute', 'serial:///dev/ttyACM0?baud=115200 (three slashes)');
    const params = new URLSearchParams(q < 0 ? '' : rest.slice(q + 1));
    for (const k of params.keys()) {
      if (!['baud', 'flow', 'bauds'].includes(k)) fail(url, `unknown parameter "${k}"`, 'known: baud, flow, bauds');
    }
    const baudText = params.get('baud');
    const baudRate = baudText === null ? DEFAULT_BAUD : parseBaud(url, baudText, 'baud');
    const flow = params.get('flow') ?? 'none';
    if (flow !== 'none' && flow !== 'rtscts') fail(url, `flow "${flow}" is not supported`, 'flow=rtscts or flow=none');
    const baudsText = params.get('bauds');
    const autoBaud = baudsText === null ? [] : baudsText.split(',').map((b) => parseBaud(url, b, 'bauds entry'));
    return { kind: 'serial', url, path, baudRate, flowControl: flow, autoBaud };
  }
  if (scheme === 'tcp' || scheme === 'tcp-listen' || scheme === 'udp' || scheme === 'udp-listen') {
    const listening = scheme.endsWith('-listen');
    // "tcp-listen://:5760" means "the default address": loopback.
    const hostPort = listening && rest.startsWith(':') ? `127.0.0.1${rest}` : rest;
    let parsed: URL;
    try {
      parsed = new URL(`http://${hostPort}`);
    } catch {
      fail(url, 'cannot parse host:port', `${scheme}://127.0.0.1:14550`);
    }
    if (parsed.pathname !== '/' || parsed.search !== '') fail(url, 'unexpected path or query', `${scheme}://HOST:PORT`);
    const host = parsed.hostname.replace(/^\[|\]$/g, '');
    if (!listening && (host === '0.0.0.0' || host === '::')) fail(url, 'cannot send to a wildcard address', 'use 127.0.0.1 or the peer address');
    const portText = /:(\d+)$/.exec(hostPort.replace(/\/$/, ''))?.[1];
    const port = Number(portText);
    if (portText === undefined || !Number.isInteger(port) || port < 1 || port > 65535) fail(url, 'missing or invalid port', `${scheme}://${host}:14550`);
    return { kind: scheme, url, host, port };
  }
  return fail(url, `unknown scheme "${scheme}"`, 'serial, tcp, tcp-listen, udp or udp-listen');
}

/** The listen forms bind; tcp-listen with ":5760" or "tcp-listen://:5760" binds loopback by default. */
export function isListening(spec: EndpointSpec): boolean {
  return spec.kind === 'tcp-listen' || spec.kind === 'udp-listen';
}
