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
}

export class AirApp {
  private router: Router | null = null;
  private autopilotLink: LinkBinding | null = null;
  private endpoints: LinkBinding[] = [];
  private tlog: TlogWriter | null = null;
  private companion: Companion | null = null;
  private relay: AirRelay | null = null;
  private mqtt: MqttLink | null = null;
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

    this.companion = new Companion({
      router, codec, logger: deps.logger.child({ module: 'companion' }),
      heartbeat: config.companion.heartbeat, compid: config.companion.compid,
      heartbeatIntervalMs: config.companion.heartbeatIntervalMs, messageRatesHz: config.companion.messageRatesHz,
      ...(config.companion.sysid !== undefined ? { sysid: config.companion.sysid } : {}),
    });
    this.companion.start(inner);

    const apSpec = parseEndpointUrl(config.link.url);
    const apTransport = deps.createTransport(apSpec, { logger: deps.logger });
    this.autopilotLink = new LinkBinding({
      name: 'autopilot', router, dialect, transport: apTransport,
      logger: deps.logger.child({ module: 'link', url: apSpec.url }), ...(onFrame ? { onFrame } : {}),
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
    if (config.mqtt) await this.startRelay(router, inner);

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

  /** The encrypted MQTT relay: the key is read (and its permissions checked) before connecting. */
  private async startRelay(router: Router, signal: AbortSignal): Promise<void> {
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
    this.relay = new AirRelay({
      router, mqtt: this.mqtt, topics, vehicleId, session: new AirSession({ psk, vehicleId }), logger: deps.logger,
      batching: config.batching,
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
    };
  }

  /** Figures for /metrics and `mavmq status` beyond the snapshot (policy verdicts, spool). */
  extras(): MetricsExtras {
    return {};
  }

  async stop(): Promise<void> {
    this.controller.abort();
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.reporter?.stop();
    this.companion?.stop();
    this.relay?.stop();
    await this.mqtt?.stop();
    await Promise.all([this.autopilotLink?.stop(), ...this.endpoints.map((e) => e.stop())]);
    await this.tlog?.stop();
  }
}
