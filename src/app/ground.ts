import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { GroundConfig } from '../config/schema.js';
import { KeyRing } from '../crypto/keys.js';
import { GroundSessionTable } from '../crypto/session.js';
import { parseEndpointUrl } from '../link/endpoint-url.js';
import type { TransportFactory } from '../link/transport.js';
import { ardupilotmegaDialect } from '../mavlink/dialect.js';
import { Router, type RouterStats } from '../mavlink/router.js';
import { Codec } from '../mavlink/codec.js';
import { CommandResponder } from '../mavlink/responder.js';
import { AuditLog, loadPolicy, PolicyEngine } from '../policy/index.js';
import { TlogWriter, type TlogStats } from '../mavlink/tlog.js';
import type { Logger } from '../obs/logger.js';
import { StatsReporter } from '../obs/stats.js';
import { MqttLink, type MqttLinkStats } from '../uplink/mqtt-client.js';
import { Topics } from '../uplink/topics.js';
import { LinkBinding, type LinkBindingStats } from './link-binding.js';
import { GroundVehicle, type GroundVehicleStats } from './relay-ground.js';

/**
 * Ground gateway wiring only: one MQTT connection for the fleet; per vehicle a session, a router,
 * its GCS endpoints and an optional recorder. Vehicles never share a router, so one vehicle's
 * ground stations never see another's traffic.
 */
export interface GroundDeps {
  logger: Logger;
  createTransport: TransportFactory;
  /** Gateway instance id, for its MQTT client id and status topic. */
  gatewayId?: string;
}

export interface GroundVehicleSnapshot {
  relay: GroundVehicleStats;
  gcs: LinkBindingStats[];
  router: RouterStats;
  tlog: TlogStats | null;
}

export interface GroundSnapshot {
  mqtt: MqttLinkStats;
  vehicles: GroundVehicleSnapshot[];
}

interface VehicleRuntime {
  relay: GroundVehicle;
  router: Router;
  gcs: LinkBinding[];
  tlog: TlogWriter | null;
  historyTlog: TlogWriter | null;
}

export class GroundGateway {
  private mqtt: MqttLink | null = null;
  private audit: AuditLog | null = null;
  private readonly vehicles = new Map<string, VehicleRuntime>();
  private reporter: StatsReporter<GroundSnapshot> | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private readonly controller = new AbortController();

  constructor(private readonly config: GroundConfig, private readonly deps: GroundDeps) {}

