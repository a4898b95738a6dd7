/**
 * Field-operations commands: `mavmq status`, `mavmq provision`, `mavmq keys rotate`.
 * Registered in COMMANDS (src/cli/commands.ts) like every other command; see docs/OPERATIONS.md.
 */
import { execFile } from 'node:child_process';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { ErrorCodes, ExitCodes, MavmqError } from '../errors.js';
import { checkConfigFile, parseYamlSource } from '../config/loader.js';
import { airConfigSchema, groundConfigSchema } from '../config/schema.js';
import { generateKey, readKeyFile, readPreviousKeyFile, rotateKeyFile, writeKeyFile } from '../crypto/keys.js';
import { pskFingerprint } from '../crypto/hkdf.js';
import type { AirSnapshot } from '../app/air.js';
import type { GroundSnapshot } from '../app/ground.js';
import { DEFAULT_AIR_HTTP_PORT, DEFAULT_GROUND_HTTP_PORT, DEFAULT_HTTP_HOST, HealthServer, airHealth, formatHttpAddr, groundHealth, parseHttpAddr, type HttpAddr, type StatusDocument } from '../obs/health-server.js';
import type { Logger } from '../obs/logger.js';
import { sampleFromAir, sampleFromGround, type MetricsExtras } from '../obs/metrics.js';
import { LinkStallDetector, SdNotifier, Watchdog, notifyReady, waitUntil } from '../obs/sd-notify.js';
// Types only: commands.ts imports this module to register the commands (no runtime cycle).
import type { Command, ParsedArgs } from './commands.js';

function str(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === 'string' ? v : undefined;
}

const VEHICLE_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

function vehicleIdArg(args: ParsedArgs): string {
  const vehicle = str(args, 'vehicle');
  if (vehicle === undefined) throw new MavmqError(ErrorCodes.USAGE, 'give --vehicle ID');
  if (!VEHICLE_ID_RE.test(vehicle)) throw new MavmqError(ErrorCodes.USAGE, `vehicle id "${vehicle}": letters, digits, "_" or "-", 1 to 64 characters`);
  return vehicle;
}

// =============================================================================================
// The daemon side: --http server, systemd readiness and watchdog (used by `mavmq air` / `ground`)

export type DaemonOpsOptions = {
  /** The --http ADDR:PORT value; without it there is no HTTP server. */
  http?: string | undefined;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  version: string;
  /** READY=1 at the latest this long after start (default 15 s; the units' TimeoutStartSec is 60). */
  readyTimeoutMs?: number;
  /** Policy verdicts, spool size: whatever the daemon has of MetricsExtras. */
  extras?: () => MetricsExtras;
  /** Tests: a notifier with an injected sender. */
  notifier?: SdNotifier;
} & ({ role: 'air'; snapshot: () => AirSnapshot } | { role: 'ground'; snapshot: () => GroundSnapshot });

/**
 * Everything a supervised daemon does besides its job. Call order (see runDaemon):
 *   listen()  before app.start(): the HTTP server, so a taken --http port fails before the
 *             autopilot link is touched (MavmqError E_USAGE, exit 2)
 *   started() after app.start(): READY=1 at the first autopilot HEARTBEAT (air) or broker
 *             connection (ground), or after readyTimeoutMs; then the watchdog pings
 *   stop()    on SIGTERM, before app.stop(): STOPPING=1, watchdog off, server closed
 * Without $NOTIFY_SOCKET (not under systemd) the systemd part does nothing.
 */
export class DaemonOps {
  private server: HealthServer | null = null;
  private watchdog: Watchdog | null = null;
  private readonly notifier: SdNotifier;
  private readonly stall = new LinkStallDetector();
  private readonly controller = new AbortController();

  constructor(private readonly opts: DaemonOpsOptions) {
    this.notifier = opts.notifier ?? new SdNotifier({ env: opts.env, logger: opts.logger.child({ module: 'systemd' }) });
  }

  get httpAddress(): HttpAddr | null {
    return this.server?.address ?? null;
  }

  async listen(): Promise<void> {
    if (this.opts.http === undefined || this.server) return;
    const o = this.opts;
    const base = { listen: parseHttpAddr(o.http ?? ''), version: o.version, logger: o.logger.child({ module: 'http' }) };
    const extras = (): MetricsExtras => o.extras?.() ?? {};
    this.server = o.role === 'air'
      ? new HealthServer({ ...base, role: 'air', snapshot: () => ({ ...o.snapshot(), ...extras() }), health: () => airHealth(o.snapshot()), metrics: () => sampleFromAir(o.snapshot(), extras()) })
      : new HealthServer({ ...base, role: 'ground', snapshot: () => ({ ...o.snapshot(), ...extras() }), health: () => groundHealth(o.snapshot()), metrics: () => sampleFromGround(o.snapshot(), extras()) });
    await this.server.start();
  }

