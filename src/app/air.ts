import type { AirConfig } from '../config/schema.js';
import { parseEndpointUrl } from '../link/endpoint-url.js';
import type { TransportFactory } from '../link/transport.js';
import { SerialTransport } from '../link/serial.js';
import { AutoBaud } from '../link/auto-baud.js';
import { ardupilotmegaDialect, type Dialect } from '../mavlink/dialect.js';
import { Codec } from '../mavlink/codec.js';
import { Router, type RouterStats } from '../mavlink/router.js';
import { TlogWriter, type TlogStats } from '../mavlink/tlog.js';
import type { Frame } from '../mavlink/framer.js';
import type { Logger } from '../obs/logger.js';
import { StatsReporter } from '../obs/stats.js';
import type { MetricsExtras } from '../obs/metrics.js';
import { LinkBinding, type LinkBindingStats } from './link-binding.js';
import { Companion, type AutopilotState } from './companion.js';
import { AirRelay, type AirRelayStats } from './relay-air.js';
import { readKeyFile } from '../crypto/keys.js';
import { AirSession } from '../crypto/session.js';
import type { MqttLink, MqttLinkStats } from '../uplink/mqtt-client.js';
import { Topics } from '../uplink/topics.js';
import { createLinkBudget } from '../uplink/budget.js';
import type { Spool, SpoolStats } from '../uplink/spool.js';
import { CommandResponder } from '../mavlink/responder.js';
import { AuditLog, loadPolicy, PolicyEngine, type PolicyStats } from '../policy/index.js';

/** Feature flag for tests: frames from the ground pass the command policy (test/policy/relay-policy.test.ts). */
export const POLICY_WIRED = true;

/**
 * Air side wiring only: autopilot link + local endpoints -> framer -> router (-> recorder), plus
 * the companion identity. With an MQTT section the relay port joins the router (see uplink/).
 */
export interface AirDeps {
  logger: Logger;
  createTransport: TransportFactory;
  dialect?: Dialect;
}

export interface AirSnapshot {
  autopilot: LinkBindingStats;
  endpoints: LinkBindingStats[];
  router: RouterStats;
  tlog: TlogStats | null;
  autopilotState: AutopilotState | null;
  relay: AirRelayStats | null;
  mqtt: MqttLinkStats | null;
  policy: PolicyStats | null;
  spool: SpoolStats | null;
}

export class AirApp {
  private router: Router | null = null;
  private autopilotLink: LinkBinding | null = null;
  private endpoints: LinkBinding[] = [];
  private tlog: TlogWriter | null = null;
  private companion: Companion | null = null;
  private relay: AirRelay | null = null;
  private mqtt: MqttLink | null = null;
  private spool: Spool | null = null;
  private policy: PolicyEngine | null = null;
  private audit: AuditLog | null = null;
  private reporter: StatsReporter<AirSnapshot> | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private readonly controller = new AbortController();

  constructor(private readonly config: AirConfig, private readonly deps: AirDeps) {}