  async start(signal: AbortSignal): Promise<void> {
    const { config, deps } = this;
    signal.addEventListener('abort', () => this.controller.abort(), { once: true });
    const inner = this.controller.signal;
    const log = deps.logger.child({ module: 'ground' });
    // Keys are read (and their permissions checked) before anything connects.
    // A ring holds the current key and, during a rotation's overlap, the previous one.
    const rings = new Map<string, KeyRing>();
    for (const v of config.fleet) {
      const ring = await KeyRing.load(v.keyFile);
      rings.set(v.id, ring);
      if (ring.inOverlap) log.info({ vehicle: v.id }, 'key rotation in progress: the previous key is accepted until it expires');
    }
    const sessions = new GroundSessionTable({ lookupPsk: (id) => rings.get(id)?.candidates() });
    const topics = new Topics(config.mqtt.topicPrefix);
    const gatewayId = deps.gatewayId ?? `${hostname()}-${randomBytes(3).toString('hex')}`;
    const mqtt = new MqttLink({
      config: config.mqtt, clientId: config.mqtt.clientId ?? `mavmq-ground-${gatewayId}`, logger: deps.logger.child({ module: 'mqtt' }),
      statusTopic: topics.gatewayStatus(gatewayId), subscriptions: config.fleet.flatMap((v) => topics.groundSubscriptions(v.id)),
    });
    this.mqtt = mqtt;
    const dialect = ardupilotmegaDialect();
    const codec = new Codec(dialect);
    const responder = new CommandResponder(codec);
    const policyFile = config.policy.enabled ? await loadPolicy(config.policy.file) : null;
    if (config.policy.audit && policyFile) {
      const a = config.policy.audit;
      this.audit = new AuditLog({ file: a.file, maxBytes: a.maxBytes, fsyncIntervalMs: a.fsyncIntervalMs, includeRoutine: a.includeRoutine, onError: (err) => log.warn({ err: err.message }, 'policy audit log write failed') });
      await this.audit.start();
    }

    for (const v of config.fleet) {
      const router = new Router(dialect);
      let tlog: TlogWriter | null = null;
      if (v.tlog) {
        tlog = new TlogWriter({ ...v.tlog, prefix: `${v.id}-`, logger: deps.logger.child({ module: 'tlog', vehicle: v.id }) });
        await tlog.start(inner);
      }
      const recorder = tlog;
      // Spooled history lands in its own files: interleaving old timestamps into the live tlog
      // would make it run backwards for playback tools.
      let historyTlog: TlogWriter | null = null;
      let historyTsUs = 0n;
      if (v.tlog) {
        historyTlog = new TlogWriter({ ...v.tlog, prefix: `${v.id}-history-`, logger: deps.logger.child({ module: 'tlog', vehicle: v.id }), nowUs: () => historyTsUs });
        await historyTlog.start(inner);
      }
      const history = historyTlog;
      const audit = this.audit;
      const policy = policyFile === null ? undefined : new PolicyEngine({
        policy: policyFile, codec, ...(config.policy.dryRun !== undefined ? { dryRun: config.policy.dryRun } : {}),
        sessionId: () => sessions.sessionId(v.id),
        onVerdict: (verdict) => {
          if (verdict.verdict !== 'allow') log.warn({ vehicle: v.id, rule: verdict.rule, reason: verdict.reason, dryRun: verdict.dryRun }, 'ground policy refused');
          audit?.write(verdict);
        },
      });
      const relay = new GroundVehicle({
        vehicleId: v.id, router, mqtt, topics, sessions, logger: deps.logger, responder, ...(policy ? { policy } : {}),
        ...(recorder ? { onFrame: (f) => recorder.write(f.bytes) } : {}),
        ...(history ? {
          recordHistory: async (frames) => {
            for (const f of frames) {
              historyTsUs = f.timestampUs;
              history.write(f.frame);
            }
            await history.flush();
          },
        } : {}),
      });
      relay.start(inner);
      const gcs = v.gcs.map((ep, i) => {
        const spec = parseEndpointUrl(ep.url);
        return new LinkBinding({
          name: ep.name ?? `gcs${i}`, router, dialect, transport: deps.createTransport(spec, { logger: deps.logger }),
          logger: deps.logger.child({ module: 'link', vehicle: v.id, url: spec.url }), ...(ep.filter ? { filter: ep.filter } : {}),
          ...(recorder ? { onFrame: (f) => recorder.write(f.bytes) } : {}),
        });
      });
      this.vehicles.set(v.id, { relay, router, gcs, tlog, historyTlog });
      await Promise.all(gcs.map((g) => g.start(inner)));
    }

    mqtt.on('message', (topic, payload) => {
      const t = topics.parse(topic);
      if (t === null || t.direction !== 'up') return;
      this.vehicles.get(t.vehicleId)?.relay.onUp(t.kind, topic, payload);
    });
    await mqtt.start(inner);

    this.tickTimer = setInterval(() => {
      for (const v of this.vehicles.values()) v.router.tick();
    }, 1000);
    this.tickTimer.unref();
    this.reporter = new StatsReporter({
      intervalMs: config.stats.intervalMs, logger: deps.logger.child({ module: 'stats' }), collect: () => this.snapshot(),
      summarize: (s) => ({
        broker: s.mqtt.connected,
        vehicles: s.vehicles.map((v) => ({
          id: v.relay.vehicleId, online: v.relay.online, rttMs: v.relay.rttMs, lossPercent: v.relay.lossPercent,
          framesIn: v.relay.framesIn, framesOut: v.relay.framesOut, rejected: v.relay.rejected, gcsPeers: v.gcs.reduce((n, g) => n + g.peers, 0),
        })),
      }),
    });
    this.reporter.start(inner);
    log.info({ broker: config.mqtt.url, vehicles: config.fleet.map((v) => ({ id: v.id, gcs: v.gcs.map((g) => g.url) })) }, 'ground gateway started');
  }

  /** Make what the recorders hold durable now (tests, and before a planned shutdown). */
  async flushRecorders(): Promise<void> {
    for (const v of this.vehicles.values()) {
      await v.tlog?.flush();
      await v.historyTlog?.flush();
    }
  }

  snapshot(): GroundSnapshot {
    if (!this.mqtt) throw new Error('GroundGateway not started');
    return {
      mqtt: this.mqtt.stats(),
      vehicles: [...this.vehicles.values()].map((v) => ({
        relay: v.relay.stats(), gcs: v.gcs.map((g) => g.stats()), router: v.router.stats(), tlog: v.tlog?.stats() ?? null,
      })),
    };
  }

  async stop(): Promise<void> {
    this.controller.abort();
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.reporter?.stop();
    for (const v of this.vehicles.values()) v.relay.stop();
    await Promise.all([...this.vehicles.values()].flatMap((v) => v.gcs.map((g) => g.stop())));
    await this.mqtt?.stop();
    for (const v of this.vehicles.values()) {
      await v.tlog?.stop();
      await v.historyTlog?.stop();
    }
    await this.audit?.stop();
  }
}