  started(signal?: AbortSignal): void {
    const o = this.opts;
    signal?.addEventListener('abort', () => this.controller.abort(), { once: true });
    const inner = this.controller.signal;
    if (!this.notifier.enabled) return;
    const isReady = o.role === 'air' ? () => o.snapshot().autopilotState !== null : () => o.snapshot().mqtt.connected;
    void notifyReady(this.notifier, waitUntil(isReady, { pollMs: 200, signal: inner }), {
      timeoutMs: o.readyTimeoutMs ?? 15_000, signal: inner,
      readyStatus: o.role === 'air' ? 'running: autopilot heard' : 'running: broker connected',
      timeoutStatus: o.role === 'air' ? 'running: no autopilot HEARTBEAT yet' : 'running: broker not connected yet',
    }).then((outcome) => {
      if (outcome === 'aborted') return;
      this.watchdog = new Watchdog({
        notifier: this.notifier, logger: o.logger.child({ module: 'watchdog' }),
        // Only what a restart fixes: a loop that stopped turning, or a serial link that carried data
        // and went silent while still open. Never an unplugged autopilot or a broker outage.
        healthy: o.role === 'air' ? () => !this.stall.stalled(o.snapshot().autopilot) : () => true,
        status: () => this.statusLine(),
      });
      this.watchdog.start(inner);
    });
  }

  async stop(): Promise<void> {
    this.controller.abort();
    this.watchdog?.stop();
    await this.notifier.stopping('stopping');
    await this.server?.stop();
    this.server = null;
  }

  /** One line for `systemctl status` (STATUS=), refreshed with each watchdog ping. */
  statusLine(): string {
    const o = this.opts;
    try {
      if (o.role === 'air') {
        const s = o.snapshot();
        const ap = s.autopilotState === null ? 'no autopilot heartbeat' : `autopilot ok, ${s.autopilot.lossPercent} % loss`;
        const relay = s.mqtt === null ? 'local router only' : `broker ${s.mqtt.connected ? 'up' : 'DOWN'}, session ${s.relay?.sessionId ?? 'none'}`;
        return `${ap}; ${relay}`;
      }
      const s = o.snapshot();
      const online = s.vehicles.filter((v) => v.relay.online).length;
      return `broker ${s.mqtt.connected ? 'up' : 'DOWN'}; ${online}/${s.vehicles.length} vehicles online`;
    } catch (err) {
      return `starting (${(err as Error).message})`;
    }
  }
}

// =============================================================================================
// mavmq status

/** GET http://ADDR/status; null when nothing listens there (ECONNREFUSED / timeout). */
export async function fetchStatus(addr: HttpAddr, timeoutMs = 3000): Promise<StatusDocument | null> {
  let res: Response;
  try {
    res = await fetch(`http://${formatHttpAddr(addr)}/status`, { signal: AbortSignal.timeout(timeoutMs) });
  } catch {
    return null;
  }
  const text = await res.text();
  if (!res.ok) throw new MavmqError(ErrorCodes.INTERNAL, `http://${formatHttpAddr(addr)}/status answered ${res.status}: ${text.trim().slice(0, 200)}`);
  try {
    return JSON.parse(text) as StatusDocument;
  } catch {
    throw new MavmqError(ErrorCodes.INTERNAL, `http://${formatHttpAddr(addr)}/status did not answer JSON: is that a mavmq daemon?`);
  }
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const n = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : null);
const s = (v: unknown): string => (typeof v === 'string' ? v : v === null || v === undefined ? '-' : String(v as string | number | boolean));

function bytes(v: unknown): string {
  const b = n(v);
  if (b === null) return '-';
  if (b < 1024) return `${b} B`;
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KiB`;
  if (b < 1024 ** 3) return `${(b / 1024 / 1024).toFixed(1)} MiB`;
  return `${(b / 1024 ** 3).toFixed(2)} GiB`;
}
function count(v: unknown): string {
  const c = n(v);
  return c === null ? '-' : String(c);
}
function pct(v: unknown): string {
  const p = n(v);
  return p === null ? '-' : `${p.toFixed(p < 10 ? 2 : 1)} %`;
}
function duration(sec: number): string {
  if (sec < 60) return `${Math.round(sec)}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m${String(Math.round(sec % 60)).padStart(2, '0')}s`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h${String(Math.floor((sec % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(sec / 86400)}d${String(Math.floor((sec % 86400) / 3600)).padStart(2, '0')}h`;
}
function reasons(r: unknown): string {
  const e = Object.entries(obj(r)).filter(([, v]) => typeof v === 'number' && v > 0);
  return e.length === 0 ? 'none' : e.map(([k, v]) => `${k} ${String(v as number)}`).join(', ');
}

/** Column-aligned rows; the first row is the header. */
export function table(rows: string[][], indent = '  '): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd());
}

const MAV_TYPE: Record<number, string> = { 1: 'fixed wing', 2: 'quadrotor', 3: 'coaxial', 4: 'helicopter', 10: 'ground rover', 11: 'boat', 12: 'submarine', 13: 'hexarotor', 14: 'octorotor', 15: 'tricopter', 19: 'VTOL', 20: 'VTOL', 21: 'VTOL', 22: 'VTOL' };
const MAV_AUTOPILOT: Record<number, string> = { 3: 'ArduPilot', 12: 'PX4' };

function linkRows(links: unknown[]): string[][] {
  return [
    ['NAME', 'URL', 'STATE', 'PEERS', 'FRAMES', 'BYTES IN', 'CRC ERR', 'LOSS', 'QUEUE DROPS', 'LAST ERROR'],
    ...links.map((l) => {
      const o = obj(l);
      return [s(o['name']), s(o['url']), o['connected'] === true ? 'open' : 'CLOSED', count(o['peers']), count(o['frames']), bytes(o['bytes']), count(o['crcErrors']), pct(o['lossPercent']), count(o['dropsOut']), o['lastError'] ? s(o['lastError']) : ''];
    }),
  ];
}