  async start(signal: AbortSignal): Promise<void> {
    const { config, deps } = this;
    const log = deps.logger.child({ module: 'air' });
    const dialect = deps.dialect ?? ardupilotmegaDialect();
    const codec = new Codec(dialect);
    const router = new Router(dialect);
    this.router = router;
    signal.addEventListener('abort', () => this.controller.abort(), { once: true });
    const inner = this.controller.signal;

    if (config.tlog) {
      this.tlog = new TlogWriter({ ...config.tlog, logger: deps.logger.child({ module: 'tlog' }) });
      await this.tlog.start(inner);
    }
    const tlog = this.tlog;
    const onFrame = tlog ? (f: Frame) => tlog.write(f.bytes) : undefined;
    if (config.mqtt && config.policy.enabled) await this.startPolicy(codec);
    else if (config.mqtt) log.warn('command policy DISABLED (policy.enabled: false): frames from the ground reach the autopilot unchecked');
    const policy = this.policy;
    // The autopilot's own telemetry feeds the policy's vehicle state (armed, in air, mode, params).
    const onAutopilotFrame = policy || onFrame ? (f: Frame) => {
      policy?.observe(f);
      onFrame?.(f);
    } : undefined;

    this.companion = new Companion({
      router, codec, logger: deps.logger.child({ module: 'companion' }),
      heartbeat: config.companion.heartbeat, compid: config.companion.compid,
      heartbeatIntervalMs: config.companion.heartbeatIntervalMs, messageRatesHz: config.companion.messageRatesHz,
      ...(onFrame ? { onSend: onFrame } : {}),
      ...(config.companion.sysid !== undefined ? { sysid: config.companion.sysid } : {}),
    });
    this.companion.start(inner);

    const apSpec = parseEndpointUrl(config.link.url);
    const apTransport = deps.createTransport(apSpec, { logger: deps.logger });
    this.autopilotLink = new LinkBinding({
      name: 'autopilot', router, dialect, transport: apTransport,
      logger: deps.logger.child({ module: 'link', url: apSpec.url }), ...(onAutopilotFrame ? { onFrame: onAutopilotFrame } : {}),
    });
    this.endpoints = config.endpoints.map((ep, i) => {
      const spec = parseEndpointUrl(ep.url);
      return new LinkBinding({
        name: ep.name ?? `endpoint${i}`, router, dialect, transport: deps.createTransport(spec, { logger: deps.logger }),
        logger: deps.logger.child({ module: 'link', url: spec.url }),
        ...(ep.filter ? { filter: ep.filter } : {}), ...(onFrame ? { onFrame } : {}),
      });
    });
    await Promise.all([this.autopilotLink.start(inner), ...this.endpoints.map((e) => e.start(inner))]);
    if (apSpec.kind === 'serial' && apSpec.autoBaud.length > 0 && apTransport instanceof SerialTransport) {
      const link = this.autopilotLink;
      new AutoBaud({ port: apTransport, rates: apSpec.autoBaud, validFrames: () => link.stats().frames, logger: log }).start(inner);
    }
    if (config.mqtt) await this.startRelay(router, codec, inner);

    this.tickTimer = setInterval(() => router.tick(), 1000);
    this.tickTimer.unref();
    this.reporter = new StatsReporter({
      intervalMs: config.stats.intervalMs, logger: deps.logger.child({ module: 'stats' }),
      collect: () => this.snapshot(),
      summarize: (s) => ({
        autopilot: { connected: s.autopilot.connected, frames: s.autopilot.frames, crcErrors: s.autopilot.crcErrors, lossPercent: s.autopilot.lossPercent, resyncs: s.autopilot.resyncs },
        endpoints: s.endpoints.map((e) => ({ name: e.name, peers: e.peers, frames: e.frames, dropsOut: e.dropsOut })),
        routed: s.router.routed, tlogDropped: s.tlog?.framesDropped ?? 0,
        ...(s.relay ? { relay: { session: s.relay.sessionId, framesOut: s.relay.framesOut, framesIn: s.relay.framesIn, rejected: s.relay.rejected }, broker: s.mqtt?.connected ?? false } : {}),
      }),
    });
    this.reporter.start(inner);
    log.info({ link: apSpec.url, endpoints: config.endpoints.map((e) => e.url), tlog: config.tlog?.dir ?? null }, 'air side started');
  }

  /** The command policy: loaded (and its audit log opened) before any frame from the ground can arrive. */
  private async startPolicy(codec: Codec): Promise<void> {
    const { config, deps } = this;
    const log = deps.logger.child({ module: 'policy' });
    const policy = await loadPolicy(config.policy.file);
    if (config.policy.audit) {
      const a = config.policy.audit;
      this.audit = new AuditLog({
        file: a.file, maxBytes: a.maxBytes, fsyncIntervalMs: a.fsyncIntervalMs, includeRoutine: a.includeRoutine,
        onError: (err) => log.warn({ err: err.message }, 'policy audit log write failed'),
      });
      await this.audit.start();
    }
    const audit = this.audit;
    this.policy = new PolicyEngine({
      policy, codec, companionCompid: config.companion.compid,
      ...(config.policy.dryRun !== undefined ? { dryRun: config.policy.dryRun } : {}),
      sessionId: () => this.relay?.stats().sessionId ?? null,
      onVerdict: (v) => {
        if (v.verdict !== 'allow') log.warn({ rule: v.rule, reason: v.reason, frame: v.frame, dryRun: v.dryRun }, v.dryRun ? 'policy would refuse (dry run)' : 'policy refused');
        else if (v.rewritten) log.info({ rule: v.rule, frame: v.frame }, 'policy rewrote');
        else if (!v.routine) log.debug({ rule: v.rule, frame: v.frame }, 'policy allowed');
        audit?.write(v);
      },
    });
    log.info({ file: config.policy.file ?? '(built-in default)', rules: policy.rules.length, dryRun: this.policy.dryRun, audit: config.policy.audit?.file ?? null }, 'command policy loaded');
  }

