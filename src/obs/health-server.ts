/**
 * The daemon's small local HTTP face (`--http 127.0.0.1:9180`):
 *
 *   GET /health   200 {"status":"ok"} | 503 {"status":"degraded","reasons":[...]}   (monitoring, load checks)
 *   GET /status   the full snapshot as JSON, for `mavmq status`
 *   GET /metrics  Prometheus text (src/obs/metrics.ts), incl. RSS and event-loop lag
 *
 * Loopback unless another address is written explicitly: the snapshot names devices, endpoints and
 * vehicles, and nothing here is authenticated. The constructor does nothing; start() listens and
 * only then loads prom-client (about 11 MB of RSS), stop() closes every connection.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AirSnapshot } from '../app/air.js';
import type { GroundSnapshot } from '../app/ground.js';
import { ErrorCodes, MavmqError } from '../errors.js';
import type { Logger } from './logger.js';
import { createMetrics, type Metrics, type MetricsSample } from './metrics.js';

export interface HealthReport {
  ok: boolean;
  reasons: string[];
}

export interface HttpAddr {
  host: string;
  port: number;
}

export const DEFAULT_HTTP_HOST = '127.0.0.1';
/** Conventional ports: air 9180, ground 9181 (both may run on one machine, e.g. the demo). */
export const DEFAULT_AIR_HTTP_PORT = 9180;
export const DEFAULT_GROUND_HTTP_PORT = 9181;

/** For commands.ts: the `--http` option of `mavmq air` / `mavmq ground` (and `mavmq status`). */
export const HTTP_OPTION = {
  type: 'string',
  help: 'serve /health, /status and /metrics on ADDR:PORT (loopback unless an address is given), e.g. 127.0.0.1:9180',
} as const;

/**
 * "127.0.0.1:9180", ":9180" and "9180" (loopback), "0.0.0.0:9180" (all interfaces: explicit),
 * "[::1]:9180", "localhost:9180".
 */
export function parseHttpAddr(text: string): HttpAddr {
  const fail = (message: string): never => {
    throw new MavmqError(ErrorCodes.USAGE, `--http ${text}: ${message}`, {
      problems: [{ path: '--http', message, hint: 'write ADDR:PORT, e.g. 127.0.0.1:9180 (or :9180 for loopback)' }],
    });
  };
  const t = text.trim();
  let host: string;
  let portText: string;
  const v6 = /^\[([0-9A-Fa-f:.]+)\]:(\d+)$/.exec(t);
  if (v6) {
    host = v6[1] as string;
    portText = v6[2] as string;
  } else if (/^\d+$/.test(t)) {
    host = '';
    portText = t;
  } else {
    const i = t.lastIndexOf(':');
    if (i < 0) return fail('missing ":PORT"');
    host = t.slice(0, i);
    portText = t.slice(i + 1);
    if (host.includes(':')) return fail('put an IPv6 address in brackets: [::1]:9180');
    if (host !== '' && !/^[A-Za-z0-9.-]+$/.test(host)) return fail(`"${host}" is not a host name or address`);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || !Number.isInteger(port) || port < 0 || port > 65535) return fail(`"${portText}" is not a port (0-65535)`);
  return { host: host === '' ? DEFAULT_HTTP_HOST : host, port };
}

export function formatHttpAddr(a: HttpAddr): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** JSON that survives bigint counters (as strings) and never throws on a cycle. */
export function toJson(value: unknown, space?: number): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'object' && v !== null) {
      if (seen.has(v)) return '[circular]';
      seen.add(v);
    }
    return v;
  }, space);
}

/** The body of GET /status (what `mavmq status` reads). */
export interface StatusDocument {
  role: 'air' | 'ground';
  version: string;
  pid: number;
  uptimeS: number;
  /** performance.now() of the daemon: snapshot times such as lastHeartbeatMs are on this clock. */
  monoNowMs: number;
  health: HealthReport;
  snapshot: unknown;
}

export interface HealthServerOptions {
  listen: HttpAddr | string;
  role: 'air' | 'ground';
  health: () => HealthReport;
  snapshot: () => unknown;
  /** Metrics input from the same snapshot (sampleFromAir / sampleFromGround); without it /metrics has only process metrics. */
  metrics?: () => MetricsSample;
  logger?: Logger;
  version?: string;
  /** Include prom-client's process/Node.js metrics (default true). */
  defaultMetrics?: boolean;
}

export class HealthServer {
  private server: Server | null = null;
  private metrics: Metrics | null = null;
  private bound: HttpAddr | null = null;

  constructor(private readonly opts: HealthServerOptions) {}

  /** The address actually bound (port 0 resolved), or null before start. */
  get address(): HttpAddr | null {
    return this.bound;
  }