/** A count from a number, or from per-class counts ({ telemetry: { records, bytes }, ... }: the records). */
function total(v: unknown, depth = 0): number | null {
  if (typeof v === 'number') return v;
  if (depth > 2 || typeof v !== 'object' || v === null) return null;
  const records = (v as Json)['records'];
  if (typeof records === 'number') return records;
  let sum = 0;
  let any = false;
  for (const x of Object.values(v)) {
    const t = total(x, depth + 1);
    if (t !== null) {
      sum += t;
      any = true;
    }
  }
  return any ? sum : null;
}

/** Sections for what other modules add to the snapshot (command policy, spool), in whatever shape they report. */
function optionalSections(snap: Json): string[] {
  const out: string[] = [];
  const policy = obj(snap['policy']);
  if (Object.keys(policy).length > 0) {
    const nums = Object.entries(policy).filter((e): e is [string, number] => typeof e[1] === 'number').map(([k, v]) => `${k} ${v}`);
    out.push(`POLICY      ${nums.join(', ')}${policy['dryRun'] === true ? '  (DRY RUN: verdicts only, nothing refused)' : ''}`);
    const rules = Object.entries(obj(policy['byRule']))
      .map(([name, c]) => ({ name, deny: n(obj(c)['deny']) ?? 0, confirm: n(obj(c)['confirm']) ?? 0 }))
      .filter((r) => r.deny + r.confirm > 0)
      .sort((a, b) => b.deny + b.confirm - (a.deny + a.confirm))
      .slice(0, 5);
    for (const r of rules) out.push(`            rule ${r.name}: deny ${r.deny}, confirm ${r.confirm}`);
  }
  const spool = obj(snap['spool']);
  if (Object.keys(spool).length > 0) {
    const records = spool['records'] ?? spool['messages'];
    const dropped = total(spool['dropped']);
    out.push(`SPOOL       ${bytes(spool['bytes'])}${records !== undefined ? `, ${count(records)} messages` : ''}${dropped !== null ? `, ${dropped} dropped` : ''}${spool['lastError'] ? `  last error: ${s(spool['lastError'])}` : ''}`);
  }
  return out;
}

function brokerLine(m: Json): string {
  if (Object.keys(m).length === 0) return 'BROKER      not configured (local router only)';
  return `BROKER      ${m['connected'] === true ? 'connected' : 'NOT CONNECTED'}  connects ${count(m['connects'])}  outbox ${bytes(m['outboxBytes'])}  outbox dropped ${count(m['outboxDropped'])}  telemetry dropped offline ${count(m['qos0DroppedOffline'])}${m['lastError'] ? `  last error: ${s(m['lastError'])}` : ''}`;
}

/** The human view of one daemon's /status document. */
export function renderStatus(doc: StatusDocument, from: string): string {
  const lines: string[] = [];
  const h = doc.health;
  lines.push(`mavmq ${doc.role} ${doc.version} on ${from}  pid ${doc.pid}  up ${duration(doc.uptimeS)}  health: ${h.ok ? 'OK' : 'DEGRADED'}`);
  for (const r of h.reasons) lines.push(`  ! ${r}`);
  lines.push('');
  const snap = obj(doc.snapshot);
  if (doc.role === 'air') {
    const ap = obj(snap['autopilot']);
    const st = snap['autopilotState'] === null || snap['autopilotState'] === undefined ? null : obj(snap['autopilotState']);
    let who = 'no HEARTBEAT yet';
    if (st) {
      const age = (doc.monoNowMs - (n(st['lastHeartbeatMs']) ?? 0)) / 1000;
      who = `sys ${count(st['sysid'])} comp ${count(st['compid'])}, ${MAV_AUTOPILOT[n(st['autopilot']) ?? -1] ?? `autopilot ${count(st['autopilot'])}`} ${MAV_TYPE[n(st['type']) ?? -1] ?? `type ${count(st['type'])}`}, ${st['armed'] === true ? 'ARMED' : 'disarmed'}, heartbeat ${age.toFixed(1)} s ago`;
    }
    lines.push(`AUTOPILOT   ${s(ap['url'])}  ${ap['connected'] === true ? 'open' : 'CLOSED'}  ${who}`);
    lines.push(`            frames ${count(ap['frames'])}  bytes ${bytes(ap['bytes'])}  crc errors ${count(ap['crcErrors'])}  loss ${pct(ap['lossPercent'])}  resyncs ${count(ap['resyncs'])}  reconnects ${count(ap['reconnects'])}${ap['lastError'] ? `  last error: ${s(ap['lastError'])}` : ''}`);
    const eps = arr(snap['endpoints']);
    lines.push('', eps.length === 0 ? 'ENDPOINTS   none' : 'ENDPOINTS');
    if (eps.length > 0) lines.push(...table(linkRows(eps)));
    lines.push('', brokerLine(obj(snap['mqtt'])));
    const relay = snap['relay'] === null || snap['relay'] === undefined ? null : obj(snap['relay']);
    if (relay) {
      lines.push(`SESSION     ${relay['sessionId'] ? s(relay['sessionId']) : 'NONE (handshake pending)'}  handshakes ${count(relay['sessions'])}`);
      lines.push(`            up: envelopes ${count(relay['envelopesOut'])}, frames ${count(relay['framesOut'])}, ${bytes(relay['bytesOut'])}, unsent (no session) ${count(relay['framesUnsentNoSession'])}`);
      lines.push(`            down: envelopes ${count(relay['envelopesIn'])}, frames ${count(relay['framesIn'])}`);
      lines.push(`REFUSED     ${count(relay['framesRefused'])} command frames refused by the policy`);
      lines.push(`REJECTED    ${reasons(relay['rejected'])}`);
    }
    const tlog = snap['tlog'] === null || snap['tlog'] === undefined ? null : obj(snap['tlog']);
    lines.push(tlog ? `RECORDER    ${s(tlog['file'])}  frames ${count(tlog['framesWritten'])}  ${bytes(tlog['bytesWritten'])}  dropped ${count(tlog['framesDropped'])}  write errors ${count(tlog['writeErrors'])}` : 'RECORDER    off');
  } else {
    lines.push(brokerLine(obj(snap['mqtt'])), '');
    const vehicles = arr(snap['vehicles']).map(obj);
    lines.push('VEHICLES');
    lines.push(...table([
      ['ID', 'ONLINE', 'SESSION', 'RTT', 'LOSS', 'FRAMES UP', 'FRAMES DOWN', 'UNSENT', 'REJECTED', 'GCS PEERS'],
      ...vehicles.map((v) => {
        const r = obj(v['relay']);
        const peers = arr(v['gcs']).reduce<number>((acc, g) => acc + (n(obj(g)['peers']) ?? 0), 0);
        return [s(r['vehicleId']), r['online'] === true ? 'yes' : 'NO', r['sessionId'] ? s(r['sessionId']) : '-', n(r['rttMs']) === null ? '-' : `${s(r['rttMs'])} ms`, pct(r['lossPercent']), count(r['framesIn']), count(r['framesOut']), count(r['framesUnsentNoSession']), reasons(r['rejected']), String(peers)];
      }),
    ]));
    for (const v of vehicles) {
      const id = s(obj(v['relay'])['vehicleId']);
      lines.push('', `GCS ENDPOINTS of ${id}`, ...table(linkRows(arr(v['gcs']))));
    }
  }
  const extra = optionalSections(snap);
  if (extra.length > 0) lines.push('', ...extra);
  return lines.join('\n');
}