  /** The encrypted MQTT relay: the key is read (and its permissions checked) before connecting. */
  private async startRelay(router: Router, codec: Codec, signal: AbortSignal): Promise<void> {
    const { config, deps } = this;
    const mqttConfig = config.mqtt;
    if (!mqttConfig || !config.vehicle || !config.keyFile) return; // the schema guarantees all three together
    const vehicleId = config.vehicle.id;
    const psk = await readKeyFile(config.keyFile);
    const topics = new Topics(mqttConfig.topicPrefix);
    // Loaded only when a broker is configured: a pure router should not carry mqtt.js in memory.
    const { MqttLink } = await import('../uplink/mqtt-client.js');
    this.mqtt = new MqttLink({
      config: mqttConfig, clientId: mqttConfig.clientId ?? `mavmq-air-${vehicleId}`, logger: deps.logger.child({ module: 'mqtt' }),
      statusTopic: topics.up(vehicleId, 'status'), subscriptions: topics.airSubscriptions(vehicleId),
    });
    const log = deps.logger.child({ module: 'relay' });
    const budget = createLinkBudget(config.budget);
    for (const w of budget.stats().warnings) log.warn(w);
    if (config.spool) {
      const { Spool } = await import('../uplink/spool.js');
      this.spool = await Spool.open({ ...config.spool, logger: deps.logger.child({ module: 'spool' }) });
    }
    this.relay = new AirRelay({
      router, mqtt: this.mqtt, topics, vehicleId, session: new AirSession({ psk, vehicleId }), logger: deps.logger,
      batching: config.batching, budget, commandTtlMs: config.commandTtlMs, responder: new CommandResponder(codec),
      ...(this.spool ? { spool: this.spool } : {}),
      ...(this.policy ? { admit: (f: Frame) => (this.policy as PolicyEngine).check(f) } : {}),
      health: () => {
        const ap = this.autopilotLink?.stats();
        return { autopilotConnected: ap?.connected ?? false, autopilotFrames: ap?.frames ?? 0, lossPercent: ap?.lossPercent ?? 0, uptimeS: Math.round(process.uptime()) };
      },
    });
    this.relay.start(signal);
    await this.mqtt.start(signal);
  }

  snapshot(): AirSnapshot {
    if (!this.router || !this.autopilotLink) throw new Error('AirApp not started');
    return {
      autopilot: this.autopilotLink.stats(),
      endpoints: this.endpoints.map((e) => e.stats()),
      router: this.router.stats(),
      tlog: this.tlog?.stats() ?? null,
      autopilotState: this.companion?.state() ?? null,
      relay: this.relay?.stats() ?? null,
      mqtt: this.mqtt?.stats() ?? null,
      policy: this.policy?.stats() ?? null,
      spool: this.spool?.stats() ?? null,
    };
  }

  /** Make what the recorder holds durable now (tests, and before a planned power-off). */
  async flushRecorders(): Promise<void> {
    await this.tlog?.flush();
    await this.spool?.flush();
  }

  /** Figures for /metrics and `mavmq status` beyond the snapshot (policy verdicts, spool). */
  extras(): MetricsExtras {
    const p = this.policy?.stats();
    const sp = this.spool?.stats();
    return {
      policy: p ? { allow: p.allow, deny: p.deny, confirm: p.confirm, rewritten: p.rewritten } : null,
      spool: sp ? { bytes: sp.bytes, messages: sp.records } : null,
    };
  }

  async stop(): Promise<void> {
    this.controller.abort();
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.reporter?.stop();
    this.companion?.stop();
    this.relay?.stop();
    await this.mqtt?.stop();
    await this.spool?.close();
    await Promise.all([this.autopilotLink?.stop(), ...this.endpoints.map((e) => e.stop())]);
    await this.tlog?.stop();
    await this.audit?.stop();
  }
}
