import type { MqttLinkStats } from '../uplink/mqtt-client.js';

/**
 * Prometheus metrics, computed from the daemon's snapshot at scrape time (collect callbacks): the
 * hot paths keep their plain counters and never touch prom-client. prom-client itself (~11 MB of
 * RSS) is imported only by createMetrics(), i.e. when the HTTP server starts; importing this module
 * costs nothing.
 *
 * One snapshot per scrape: render() takes it once and every metric's collect() reads that copy.
 * Names follow Prometheus conventions (`_total` counters, base units). The default Node.js process
 * metrics come with them: process_resident_memory_bytes, nodejs_eventloop_lag_seconds (and its
 * p50/p99), GC and heap.
 */
import type { Metric, Registry } from 'prom-client';
import type { AirSnapshot } from '../app/air.js';
import type { GroundSnapshot } from '../app/ground.js';
import type { LinkBindingStats } from '../app/link-binding.js';

export interface LinkSample {
  /** autopilot link, a local endpoint (air) or a GCS endpoint (ground). */
  role: 'autopilot' | 'endpoint' | 'gcs';
  name: string;
  /** Ground: the vehicle this GCS endpoint belongs to. */
  vehicle?: string;
  url: string;
  connected: boolean;
  peers: number;
  frames: number;
  bytesIn: number;
  bytesOut: number;
  crcErrors: number;
  /** Sequence-derived loss over the life of the link, 0..100. */
  lossPercent: number;
  /** Frames dropped on this link's bounded output queue (slow or absent peer). */
  queueDrops: number;
  reconnects: number;
  resyncs: number;
}

export interface SessionSample {
  vehicle: string;
  established: boolean;
  /** Ground: vehicle heard recently and not reported offline by the broker. */
  online?: boolean;
  /** Handshakes completed. */
  sessions: number;
  envelopesIn: number;
  envelopesOut: number;
  framesIn: number;
  framesOut: number;
  framesUnsentNoSession: number;
  /** Ground: envelope loss from counter gaps, 0..100. */
  lossPercent?: number;
  rttMs?: number | null;
  /** Rejected envelopes / handshake messages by reason (stable strings, docs/PROTOCOL.md §11). */
  rejected: Record<string, number>;
  /** Air: frames from the ground refused by the command policy. */
  framesRefused?: number;
}

/** The MQTT link's own counters (src/uplink/mqtt-client.ts), the ones exported as metrics. */
export type BrokerSample = Pick<MqttLinkStats, 'connected' | 'connects' | 'published' | 'publishErrors' | 'received' | 'outboxBytes' | 'outboxDropped' | 'qos0DroppedOffline'>;

export interface TlogSample {
  vehicle?: string;
  framesWritten: number;
  bytesWritten: number;
  framesDropped: number;
  writeErrors: number;
}

/** Optional inputs that other modules provide once they exist. */
export interface MetricsExtras {
  /** Command policy verdict -> count (e.g. { allow: 120, deny: 3 }). */
  policy?: Record<string, number> | null;
  /** Store-and-forward spool. */
  spool?: { bytes: number; messages?: number; dropped?: number } | null;
}

export interface MetricsSample extends MetricsExtras {
  role: 'air' | 'ground';
  links: LinkSample[];
  broker: BrokerSample | null;
  sessions: SessionSample[];
  tlogs: TlogSample[];
  router: { vehicle?: string; routed: number; noRoute: number; unknownTarget: number }[];
  /** Air: seconds since the last autopilot HEARTBEAT, null before the first. */
  heartbeatAgeS?: number | null;
}

function linkSample(role: LinkSample['role'], l: LinkBindingStats, vehicle?: string): LinkSample {
  return {
    role, name: l.name, url: l.url, connected: l.connected, peers: l.peers, frames: l.frames, bytesIn: l.bytes, bytesOut: l.bytesOut,
    crcErrors: l.crcErrors, lossPercent: l.lossPercent, queueDrops: l.dropsOut, reconnects: l.reconnects, resyncs: l.resyncs,
    ...(vehicle !== undefined ? { vehicle } : {}),
  };
}

const numbersOnly = (r: Partial<Record<string, number>>): Record<string, number> =>
  Object.fromEntries(Object.entries(r).filter((e): e is [string, number] => typeof e[1] === 'number'));