export const statusCommand: Command = {
  name: 'status',
  summary: 'what the running daemon sees: autopilot link, endpoints, broker, session, loss, refusals (from its --http /status)',
  usage: '[--http ADDR:PORT] [--json]',
  options: {
    http: { type: 'string', help: `the daemon's --http address (default: ${DEFAULT_HTTP_HOST}:${DEFAULT_AIR_HTTP_PORT} air, then :${DEFAULT_GROUND_HTTP_PORT} ground)` },
    json: { type: 'boolean', help: 'print the raw /status JSON (for scripts)' },
  },
  examples: [
    'mavmq status                                  # the air daemon (and/or the gateway) on this machine',
    'mavmq status --http 127.0.0.1:9181            # the ground gateway',
    'mavmq status --json | jq .snapshot.autopilot',
    'Exit status: 0 healthy, 1 degraded or not running.',
  ],
  run: async (args, io) => {
    const given = str(args, 'http');
    const addrs = given !== undefined ? [parseHttpAddr(given)] : [{ host: DEFAULT_HTTP_HOST, port: DEFAULT_AIR_HTTP_PORT }, { host: DEFAULT_HTTP_HOST, port: DEFAULT_GROUND_HTTP_PORT }];
    const found: { addr: HttpAddr; doc: StatusDocument }[] = [];
    for (const addr of addrs) {
      const doc = await fetchStatus(addr);
      if (doc) found.push({ addr, doc });
    }
    if (found.length === 0) {
      const where = addrs.map(formatHttpAddr).join(' or ');
      io.err(`mavmq status: no mavmq daemon answers on ${where}.\n  Is it running?   systemctl status mavmq-air   (or mavmq-ground)\n  Started with --http?  The units pass --http 127.0.0.1:9180 (air) / 127.0.0.1:9181 (ground).\n  Its log:          journalctl -u mavmq-air -n 50`);
      return ExitCodes.FAILURE;
    }
    if (args.values['json'] === true) {
      io.out(found.length === 1 ? JSON.stringify(found[0]?.doc, null, 2) : JSON.stringify(found.map((f) => f.doc), null, 2));
    } else {
      io.out(found.map((f) => renderStatus(f.doc, formatHttpAddr(f.addr))).join('\n\n'));
    }
    return found.every((f) => f.doc.health.ok) ? ExitCodes.OK : ExitCodes.FAILURE;
  },
};

// =============================================================================================
// mavmq provision

/** A YAML double-quoted scalar (JSON strings are valid YAML). */
const q = (v: string): string => JSON.stringify(v);

export interface ProvisionInput {
  vehicle: string;
  broker: string;
  out: string;
  link: string;
  gcs: string;
  caFile?: string;
  certFile?: string;
  tlsKeyFile?: string;
  /** Where the daemons read the key: on the vehicle and on the gateway. */
  keyPathAir: string;
  keyPathGround: string;
  /** Password auth (no client certificate). */
  password?: string;
}

