import type { GroundSessionTable, EnvelopeRejectReason } from '../crypto/session.js';
import { describeFrame, splitFrames, type Frame } from '../mavlink/framer.js';
import type { Router, RouterPort } from '../mavlink/router.js';
import type { Logger } from '../obs/logger.js';
import { Batcher } from '../uplink/batcher.js';
import type { MqttLink } from '../uplink/mqtt-client.js';
import { DOWN_TOPICS, type Topics, type UpTopicKind } from '../uplink/topics.js';
import { decodeControl, encodeControl } from '../uplink/control.js';
import { HistoryReceiver, type HistoryFrame } from '../uplink/spool-history.js';
import { CommandResponder, MAV_RESULT_TEMPORARILY_REJECTED } from '../mavlink/responder.js';
import type { PolicyEngine } from '../policy/engine.js';

/**
 * One vehicle as seen by the gateway, as a router port named "vehicle:{id}":
 *   MQTT up/* -> open -> frames -> router -> GCS endpoints
 *   GCS frames -> router -> deliver -> batch -> seal -> MQTT down/command (QoS 1)
 * Link health: online/offline (retained status + traffic), RTT by sealed ping/pong, envelope loss
 * from counter gaps, rejected envelopes by reason.
 */
export interface GroundVehicleOptions {
  vehicleId: string;
  router: Router;
  mqtt: MqttLink;
  topics: Topics;
  sessions: GroundSessionTable;
  logger: Logger;
  /** GCS traffic is light and interactive: a short window. */
  batching?: { maxBytes: number; maxDelayMs: number };
  pingIntervalMs?: number;
  /** Silence after which the vehicle counts as offline even without a status message. */
  offlineAfterMs?: number;
  /** Minimum gap between two REHELLO requests (they are answers to unknown sessions: rate-limit them). */
  rehelloMinIntervalMs?: number;
  onFrame?: (frame: Frame) => void;
  /** Answers GCS commands the gateway cannot forward (broker down). */
  responder?: CommandResponder;
  /**
   * Where a vehicle's spooled history goes (its ground tlog), in order. Resolves once durable: only
   * then is the history acknowledged to the vehicle. Without it history is acknowledged and dropped.
   */
  recordHistory?: (frames: HistoryFrame[]) => Promise<void>;
  /** Optional ground-side command policy (defense in depth): GCS frames checked before sealing. */
  policy?: PolicyEngine;
}

export interface GroundVehicleStats {
  vehicleId: string;
  online: boolean;
  brokerStatus: string | null;
  sessionId: string | null;
  sessions: number;
  rttMs: number | null;
  envelopesIn: number;
  envelopesLost: number;
  lossPercent: number;
  framesIn: number;
  framesOut: number;
  envelopesOut: number;
  framesUnsentNoSession: number;
  /** GCS frames dropped because the broker was unreachable (never queued for later). */
  framesDroppedOffline: number;
  /** GCS frames refused by the ground-side policy (when enabled). */
  framesRefused: number;
  history: ReturnType<HistoryReceiver['stats']>;
  rejected: Partial<Record<EnvelopeRejectReason | 'handshake', number>>;
  lastHealth: Record<string, unknown> | null;
}

export class GroundVehicle implements RouterPort {
  readonly id: string;
  private batcher: Batcher | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private pingId = 0;
  private lastRehelloMs = -Infinity;
  private lastHeardMs = -Infinity;
  private brokerStatus: string | null = null;
  private rttMs: number | null = null;
  private lastHealth: Record<string, unknown> | null = null;
  /** Envelope-loss accounting per session: highest counter seen and how many arrived. */
  private loss = { session: '', highest: -1n, received: 0n, lostBefore: 0n };
  private readonly counters = { sessions: 0, envelopesIn: 0, framesIn: 0, framesOut: 0, envelopesOut: 0, framesUnsentNoSession: 0, framesDroppedOffline: 0, framesRefused: 0 };
  private readonly rejected: Partial<Record<EnvelopeRejectReason | 'handshake', number>> = {};
  private readonly history = new HistoryReceiver();
  /** History bodies are recorded one at a time, in arrival order. */
  private historyChain: Promise<void> = Promise.resolve();
  private readonly log: Logger;

  constructor(private readonly opts: GroundVehicleOptions) {
    this.id = `vehicle:${opts.vehicleId}`;
    this.log = opts.logger.child({ module: 'gateway', vehicle: opts.vehicleId });
  }