  async start(signal?: AbortSignal): Promise<void> {
    if (this.server) return;
    const addr = typeof this.opts.listen === 'string' ? parseHttpAddr(this.opts.listen) : this.opts.listen;
    const metricsInput = this.opts.metrics;
    const emptySample = (): MetricsSample => ({ role: this.opts.role, links: [], broker: null, sessions: [], tlogs: [], router: [] });
    this.metrics = await createMetrics(metricsInput ?? emptySample, { defaultMetrics: this.opts.defaultMetrics !== false });
    const server = createServer((req, res) => this.handle(req, res));
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    server.keepAliveTimeout = 5_000;
    server.maxHeadersCount = 50;
    server.maxConnections = 32;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const hint = err.code === 'EADDRINUSE' ? 'another mavmq (or something else) listens there: pick another --http port' : err.code === 'EADDRNOTAVAIL' ? 'that address is not on this machine' : undefined;
        reject(new MavmqError(ErrorCodes.USAGE, `--http ${formatHttpAddr(addr)}: cannot listen: ${err.code ?? err.message}`, {
          cause: err, problems: [{ path: '--http', message: err.code ?? err.message, ...(hint ? { hint } : {}) }],
        }));
      };
      server.once('error', onError);
      server.listen(addr.port, addr.host, () => {
        server.off('error', onError);
        resolve();
      });
    }).catch((err: unknown) => {
      this.metrics?.close();
      this.metrics = null;
      throw err;
    });
    server.on('error', (err) => this.opts.logger?.warn({ err: err.message }, 'http server error'));
    this.server = server;
    const a = server.address() as AddressInfo;
    this.bound = { host: a.address, port: a.port };
    this.opts.logger?.info({ http: formatHttpAddr(this.bound) }, 'health/status/metrics server listening');
    signal?.addEventListener('abort', () => void this.stop(), { once: true });
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.bound = null;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    }
    this.metrics?.close();
    this.metrics = null;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this.send(req, res, 405, 'application/json', toJson({ error: 'method not allowed' }), { Allow: 'GET, HEAD' });
      return;
    }
    switch (path) {
      case '/health': {
        const h = this.healthReport();
        this.send(req, res, h.ok ? 200 : 503, 'application/json', toJson(h.ok ? { status: 'ok' } : { status: 'degraded', reasons: h.reasons }));
        return;
      }
      case '/status': {
        let snapshot: unknown;
        try {
          snapshot = this.opts.snapshot();
        } catch (err) {
          this.send(req, res, 503, 'application/json', toJson({ error: `snapshot unavailable: ${(err as Error).message}` }));
          return;
        }
        const doc: StatusDocument = {
          role: this.opts.role, version: this.opts.version ?? 'unknown', pid: process.pid, uptimeS: Math.round(process.uptime()),
          monoNowMs: performance.now(), health: this.healthReport(), snapshot,
        };
        this.send(req, res, 200, 'application/json', toJson(doc));
        return;
      }
      case '/metrics': {
        const m = this.metrics;
        if (!m) {
          this.send(req, res, 503, 'text/plain', 'stopping\n');
          return;
        }
        m.render().then(
          (text) => this.send(req, res, 200, m.contentType, text),
          (err: unknown) => this.send(req, res, 500, 'text/plain', `metrics failed: ${(err as Error).message}\n`),
        );
        return;
      }
      case '/':
        this.send(req, res, 200, 'text/plain', 'mavmq: /health /status /metrics\n');
        return;
      default:
        this.send(req, res, 404, 'application/json', toJson({ error: 'not found', paths: ['/health', '/status', '/metrics'] }));
    }
  }

  private healthReport(): HealthReport {
    try {
      const h = this.opts.health();
      return { ok: h.ok, reasons: h.reasons };
    } catch (err) {
      return { ok: false, reasons: [`health check failed: ${(err as Error).message}`] };
    }
  }

  private send(req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
    const buf = Buffer.from(body.endsWith('\n') ? body : `${body}\n`, 'utf8');
    res.writeHead(status, { 'Content-Type': type.includes('charset') ? type : `${type}; charset=utf-8`, 'Content-Length': buf.length, 'Cache-Control': 'no-store', ...headers });
    res.end(req.method === 'HEAD' ? undefined : buf);
  }
}

// ---------------------------------------------------------------------------------------------
// What "healthy" means for each role (GET /health). These report conditions an operator must
// know about; they are NOT watchdog criteria (a restart does not bring an unplugged autopilot
// back; see sd-notify.ts).

export interface AirHealthOptions {
  /** No autopilot HEARTBEAT for this long is unhealthy (default 5000 ms). */
  heartbeatTimeoutMs?: number;
  /** performance.now(), the clock of AutopilotState.lastHeartbeatMs. */
  nowMs?: number;
}

export function airHealth(s: AirSnapshot, opts: AirHealthOptions = {}): HealthReport {
  const reasons: string[] = [];
  const now = opts.nowMs ?? performance.now();
  const timeout = opts.heartbeatTimeoutMs ?? 5000;
  if (!s.autopilot.connected) reasons.push(`autopilot link ${s.autopilot.url} is not open${s.autopilot.lastError ? `: ${s.autopilot.lastError}` : ''}`);
  if (s.autopilotState === null) reasons.push('no autopilot HEARTBEAT yet');
  else if (now - s.autopilotState.lastHeartbeatMs > timeout) reasons.push(`no autopilot HEARTBEAT for ${Math.round((now - s.autopilotState.lastHeartbeatMs) / 1000)} s`);
  if (s.mqtt !== null && !s.mqtt.connected) reasons.push(`MQTT broker not connected${s.mqtt.lastError ? `: ${s.mqtt.lastError}` : ''}`);
  if (s.relay !== null && s.mqtt?.connected === true && s.relay.sessionId === null) reasons.push('no end-to-end session with the gateway yet (HELLO unanswered: is the gateway running with this vehicle\'s key?)');
  return { ok: reasons.length === 0, reasons };
}

export function groundHealth(s: GroundSnapshot): HealthReport {
  const reasons: string[] = [];
  if (!s.mqtt.connected) reasons.push(`MQTT broker not connected${s.mqtt.lastError ? `: ${s.mqtt.lastError}` : ''}`);
  // Vehicles being offline is normal (on the ground, switched off): it shows in /status, not here.
  return { ok: reasons.length === 0, reasons };
}