export function airConfigText(p: ProvisionInput): string {
  const tls = [
    p.caFile !== undefined ? `  caFile: ${q(p.caFile)}` : null,
    p.certFile !== undefined ? `  certFile: ${q(p.certFile)}      # its CN must be ${q(p.vehicle)} (use_identity_as_username)` : null,
    p.tlsKeyFile !== undefined ? `  keyFile: ${q(p.tlsKeyFile)}` : null,
  ].filter((l): l is string => l !== null);
  const auth = p.password !== undefined ? [`  username: ${q(p.vehicle)}`, `  password: ${q(p.password)}   # matches the line in ground/${p.vehicle}.mosquitto-passwd`] : [];
  return [
    `# mavmq air config for vehicle ${p.vehicle}, written by \`mavmq provision\`.`,
    '# Re-running provision never overwrites your edits: a changed default goes to air.yaml.new.',
    `# Check it with:  mavmq config check ${join(p.out, 'air.yaml')}`,
    'role: air',
    '',
    'vehicle:',
    `  id: ${q(p.vehicle)}`,
    '',
    '# The autopilot: /dev/autopilot is the udev name from 99-mavmq-autopilot.rules (USB);',
    '# for a UART use e.g. serial:///dev/ttyAMA0?baud=921600 (Pi) or serial:///dev/ttyTHS1?baud=921600 (Jetson).',
    'link:',
    `  url: ${q(p.link)}`,
    '',
    '# Local endpoints for onboard programs (loopback unless you write another address).',
    'endpoints: []',
    '#  - name: apps',
    '#    url: tcp-listen://127.0.0.1:5760',
    '',
    '# The vehicle key (mode 0600, owned by the mavmq user); the gateway holds the same file.',
    `keyFile: ${q(p.keyPathAir)}`,
    '',
    'mqtt:',
    `  url: ${q(p.broker)}`,
    ...tls,
    ...auth,
    '',
    '# Command policy for frames from the ground (edit /etc/mavmq/policy.yaml; check it with',
    '# `mavmq policy check /etc/mavmq/policy.yaml`). Every refusal goes to the audit log.',
    'policy:',
    '  file: /etc/mavmq/policy.yaml',
    '  audit:',
    '    file: /var/lib/mavmq/policy-audit.jsonl',
    '',
    '# Store-and-forward while the broker is unreachable (sent as history when it returns).',
    'spool:',
    '  dir: /var/lib/mavmq/spool',
    '',
    '# Flight recorder (.tlog for Mission Planner / MAVProxy):',
    '# tlog:',
    '#   dir: /var/lib/mavmq/tlog',
    '',
    'log:',
    '  level: info',
    '',
  ].join('\n');
}

export function fleetEntryText(p: ProvisionInput): string {
  return [
    `# Fleet entry for ${p.vehicle}, written by \`mavmq provision\`. On the gateway, append it under`,
    '# `fleet:` in /etc/mavmq/ground.yaml, copy the key file to the path below (mode 0600, owner mavmq),',
    '# then: mavmq config check /etc/mavmq/ground.yaml && sudo systemctl restart mavmq-ground',
    `  - id: ${q(p.vehicle)}`,
    `    keyFile: ${q(p.keyPathGround)}`,
    '    gcs:',
    '      - name: gcs',
    `        url: ${q(p.gcs)}`,
    '    # tlog:',
    '    #   dir: /var/lib/mavmq/tlog',
    '',
  ].join('\n');
}

export function aclLinesText(vehicle: string, prefix = 'mavmq'): string {
  return [
    `# mosquitto ACL for ${vehicle}. The pattern lines of config/mosquitto-acl.example already give`,
    '# every vehicle exactly this; add these explicit lines only if your acl_file has no patterns.',
    `user ${vehicle}`,
    `topic write ${prefix}/${vehicle}/up/#`,
    `topic read ${prefix}/${vehicle}/down/#`,
    '',
  ].join('\n');
}