  start(signal: AbortSignal): void {
    this.batcher = new Batcher({ ...(this.opts.batching ?? { maxBytes: 1024, maxDelayMs: 5 }), onBatch: (body, n) => this.sendFrames(body, n) });
    this.opts.router.addPort(this);
    this.pingTimer = setInterval(() => this.ping(), this.opts.pingIntervalMs ?? 5000);
    this.pingTimer.unref();
    signal.addEventListener('abort', () => this.stop(), { once: true });
  }

  stop(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.batcher?.clear();
    this.opts.router.removePort(this.id);
  }

  /** From the router: a frame a GCS sent toward the vehicle. */
  deliver(frame: Frame): void {
    const policy = this.opts.policy;
    if (policy === undefined) {
      this.batcher?.add(frame.bytes);
      return;
    }
    const v = policy.check(frame);
    if (v.action === 'allow') {
      this.batcher?.add(v.frame.bytes);
      return;
    }
    this.counters.framesRefused++;
    // The refusal's answers go back to the ground stations, as the vehicle's would.
    for (const bytes of v.replies) this.opts.router.route(this.id, describeFrame(bytes));
  }

  /** An MQTT message on one of this vehicle's up topics. */
  onUp(kind: UpTopicKind, topic: string, payload: Buffer): void {
    const { sessions, vehicleId, mqtt, topics } = this.opts;
    if (kind === 'status') {
      const status = payload.toString('utf8').slice(0, 16);
      if (status !== this.brokerStatus) this.log.info({ status }, 'vehicle status');
      this.brokerStatus = status;
      return;
    }
    if (kind === 'hello') {
      const r = sessions.onHello(payload);
      if (!r.ok || r.vehicleId !== vehicleId) {
        this.reject('handshake');
        this.log.warn({ reason: r.ok ? 'vehicle-mismatch' : r.reason }, 'HELLO rejected');
        return;
      }
      mqtt.publish(topics.down(vehicleId, 'handshake'), r.reply, DOWN_TOPICS.handshake.qos);
      return;
    }
    const r = sessions.open(vehicleId, payload, topic);
    if (!r.ok) {
      this.reject(r.reason);
      if (r.reason === 'unknown-session') this.maybeRehello(payload);
      return;
    }
    this.lastHeardMs = performance.now();
    this.counters.envelopesIn++;
    this.trackLoss(r.sessionId, r.counter);
    if (r.newSession) {
      this.counters.sessions++;
      // Commands queued for the old session must not be resent into the new one.
      this.batcher?.clear();
      this.log.info({ session: r.sessionId }, 'session established');
      // The vehicle times our command batches against our pings: give it a basis at once.
      this.ping();
    }
    if (kind === 'history') {
      if (r.kind === 'history') this.onHistory(r.body);
      return; // history is recorded, never routed to live ground stations
    }
    if (r.kind === 'frames') {
      const policy = this.opts.policy;
      splitFrames(r.body, (frame) => {
        this.counters.framesIn++;
        policy?.observe(frame);
        this.opts.router.route(this.id, frame);
        this.opts.onFrame?.(frame);
      });
    } else if (r.kind === 'control') {
      const m = decodeControl(r.body);
      if (m?.type === 'pong') this.rttMs = Math.round((performance.now() - m.sentAtMs) * 10) / 10;
    } else if (r.kind === 'health') {
      try {
        this.lastHealth = JSON.parse(r.body.toString('utf8')) as Record<string, unknown>;
      } catch {
        this.lastHealth = null;
      }
    }
  }

  stats(): GroundVehicleStats {
    const expected = this.loss.received + this.lossGap() + this.loss.lostBefore;
    const lost = this.lossGap() + this.loss.lostBefore;
    return {
      vehicleId: this.opts.vehicleId,
      online: this.online(),
      brokerStatus: this.brokerStatus,
      sessionId: this.opts.sessions.sessionId(this.opts.vehicleId),
      rttMs: this.rttMs,
      ...this.counters,
      history: this.history.stats(),
      envelopesLost: Number(lost),
      lossPercent: expected === 0n ? 0 : Math.round(Number((lost * 10000n) / expected)) / 100,
      rejected: { ...this.rejected },
      lastHealth: this.lastHealth,
    };
  }

  online(): boolean {
    return this.brokerStatus !== 'offline' && performance.now() - this.lastHeardMs < (this.opts.offlineAfterMs ?? 10_000);
  }