/** AirApp.snapshot() -> metrics input. `nowMs` is performance.now() (the heartbeat clock). */
export function sampleFromAir(s: AirSnapshot, extras: MetricsExtras = {}, nowMs: number = performance.now()): MetricsSample {
  return {
    role: 'air',
    links: [linkSample('autopilot', s.autopilot), ...s.endpoints.map((e) => linkSample('endpoint', e))],
    broker: s.mqtt,
    sessions: s.relay
      ? [{
          vehicle: 'self', established: s.relay.sessionId !== null, sessions: s.relay.sessions, envelopesIn: s.relay.envelopesIn, envelopesOut: s.relay.envelopesOut,
          framesIn: s.relay.framesIn, framesOut: s.relay.framesOut, framesUnsentNoSession: s.relay.framesUnsentNoSession,
          rejected: numbersOnly(s.relay.rejected), framesRefused: s.relay.framesRefused,
        }]
      : [],
    tlogs: s.tlog ? [s.tlog] : [],
    router: [{ routed: s.router.routed, noRoute: s.router.noRoute, unknownTarget: s.router.unknownTarget }],
    heartbeatAgeS: s.autopilotState ? Math.max(0, (nowMs - s.autopilotState.lastHeartbeatMs) / 1000) : null,
    ...extras,
  };
}

/** GroundGateway.snapshot() -> metrics input. */
export function sampleFromGround(s: GroundSnapshot, extras: MetricsExtras = {}): MetricsSample {
  return {
    role: 'ground',
    links: s.vehicles.flatMap((v) => v.gcs.map((g) => linkSample('gcs', g, v.relay.vehicleId))),
    broker: s.mqtt,
    sessions: s.vehicles.map((v) => ({
      vehicle: v.relay.vehicleId, established: v.relay.sessionId !== null, online: v.relay.online, sessions: v.relay.sessions,
      envelopesIn: v.relay.envelopesIn, envelopesOut: v.relay.envelopesOut, framesIn: v.relay.framesIn, framesOut: v.relay.framesOut,
      framesUnsentNoSession: v.relay.framesUnsentNoSession, lossPercent: v.relay.lossPercent, rttMs: v.relay.rttMs, rejected: numbersOnly(v.relay.rejected),
    })),
    tlogs: s.vehicles.flatMap((v) => (v.tlog ? [{ ...v.tlog, vehicle: v.relay.vehicleId }] : [])),
    router: s.vehicles.map((v) => ({ vehicle: v.relay.vehicleId, routed: v.router.routed, noRoute: v.router.noRoute, unknownTarget: v.router.unknownTarget })),
    ...extras,
  };
}

const EMPTY_SAMPLE: MetricsSample = { role: 'air', links: [], broker: null, sessions: [], tlogs: [], router: [] };

export interface Metrics {
  readonly contentType: string;
  /** Prometheus text exposition of everything, from one fresh snapshot. */
  render(): Promise<string>;
  /** Stops the default metrics' event-loop monitor. */
  close(): void;
}

export interface CreateMetricsOptions {
  /** prom-client's process/Node.js metrics (RSS, event-loop lag, GC, heap). Default true. */
  defaultMetrics?: boolean;
  /** Event-loop delay sampling resolution in ms (default 10). */
  eventLoopPrecisionMs?: number;
}

type Labels = Record<string, string>;
type Emit = (labels: Labels, value: number) => void;
type Fill = (s: MetricsSample, emit: Emit) => void;

/**
 * One metric whose samples are computed from the scrape's snapshot. It implements the small
 * contract prom-client's Registry renders (name, type, get() -> values) instead of a prom-client
 * Counter/Gauge, because those always emit a 0 sample without labels: an air side without a broker
 * must have no mavmq_mqtt_connected series at all, not a "disconnected" one.
 */