/** A mosquitto 2.x password file line (PBKDF2-SHA512, as `mosquitto_passwd` writes it). */
export function mosquittoPasswdLine(user: string, password: string, salt: Buffer = randomBytes(12), iterations = 101): string {
  const hash = pbkdf2Sync(password, salt, iterations, 64, 'sha512');
  return `${user}:$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

type WriteOutcome = 'created' | 'unchanged' | 'kept' | 'replaced' | 'replaced-default';

/**
 * Writes text unless an identical file exists; an edited file is kept and the new text goes to
 * FILE.new. A file that is byte-identical to one of `pristine` (the example scripts/install.sh puts
 * in place) is nobody's edit and is replaced.
 */
async function writeIdempotent(path: string, text: string, mode: number, force: boolean, pristine: readonly string[] = []): Promise<{ outcome: WriteOutcome; path: string }> {
  let existing: string | null = null;
  try {
    existing = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing === text) return { outcome: 'unchanged', path };
  if (existing !== null && pristine.includes(existing)) {
    await atomicWrite(path, text, mode);
    return { outcome: 'replaced-default', path };
  }
  if (existing !== null && !force) {
    await atomicWrite(`${path}.new`, text, mode);
    return { outcome: 'kept', path: `${path}.new` };
  }
  await atomicWrite(path, text, mode);
  return { outcome: existing === null ? 'created' : 'replaced', path };
}

async function atomicWrite(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.chmod(mode);
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** Reads a one-line secret we wrote before, or creates it (0600) once: never overwritten. */
async function secretOnce(path: string, make: () => string): Promise<{ value: string; created: boolean }> {
  try {
    return { value: (await readFile(path, 'utf8')).trim(), created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const value = make();
  const fh = await open(path, 'wx', 0o600);
  try {
    await fh.chmod(0o600);
    await fh.writeFile(`${value}\n`, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { value, created: true };
}

function idOf(user: string, flag: '-u' | '-g'): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile('id', [flag, user], (err, stdout) => {
      const v = Number(stdout.trim());
      if (err || !Number.isInteger(v)) reject(new MavmqError(ErrorCodes.USAGE, `--owner ${user}: no such user (create it first, e.g. with scripts/install.sh)`));
      else resolve(v);
    });
  });
}

/** Running as root with a `mavmq` user present: files go to that user, or the service could not read them. */
async function defaultOwner(): Promise<string | undefined> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  return idOf('mavmq', '-u').then(() => 'mavmq', () => undefined);
}

async function ownerIds(spec: string | undefined): Promise<{ uid: number; gid: number } | null> {
  if (spec === undefined) return null;
  const [user, group] = spec.split(':');
  if (!user) throw new MavmqError(ErrorCodes.USAGE, '--owner USER[:GROUP]');
  return { uid: await idOf(user, '-u'), gid: group ? await idOf(group, '-g').catch(() => idOf(user, '-g')) : await idOf(user, '-g') };
}

export const provisionCommand: Command = {
  name: 'provision',
  summary: 'set up one vehicle: air config, vehicle key (0600, kept on re-runs) and the gateway/broker lines for it',
  usage: '--vehicle ID --broker URL [--ca FILE --cert FILE --key FILE] [--out DIR] [--link URL] [--gcs URL] [--owner USER] [--force]',
  options: {
    vehicle: { type: 'string', help: 'vehicle id (letters, digits, _ and -): MQTT topic level, TLS CN, broker user' },
    broker: { type: 'string', help: 'MQTT broker URL, e.g. mqtts://broker.example:8883' },
    ca: { type: 'string', help: 'CA certificate the broker\'s certificate is checked against' },
    cert: { type: 'string', help: 'client certificate (CN = vehicle id); without it a broker password is generated' },
    key: { type: 'string', help: 'client certificate\'s private key (TLS; NOT the vehicle PSK, which provision makes)' },
    out: { type: 'string', help: 'directory for air.yaml, keys/ and ground/ (default /etc/mavmq)' },
    link: { type: 'string', help: 'autopilot URL (default serial:///dev/autopilot?baud=921600)' },
    gcs: { type: 'string', help: 'GCS endpoint for the gateway\'s fleet entry (default udp://127.0.0.1:14550)' },
    'key-path': { type: 'string', help: 'where the gateway keeps this vehicle\'s key (default /etc/mavmq/keys/ID.key)' },
    owner: { type: 'string', help: 'chown what is written to USER[:GROUP], e.g. mavmq (needs root)' },
    force: { type: 'boolean', help: 'replace config files you edited (keys and passwords are never replaced)' },
  },
  examples: [
    'sudo mavmq provision --vehicle drone-1 --broker mqtts://broker.example:8883 --owner mavmq',
    'mavmq provision --vehicle drone-1 --broker mqtts://broker.example:8883 --ca ca.crt --cert drone-1.crt --key drone-1.pem --out ./drone-1',
    'mavmq provision --vehicle bench --broker mqtt://10.0.0.5:1883 --link tcp://127.0.0.1:5760 --out /tmp/bench',
    'Writes OUT/air.yaml, OUT/keys/ID.key, OUT/ground/ID.fleet.yaml, OUT/ground/ID.mosquitto-acl [, OUT/ground/ID.mosquitto-passwd]. Safe to re-run.',
  ],
  run: async (args, io) => {
    const vehicle = vehicleIdArg(args);
    const broker = str(args, 'broker');
    if (broker === undefined) throw new MavmqError(ErrorCodes.USAGE, 'give --broker URL (e.g. mqtts://broker.example:8883)');
    const out = resolve(str(args, 'out') ?? '/etc/mavmq');
    const force = args.values['force'] === true;
    const ownerSpec = str(args, 'owner') ?? (await defaultOwner());
    const owner = await ownerIds(ownerSpec);
    const ca = str(args, 'ca');
    const cert = str(args, 'cert');
    const tlsKey = str(args, 'key');
    if ((cert === undefined) !== (tlsKey === undefined)) throw new MavmqError(ErrorCodes.USAGE, '--cert and --key go together (the client certificate and its private key)');
    for (const [flag, f] of [['--ca', ca], ['--cert', cert], ['--key', tlsKey]] as const) {
      if (f !== undefined) await stat(f).catch(() => io.err(`warning: ${flag} ${f} does not exist here (fine if it will exist on the vehicle)`));
    }
    const link = str(args, 'link') ?? 'serial:///dev/autopilot?baud=921600';
    const gcs = str(args, 'gcs') ?? 'udp://127.0.0.1:14550';
    const keysDir = join(out, 'keys');
    const groundDir = join(out, 'ground');
    const keyPath = join(keysDir, `${vehicle}.key`);
    const keyPathGround = str(args, 'key-path') ?? `/etc/mavmq/keys/${vehicle}.key`;
    const tls = { ...(ca !== undefined ? { caFile: resolve(ca) } : {}), ...(cert !== undefined ? { certFile: resolve(cert) } : {}), ...(tlsKey !== undefined ? { tlsKeyFile: resolve(tlsKey) } : {}) };
    // Validate before writing anything: what provision writes must pass `mavmq config check`.
    const draft: ProvisionInput = { vehicle, broker, out, link, gcs, keyPathAir: keyPath, keyPathGround, ...tls, ...(cert === undefined ? { password: 'placeholder' } : {}) };
    validateAirConfig(airConfigText(draft));
    validateFleetEntry(fleetEntryText(draft), broker);

    await mkdir(out, { recursive: true, mode: 0o755 });
    await mkdir(keysDir, { recursive: true, mode: 0o700 });
    await chmod(keysDir, 0o700);
    await mkdir(groundDir, { recursive: true, mode: 0o700 });
    const written: string[] = [];
    const chownIfAsked = async (p: string): Promise<void> => {
      if (owner) await chown(p, owner.uid, owner.gid);
    };

    // The vehicle key: made once, never replaced (a new key would cut the vehicle off the gateway).
    let fingerprint: string;
    try {
      fingerprint = pskFingerprint(await readKeyFile(keyPath));
      written.push(`kept      ${keyPath} (existing key, fingerprint ${fingerprint})`);
    } catch (err) {
      if (!(err instanceof MavmqError && err.code === ErrorCodes.KEY_FILE && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT')) throw err;
      const key = generateKey();
      await writeKeyFile(keyPath, key);
      fingerprint = pskFingerprint(key);
      written.push(`created   ${keyPath} (mode 0600, fingerprint ${fingerprint})`);
    }
    await chownIfAsked(keysDir);
    await chownIfAsked(keyPath);

    let password: string | undefined;
    const passwdLines: string[] = [];
    if (cert === undefined) {
      const pw = await secretOnce(join(keysDir, `${vehicle}.mqtt-password`), () => randomBytes(24).toString('base64url'));
      password = pw.value;
      await chownIfAsked(join(keysDir, `${vehicle}.mqtt-password`));
      written.push(`${pw.created ? 'created' : 'kept   '}   ${join(keysDir, `${vehicle}.mqtt-password`)} (broker password, mode 0600)`);
      const line = await secretOnce(join(groundDir, `${vehicle}.mosquitto-passwd`), () => mosquittoPasswdLine(vehicle, pw.value));
      written.push(`${line.created ? 'created' : 'kept   '}   ${join(groundDir, `${vehicle}.mosquitto-passwd`)} (append to the broker's password_file)`);
      passwdLines.push(line.value);
    }

    const input: ProvisionInput = { ...draft, ...(password !== undefined ? { password } : {}) };
    const airText = airConfigText(input);
    const fleetText = fleetEntryText(input);

    // air.yaml holds the broker password when there is one: 0600 then, else 0640.
    const airPath = join(out, 'air.yaml');
    const air = await writeIdempotent(airPath, airText, password !== undefined ? 0o600 : 0o640, force, await shippedExamples('air.example.yaml'));
    await chownIfAsked(air.path);
    written.push(describe(air, 'air config'));
    await checkConfigFile(air.path, {});
    const fleet = await writeIdempotent(join(groundDir, `${vehicle}.fleet.yaml`), fleetText, 0o644, force);
    written.push(describe(fleet, 'for the gateway\'s ground.yaml fleet list'));
    const acl = await writeIdempotent(join(groundDir, `${vehicle}.mosquitto-acl`), aclLinesText(vehicle), 0o644, force);
    written.push(describe(acl, 'broker ACL lines (optional with the pattern ACL)'));

    io.out([
      `mavmq provision ${vehicle}${ownerSpec !== undefined ? ` (files owned by ${ownerSpec})` : ''}:`,
      ...written.map((w) => `  ${w}`),
      '',
      'Next:',
      `  on this vehicle:  mavmq config check ${airPath} && sudo systemctl restart mavmq-air`,
      `  on the gateway:   copy ${keyPath} to ${input.keyPathGround} (0600, owner mavmq), append ${fleet.path}`,
      '                    under fleet: in /etc/mavmq/ground.yaml, then sudo systemctl restart mavmq-ground',
      ...(passwdLines.length > 0 ? [`  on the broker:    append ${join(groundDir, `${vehicle}.mosquitto-passwd`)} to the password_file, then reload mosquitto`] : [`  on the broker:    nothing with the pattern ACL; the client certificate's CN must be "${vehicle}"`]),
      `  compare the key fingerprint on both sides: ${fingerprint}`,
    ].join('\n'));
    return ExitCodes.OK;
  },
};