  private lossGap(): bigint {
    const gap = this.loss.highest + 1n - this.loss.received;
    return gap > 0n ? gap : 0n;
  }

  private trackLoss(sessionId: string, counter: bigint): void {
    if (sessionId !== this.loss.session) {
      this.loss = { session: sessionId, highest: -1n, received: 0n, lostBefore: this.loss.lostBefore + this.lossGap() };
    }
    this.loss.received++;
    if (counter > this.loss.highest) this.loss.highest = counter;
  }

  private maybeRehello(payload: Buffer): void {
    const now = performance.now();
    if (now - this.lastRehelloMs < (this.opts.rehelloMinIntervalMs ?? 2000)) return;
    this.lastRehelloMs = now;
    const r = this.opts.sessions.onUnknownSession(this.opts.vehicleId, payload);
    if (r.ok) {
      this.log.info('unknown session from vehicle (gateway restarted?): asking it for a new HELLO');
      this.opts.mqtt.publish(this.opts.topics.down(this.opts.vehicleId, 'handshake'), r.rehello, DOWN_TOPICS.handshake.qos);
    }
  }

  private reject(reason: EnvelopeRejectReason | 'handshake'): void {
    const n = (this.rejected[reason] ?? 0) + 1;
    this.rejected[reason] = n;
    // Log the first of each reason and then every 100th: an attack must not flood the journal.
    if (n === 1 || n % 100 === 0) this.log.warn({ reason, count: n }, 'envelope rejected');
  }

  /** Spooled history from the vehicle: into its ground tlog in order, acknowledged once durable. */
  private onHistory(body: Buffer): void {
    const oneWayMs = this.rttMs === null ? 0 : this.rttMs / 2;
    const r = this.history.accept(body, BigInt(Date.now()) * 1000n, oneWayMs);
    const ackUpto = r.ackUpto;
    const frames = r.ok ? r.frames : [];
    const spoolId = this.history.stats().spoolId;
    this.historyChain = this.historyChain
      .then(() => (frames.length > 0 && this.opts.recordHistory ? this.opts.recordHistory(frames) : undefined))
      .then(() => {
        if (ackUpto !== null && spoolId !== null) this.sendControl(encodeControl({ type: 'history-ack', upto: ackUpto, spoolId }));
      })
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'cannot record vehicle history; not acknowledged, it will be resent'));
  }

  private sendControl(body: Buffer): void {
    const { sessions, vehicleId, mqtt, topics } = this.opts;
    const topic = topics.down(vehicleId, 'command');
    const sealed = sessions.seal(vehicleId, 'control', body, topic);
    if (sealed.ok) mqtt.publish(topic, sealed.envelope, DOWN_TOPICS.command.qos);
  }

  private sendFrames(body: Buffer, frames: number): void {
    const { sessions, vehicleId, mqtt, topics } = this.opts;
    // Never store-and-forward ground-station traffic: a GCS retries on its own, and commands held
    // through a broker outage would all run, late, when it returns (same session: the air accepts
    // them). Commands get a failure now instead of a surprise later.
    if (!mqtt.connected) {
      this.counters.framesDroppedOffline += frames;
      this.failCommands(body);
      return;
    }
    const topic = topics.down(vehicleId, 'command');
    // Stamped with our monotonic time: the vehicle refuses batches that travelled too long.
    const stamped = Buffer.allocUnsafe(8 + body.length);
    stamped.writeDoubleLE(performance.now(), 0);
    body.copy(stamped, 8);
    const sealed = sessions.seal(vehicleId, 'commands', stamped, topic);
    if (!sealed.ok) {
      this.counters.framesUnsentNoSession += frames;
      this.failCommands(body);
      return;
    }
    mqtt.publish(topic, sealed.envelope, DOWN_TOPICS.command.qos);
    this.counters.envelopesOut++;
    this.counters.framesOut += frames;
  }

  /** COMMAND_ACK TEMPORARILY_REJECTED, as from the addressed component, for each command in a batch we cannot send. */
  private failCommands(body: Buffer): void {
    const responder = this.opts.responder;
    if (!responder) return;
    splitFrames(body, (frame) => {
      const ack = responder.ackFor(frame, MAV_RESULT_TEMPORARILY_REJECTED);
      if (ack) this.opts.router.route(this.id, describeFrame(ack));
    });
  }

  private ping(): void {
    this.sendControl(encodeControl({ type: 'ping', id: ++this.pingId, sentAtMs: performance.now() }));
  }
}