class SnapshotMetric {
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
    private readonly current: () => MetricsSample | null,
    private readonly fill: Fill,
  ) {}

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: { value: number; labels: Labels }[] }> {
    const values: { value: number; labels: Labels }[] = [];
    const s = this.current();
    if (s) {
      this.fill(s, (labels, value) => {
        if (!Number.isFinite(value)) return;
        values.push({ labels, value: this.type === 'counter' ? Math.max(0, value) : value });
      });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  reset(): void {}
}

export async function createMetrics(sample: () => MetricsSample, opts: CreateMetricsOptions = {}): Promise<Metrics> {
  const prom = await import('prom-client');
  const registry: Registry = new prom.Registry();
  if (opts.defaultMetrics !== false) prom.collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: opts.eventLoopPrecisionMs ?? 10 });

  let current: MetricsSample | null = null;
  let snapshotErrors = 0;
  const add = (type: 'counter' | 'gauge') => (name: string, help: string, fill: Fill): void => {
    registry.registerMetric(new SnapshotMetric(name, help, type, () => current, fill) as unknown as Metric);
  };
  const counter = add('counter');
  const gauge = add('gauge');
  const linkLabels = (l: LinkSample): Labels => ({ role: l.role, name: l.name, vehicle: l.vehicle ?? '' });
  const eachLink = (pick: (l: LinkSample) => number): Fill => (s, emit) => {
    for (const l of s.links) emit(linkLabels(l), pick(l));
  };
  const eachSession = (pick: (x: SessionSample) => number | undefined | null): Fill => (s, emit) => {
    for (const x of s.sessions) {
      const v = pick(x);
      if (typeof v === 'number') emit({ vehicle: x.vehicle }, v);
    }
  };

  gauge('mavmq_info', 'Always 1; the role label says which daemon this is.', (s, emit) => emit({ role: s.role }, 1));
  registry.registerMetric(new SnapshotMetric('mavmq_snapshot_errors_total', 'Scrapes whose snapshot failed (daemon still starting?).', 'counter', () => EMPTY_SAMPLE, (_s, emit) => emit({}, snapshotErrors)) as unknown as Metric);

  // Links: autopilot, local endpoints, GCS endpoints.
  gauge('mavmq_link_up', '1 when the link is open (serial device present, socket connected or listening).', eachLink((l) => (l.connected ? 1 : 0)));
  gauge('mavmq_link_peers', 'Connected peers (TCP clients, UDP senders).', eachLink((l) => l.peers));
  counter('mavmq_link_frames_total', 'Valid MAVLink frames received on the link.', eachLink((l) => l.frames));
  counter('mavmq_link_receive_bytes_total', 'Bytes received on the link.', eachLink((l) => l.bytesIn));
  counter('mavmq_link_transmit_bytes_total', 'Bytes written to the link.', eachLink((l) => l.bytesOut));
  counter('mavmq_link_crc_errors_total', 'Frames dropped for a bad CRC (noise, wrong baud rate, dialect mismatch).', eachLink((l) => l.crcErrors));
  counter('mavmq_link_resyncs_total', 'Times the framer lost sync.', eachLink((l) => l.resyncs));
  gauge('mavmq_link_loss_percent', 'Frame loss from MAVLink sequence numbers, 0..100, over the life of the link.', eachLink((l) => l.lossPercent));
  counter('mavmq_link_queue_drops_total', 'Frames dropped on the bounded output queue (slow or absent peer).', eachLink((l) => l.queueDrops));
  counter('mavmq_link_reconnects_total', 'Link reconnects (serial unplug/replug, TCP reconnect).', eachLink((l) => l.reconnects));
  gauge('mavmq_autopilot_heartbeat_age_seconds', 'Seconds since the last autopilot HEARTBEAT (air; absent before the first).', (s, emit) => {
    if (typeof s.heartbeatAgeS === 'number') emit({}, s.heartbeatAgeS);
  });

  counter('mavmq_router_frames_total', 'Frames routed.', (s, emit) => s.router.forEach((r) => emit({ vehicle: r.vehicle ?? '' }, r.routed)));
  counter('mavmq_router_no_route_total', 'Targeted frames with nowhere to go.', (s, emit) => s.router.forEach((r) => emit({ vehicle: r.vehicle ?? '' }, r.noRoute)));

  // Broker.
  const broker = (pick: (b: BrokerSample) => number): Fill => (s, emit) => {
    if (s.broker) emit({}, pick(s.broker));
  };
  gauge('mavmq_mqtt_connected', '1 while connected to the MQTT broker.', broker((b) => (b.connected ? 1 : 0)));
  counter('mavmq_mqtt_connects_total', 'Successful broker connections (1 + reconnects).', broker((b) => b.connects));
  counter('mavmq_mqtt_published_total', 'MQTT messages published.', broker((b) => b.published));
  counter('mavmq_mqtt_publish_errors_total', 'Publishes that failed.', broker((b) => b.publishErrors));
  counter('mavmq_mqtt_received_total', 'MQTT messages received.', broker((b) => b.received));
  gauge('mavmq_mqtt_outbox_bytes', 'QoS 1 bytes held while the broker is unreachable.', broker((b) => b.outboxBytes));
  counter('mavmq_mqtt_outbox_dropped_total', 'QoS 1 messages dropped from the full outbox (oldest first).', broker((b) => b.outboxDropped));
  counter('mavmq_mqtt_qos0_dropped_offline_total', 'QoS 0 telemetry dropped while the broker was unreachable.', broker((b) => b.qos0DroppedOffline));

  // End-to-end sessions (one "self" series on the air side, one per vehicle on the ground).
  gauge('mavmq_session_established', '1 while an end-to-end session is established.', eachSession((x) => (x.established ? 1 : 0)));
  gauge('mavmq_vehicle_online', '1 while the vehicle is heard (ground).', eachSession((x) => (x.online === undefined ? undefined : x.online ? 1 : 0)));
  counter('mavmq_sessions_total', 'Handshakes completed.', eachSession((x) => x.sessions));
  counter('mavmq_envelopes_received_total', 'Authentic envelopes opened.', eachSession((x) => x.envelopesIn));
  counter('mavmq_envelopes_sent_total', 'Envelopes sealed and published.', eachSession((x) => x.envelopesOut));
  counter('mavmq_relay_frames_received_total', 'MAVLink frames received through the relay.', eachSession((x) => x.framesIn));
  counter('mavmq_relay_frames_sent_total', 'MAVLink frames sent through the relay.', eachSession((x) => x.framesOut));
  counter('mavmq_relay_frames_unsent_no_session_total', 'Frames dropped because no session was established yet.', eachSession((x) => x.framesUnsentNoSession));
  gauge('mavmq_relay_loss_percent', 'Envelope loss from counter gaps, 0..100 (ground).', eachSession((x) => x.lossPercent));
  gauge('mavmq_relay_rtt_seconds', 'Round-trip time of the last sealed ping (ground).', eachSession((x) => (typeof x.rttMs === 'number' ? x.rttMs / 1000 : undefined)));
  counter('mavmq_envelopes_rejected_total', 'Envelopes and handshake messages rejected, by reason (docs/PROTOCOL.md §11).', (s, emit) => {
    for (const x of s.sessions) for (const [reason, n] of Object.entries(x.rejected)) emit({ vehicle: x.vehicle, reason }, n);
  });
  counter('mavmq_relay_frames_refused_total', 'Frames from the ground refused by the command policy (air).', (s, emit) => {
    const n = s.sessions.reduce((acc, x) => acc + (x.framesRefused ?? 0), 0);
    if (s.role === 'air' && s.sessions.length > 0) emit({}, n);
  });

  // Optional inputs.
  counter('mavmq_policy_verdicts_total', 'Command policy verdicts (air).', (s, emit) => {
    for (const [verdict, n] of Object.entries(s.policy ?? {})) emit({ verdict }, n);
  });
  gauge('mavmq_spool_bytes', 'Bytes in the store-and-forward spool.', (s, emit) => {
    if (s.spool) emit({}, s.spool.bytes);
  });
  gauge('mavmq_spool_messages', 'Messages in the store-and-forward spool.', (s, emit) => {
    if (typeof s.spool?.messages === 'number') emit({}, s.spool.messages);
  });
  counter('mavmq_spool_dropped_total', 'Messages dropped from the full spool.', (s, emit) => {
    if (typeof s.spool?.dropped === 'number') emit({}, s.spool.dropped);
  });

  // Recorder.
  const tlogLabels = (t: TlogSample): Labels => ({ vehicle: t.vehicle ?? '' });
  counter('mavmq_tlog_frames_written_total', 'Frames written to .tlog files.', (s, emit) => s.tlogs.forEach((t) => emit(tlogLabels(t), t.framesWritten)));
  counter('mavmq_tlog_frames_dropped_total', 'Frames the recorder dropped (disk too slow or full).', (s, emit) => s.tlogs.forEach((t) => emit(tlogLabels(t), t.framesDropped)));
  counter('mavmq_tlog_write_errors_total', 'Recorder write errors.', (s, emit) => s.tlogs.forEach((t) => emit(tlogLabels(t), t.writeErrors)));

  return {
    contentType: registry.contentType,
    async render(): Promise<string> {
      try {
        current = sample();
      } catch {
        current = null;
        snapshotErrors++;
      }
      try {
        return await registry.metrics();
      } finally {
        current = null;
      }
    },
    close(): void {
      registry.clear();
    },
  };
}