/** The example configs as shipped: config/ in a checkout, share/config/ in an install (/opt/mavmq). */
async function shippedExamples(name: string): Promise<string[]> {
  const candidates = [new URL(`../../config/${name}`, import.meta.url), new URL(`../../share/config/${name}`, import.meta.url)];
  const texts = await Promise.all(candidates.map((u) => readFile(u, 'utf8').catch(() => null)));
  return texts.filter((t): t is string => t !== null);
}

function describe(r: { outcome: WriteOutcome; path: string }, what: string): string {
  switch (r.outcome) {
    case 'created':
      return `created   ${r.path} (${what})`;
    case 'unchanged':
      return `unchanged ${r.path} (${what})`;
    case 'replaced':
      return `replaced  ${r.path} (${what}, --force)`;
    case 'replaced-default':
      return `replaced  ${r.path} (${what}; it was the unedited example from the install)`;
    case 'kept':
      return `kept      ${r.path.replace(/\.new$/, '')} (you edited it); the new default is in ${r.path}`;
  }
}

/** The generated air config must validate (same check as `mavmq config check`). */
export function validateAirConfig(text: string): void {
  const src = parseYamlSource(text, 'air.yaml');
  const r = airConfigSchema.safeParse(src.raw);
  if (!r.success) throw new MavmqError(ErrorCodes.CONFIG_INVALID, `the generated air config does not validate: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
}

/** The fleet snippet, put under a minimal ground config, must validate. */
export function validateFleetEntry(fleetText: string, broker: string): void {
  const doc = parseDocument(`role: ground\nmqtt:\n  url: ${q(broker)}\nfleet:\n${fleetText}`);
  const r = groundConfigSchema.safeParse(doc.toJS());
  if (doc.errors.length > 0 || !r.success) {
    throw new MavmqError(ErrorCodes.CONFIG_INVALID, `the generated fleet entry does not validate: ${doc.errors[0]?.message ?? r.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') ?? ''}`);
  }
}

// =============================================================================================
// mavmq keys rotate

export const keysRotateCommand: Command = {
  name: 'keys rotate',
  summary: 'replace a vehicle key; the gateway accepts the old one too until the overlap ends (ID.key.prev)',
  usage: '--vehicle ID --dir DIR [--overlap-hours N] [--force]',
  options: {
    vehicle: { type: 'string', help: 'vehicle id: rotates DIR/ID.key' },
    dir: { type: 'string', help: 'the gateway\'s key directory holding ID.key (e.g. /etc/mavmq/keys)' },
    'overlap-hours': { type: 'string', help: 'how long the gateway still accepts the old key (default 72)' },
    force: { type: 'boolean', help: 'rotate although an earlier rotation\'s overlap is still running (its old key stops working)' },
  },
  examples: [
    'sudo mavmq keys rotate --vehicle drone-1 --dir /etc/mavmq/keys --overlap-hours 48',
    'then: sudo systemctl restart mavmq-ground; copy /etc/mavmq/keys/drone-1.key to the vehicle; restart mavmq-air there',
  ],
  run: async (args, io) => {
    const vehicle = vehicleIdArg(args);
    const dir = str(args, 'dir');
    if (dir === undefined) throw new MavmqError(ErrorCodes.USAGE, 'give --dir DIR (the directory holding ID.key)');
    const hoursText = str(args, 'overlap-hours') ?? '72';
    const hours = Number(hoursText);
    if (!Number.isFinite(hours) || hours < 0 || hours > 24 * 365) throw new MavmqError(ErrorCodes.USAGE, `--overlap-hours must be a number of hours from 0 to 8760, got "${hoursText}"`);
    const keyPath = join(dir, `${vehicle}.key`);
    // Keep the owner: rotating as root must leave files the mavmq user can still read.
    const before = await stat(keyPath).catch(() => null);
    if (before === null) throw new MavmqError(ErrorCodes.KEY_FILE, `${keyPath}: no key to rotate`, { problems: [{ path: keyPath, message: 'no such file', hint: `make one with: mavmq keys new --vehicle ${vehicle} --out ${dir}` }] });
    const r = await rotateKeyFile(keyPath, { overlapMs: hours * 3_600_000, force: args.values['force'] === true });
    if (typeof process.getuid === 'function' && process.getuid() === 0) {
      await chown(r.keyPath, before.uid, before.gid);
      await chown(r.previousPath, before.uid, before.gid);
    }
    io.out([
      `rotated ${keyPath}`,
      `  new key       fingerprint ${pskFingerprint(r.current)} (mode 0600)`,
      `  previous key  fingerprint ${pskFingerprint(r.previous.key)} -> ${r.previousPath}, accepted by the gateway until ${new Date(r.previous.expiresAtMs).toISOString()}`,
      '',
      'Next:',
      '  1. gateway: sudo systemctl restart mavmq-ground     (loads both keys; vehicles reconnect by themselves)',
      `  2. vehicle: copy ${keyPath} to /etc/mavmq/keys/${vehicle}.key (0600, owner mavmq), then sudo systemctl restart mavmq-air`,
      `  3. check:   mavmq keys fingerprint ${keyPath} gives the same new fingerprint on both sides;`,
      `             mavmq status --http 127.0.0.1:9181 shows a session for ${vehicle} again`,
      `  After ${new Date(r.previous.expiresAtMs).toISOString()} the old key is refused; ${dirname(r.previousPath)} keeps the .prev file until the next rotation.`,
    ].join('\n'));
    return ExitCodes.OK;
  },
};

// =============================================================================================
// mavmq keys fingerprint

export const keysFingerprintCommand: Command = {
  name: 'keys fingerprint',
  summary: 'print the public fingerprint of key files (and of a rotation\'s .prev key) to compare vehicle and gateway',
  usage: 'KEYFILE [KEYFILE ...]',
  options: {},
  examples: [
    'mavmq keys fingerprint /etc/mavmq/keys/drone-1.key          # on the vehicle and on the gateway: must match',
    'sudo -u mavmq mavmq keys fingerprint /etc/mavmq/keys/*.key  # also checks the mavmq user can read them',
  ],
  run: async (args, io) => {
    if (args.positionals.length === 0) throw new MavmqError(ErrorCodes.USAGE, 'give one or more key files');
    for (const file of args.positionals) {
      const key = await readKeyFile(file);
      io.out(`${file}: fingerprint ${pskFingerprint(key)}`);
      const prev = await readPreviousKeyFile(file);
      if (prev) {
        const expired = prev.expiresAtMs <= Date.now();
        io.out(`${file}.prev: fingerprint ${pskFingerprint(prev.key)}, ${expired ? 'expired' : 'accepted by the gateway until'} ${new Date(prev.expiresAtMs).toISOString()}`);
      }
    }
    return ExitCodes.OK;
  },
};

/** Everything this module adds; commands.ts spreads it into COMMANDS. */
export const OPS_COMMANDS: Command[] = [statusCommand, provisionCommand, keysRotateCommand, keysFingerprintCommand];
