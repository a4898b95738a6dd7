import type { AirSession, EnvelopeRejectReason } from '../crypto/session.js';
import { describeFrame, splitFrames, type Frame } from '../mavlink/framer.js';
import type { Verdict } from '../policy/engine.js';
import type { Router, RouterPort } from '../mavlink/router.js';
import type { Logger } from '../obs/logger.js';
import { Batcher } from '../uplink/batcher.js';
import type { MqttLink } from '../uplink/mqtt-client.js';
import { UP_TOPICS, type Topics, type UpTopicKind } from '../uplink/topics.js';
import { isLatencyCritical, isReliable } from '../uplink/classes.js';
import { decodeControl, encodeControl } from '../uplink/control.js';
import type { BudgetStats, LinkBudget } from '../uplink/budget.js';
import type { Spool } from '../uplink/spool.js';
import { HistoryPump } from '../uplink/spool-history.js';
import { CommandResponder, MAV_RESULT_TEMPORARILY_REJECTED } from '../mavlink/responder.js';
import { GroundClock } from '../uplink/ground-clock.js';

/**
 * The air side's end of the encrypted relay, as a router port named "uplink":
 *   router -> deliver(frame) -> (link budget) -> batch by class -> seal -> MQTT (telemetry QoS 0, reliable QoS 1)
 *                                                              \-> spool while the link is down -> up/history later
 *   MQTT down/command -> open -> (too old? refused) -> policy -> router
 * It owns the handshake: HELLO at every broker (re)connect until a REPLY, and again on REHELLO
 * or when the session wants a rekey.
 */
export interface AirRelayOptions {
  router: Router;
  mqtt: MqttLink;
  topics: Topics;
  vehicleId: string;
  session: AirSession;
  logger: Logger;
  batching: { maxBytes: number; maxDelayMs: number };
  helloRetryMs?: number;
  /** Gate for frames from the ground before they reach the router (the command policy). */
  admit?: (frame: Frame) => Verdict;
  health?: () => Record<string, unknown>;
  healthIntervalMs?: number;
  /** Opt-in bandwidth budget (profiles in config/profiles); without it every frame passes. */
  budget?: LinkBudget;
  /** Store-and-forward: batches spooled while the broker or session is away, sent as history later. */
  spool?: Spool;
  /** Commands that spent longer than this in transit (beyond the link's best) are refused, never run late. */
  commandTtlMs?: number;
  /** Needed to answer refused commands. */
  responder?: CommandResponder;
}

export interface AirRelayStats {
  sessionId: string | null;
  sessions: number;
  envelopesOut: number;
  framesOut: number;
  bytesOut: number;
  framesUnsentNoSession: number;
  envelopesIn: number;
  framesIn: number;
  framesRefused: number;
  /** Frame batches written to the spool while the link was down. */
  batchesSpooled: number;
  /** Command frames dropped as too old to run (answered TEMPORARILY_REJECTED where a COMMAND). */
  framesStale: number;
  history: ReturnType<HistoryPump['stats']> | null;
  /** Link budget figures (sent, coalesced, dropped, over budget) when a budget is configured. */
  budget: BudgetStats | null;
  rejected: Partial<Record<EnvelopeRejectReason | 'handshake', number>>;
}

export class AirRelay implements RouterPort {
  readonly id = 'uplink';
  private telemetry: Batcher | null = null;
  private reliable: Batcher | null = null;
  private helloTimer: NodeJS.Timeout | null = null;
  private healthTimer: NodeJS.Timeout | null = null;
  private readonly counters: Omit<AirRelayStats, 'sessionId' | 'rejected' | 'history' | 'budget'> = {
    sessions: 0, envelopesOut: 0, framesOut: 0, bytesOut: 0, framesUnsentNoSession: 0, envelopesIn: 0, framesIn: 0, framesRefused: 0,
    batchesSpooled: 0, framesStale: 0,
  };
  private drainTimer: NodeJS.Timeout | null = null;
  private drainAtMs = Infinity;
  private historyTimer: NodeJS.Timeout | null = null;
  private pump: HistoryPump | null = null;
  private readonly groundClock = new GroundClock();
  private readonly rejected: Partial<Record<EnvelopeRejectReason | 'handshake', number>> = {};
  private readonly log: Logger;

  constructor(private readonly opts: AirRelayOptions) {
    this.log = opts.logger.child({ module: 'relay' });
  }

  start(signal: AbortSignal): void {
    const { mqtt, batching } = this.opts;
    this.telemetry = new Batcher({ ...batching, onBatch: (body, n) => this.sendFrames('telemetry', body, n) });
    this.reliable = new Batcher({ ...batching, onBatch: (body, n) => this.sendFrames('reliable', body, n) });
    mqtt.on('connect', () => {
      this.pump?.restart();
      this.hello();
    });
    mqtt.on('message', (topic, payload) => this.onMessage(topic, payload));
    this.opts.router.addPort(this);
    this.helloTimer = setInterval(() => {
      const s = this.opts.session;
      if (mqtt.connected && (s.sessionId === null || s.needsRekey || s.handshakePending)) this.hello();
    }, this.opts.helloRetryMs ?? 3000);
    this.helloTimer.unref();
    if (this.opts.health) {
      this.healthTimer = setInterval(() => this.sendHealth(), this.opts.healthIntervalMs ?? 5000);
      this.healthTimer.unref();
    }
    if (this.opts.spool) {
      this.pump = new HistoryPump({ spool: this.opts.spool });
      this.historyTimer = setInterval(() => void this.pumpHistory(), 200);
      this.historyTimer.unref();
    }
    signal.addEventListener('abort', () => this.stop(), { once: true });
  }

  stop(): void {
    if (this.helloTimer) clearInterval(this.helloTimer);
    if (this.healthTimer) clearInterval(this.healthTimer);
    if (this.historyTimer) clearInterval(this.historyTimer);
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.helloTimer = this.healthTimer = this.historyTimer = this.drainTimer = null;
    // What is still batched goes to the spool rather than being lost (it is flushed to disk by its owner).
    this.telemetry?.flush();
    this.reliable?.flush();
    this.telemetry?.clear();
    this.reliable?.clear();
    this.opts.router.removePort(this.id);
  }

  /** From the router: a frame for the ground. */
  deliver(frame: Frame): void {
    const budget = this.opts.budget;
    if (budget === undefined || !budget.active) {
      this.batch(frame);
      return;
    }
    if (budget.offer(frame, performance.now())) this.batch(frame);
    else this.scheduleDrain();
  }

  stats(): AirRelayStats {
    return {
      sessionId: this.opts.session.sessionId, ...this.counters, history: this.pump?.stats() ?? null,
      budget: this.opts.budget?.active ? this.opts.budget.stats() : null, rejected: { ...this.rejected },
    };
  }

  private batch(frame: Frame): void {
    if (isReliable(frame.msgid)) this.reliable?.add(frame.bytes, isLatencyCritical(frame.msgid));
    else this.telemetry?.add(frame.bytes, isLatencyCritical(frame.msgid));
  }

  /**
   * Frames the budget held back go out when it has room (coalesced bulk, paced normal traffic).
   * One timer, always at the earliest due time: a frame held later but due sooner moves it forward.
   */
  private scheduleDrain(): void {
    const budget = this.opts.budget;
    if (budget === undefined) return;
    const now = performance.now();
    const at = budget.nextDrainMs(now);
    if (at === null) return;
    if (this.drainTimer !== null) {
      if (this.drainAtMs <= at) return;
      clearTimeout(this.drainTimer);
    }
    this.drainAtMs = at;
    this.drainTimer = setTimeout(() => {
      this.drainTimer = null;
      this.drainAtMs = Infinity;
      for (const f of budget.drain(performance.now())) this.batch(f);
      this.scheduleDrain();
    }, Math.max(0, at - now));
  }

  /** The link can carry envelopes now: broker connected and a session to seal under. */
  private linkUp(): boolean {
    return this.opts.mqtt.connected && this.opts.session.sessionId !== null;
  }

  /** Envelope overhead beyond the frames themselves, charged to the budget (header, tag, topic, MQTT). */
  private charge(envelopeBytes: number, bodyBytes: number, topic: string): void {
    this.opts.budget?.charge(envelopeBytes - bodyBytes + topic.length + 7, performance.now());
  }

  private async pumpHistory(): Promise<void> {
    const pump = this.pump;
    if (pump === null || !this.linkUp()) return;
    const now = performance.now();
    pump.tick(now);
    const spare = this.opts.budget?.active ? this.opts.budget.spare(now) : 64 * 1024;
    if (spare <= 256) return;
    const { session, mqtt, topics, vehicleId } = this.opts;
    const topic = topics.up(vehicleId, 'history');
    for (const body of await pump.pump(now, Math.min(spare, 16 * 1024))) {
      const sealed = session.seal('history', body, topic);
      if (!sealed.ok) return;
      mqtt.publish(topic, sealed.envelope, UP_TOPICS.history.qos);
      this.opts.budget?.charge(sealed.envelope.length + topic.length + 7, performance.now());
    }
  }

  /** Each HELLO draws a fresh random; the gateway keeps a few pending sessions, so retries are harmless. */
  private hello(): void {
    const { session, mqtt, topics, vehicleId } = this.opts;
    mqtt.publish(topics.up(vehicleId, 'hello'), session.startHello(), UP_TOPICS.hello.qos);
  }

  private sendFrames(kind: 'telemetry' | 'reliable', body: Buffer, frames: number): void {
    const { session, mqtt, topics, vehicleId, spool } = this.opts;
    if (spool !== undefined && !this.linkUp()) {
      // Store-and-forward: plaintext on the vehicle's own disk (like the tlog), sealed under
      // whatever session exists when it drains; never into MQTT's memory outbox.
      spool.append(kind === 'reliable' ? 'critical' : 'bulk', body);
      this.counters.batchesSpooled++;
      return;
    }
    const topic = topics.up(vehicleId, kind);
    const sealed = session.seal('frames', body, topic);
    if (!sealed.ok) {
      this.counters.framesUnsentNoSession += frames;
      return;
    }
    mqtt.publish(topic, sealed.envelope, UP_TOPICS[kind].qos);
    this.charge(sealed.envelope.length, body.length, topic);
    this.counters.envelopesOut++;
    this.counters.framesOut += frames;
    this.counters.bytesOut += sealed.envelope.length;
  }

  private sendSealed(kind: UpTopicKind & ('telemetry' | 'reliable'), payloadKind: 'control' | 'health' | 'keepalive', body: Buffer): void {
    const { session, mqtt, topics, vehicleId } = this.opts;
    const topic = topics.up(vehicleId, kind);
    const sealed = session.seal(payloadKind, body, topic);
    if (!sealed.ok) return;
    mqtt.publish(topic, sealed.envelope, UP_TOPICS[kind].qos);
    this.charge(sealed.envelope.length, 0, topic);
  }

  private sendHealth(): void {
    const health = this.opts.health?.();
    if (health && this.opts.session.sessionId !== null) this.sendSealed('telemetry', 'health', Buffer.from(JSON.stringify(health)));
  }

  private reject(reason: EnvelopeRejectReason | 'handshake'): void {
    this.rejected[reason] = (this.rejected[reason] ?? 0) + 1;
  }

  private onMessage(topic: string, payload: Buffer): void {
    const { topics, vehicleId, session } = this.opts;
    if (topic === topics.down(vehicleId, 'handshake')) {
      const reply = session.onReply(payload);
      if (reply.ok) {
        this.counters.sessions++;
        this.groundClock.reset();
        this.pump?.restart();
        this.log.info({ session: reply.sessionId }, 'session established');
        // Confirm at once: the gateway switches to a new session only on our first envelope under it.
        this.sendSealed('reliable', 'keepalive', Buffer.alloc(0));
        return;
      }
      if (reply.reason === 'bad-type') {
        const re = session.onRehello(payload);
        if (re.ok) {
          this.log.info('gateway asked for a new handshake');
          this.opts.mqtt.publish(topics.up(vehicleId, 'hello'), re.hello, UP_TOPICS.hello.qos);
          return;
        }
        this.log.warn({ reason: re.reason }, 'rehello rejected');
      } else if (reply.reason !== 'no-pending') {
        this.log.warn({ reason: reply.reason }, 'handshake reply rejected');
      }
      this.reject('handshake');
      return;
    }
    if (topic !== topics.down(vehicleId, 'command')) return;
    const r = session.open(payload, topic);
    if (!r.ok) {
      this.reject(r.reason);
      return;
    }
    this.counters.envelopesIn++;
    if (r.kind === 'commands' || r.kind === 'frames') {
      let frames = r.body;
      if (r.kind === 'commands') {
        if (frames.length < 8) return;
        const sentAtMs = frames.readDoubleLE(0);
        frames = frames.subarray(8);
        const lateMs = this.groundClock.excessDelayMs(sentAtMs, performance.now());
        if (lateMs !== null && lateMs > (this.opts.commandTtlMs ?? 5000)) {
          this.refuseStale(frames, lateMs);
          return;
        }
      }
      this.admitFrames(frames);
    } else if (r.kind === 'control') {
      const msg = decodeControl(r.body);
      if (msg?.type === 'ping') {
        this.groundClock.observe(msg.sentAtMs, performance.now());
        this.sendSealed('reliable', 'control', encodeControl({ type: 'pong', id: msg.id, sentAtMs: msg.sentAtMs }));
      } else if (msg?.type === 'history-ack' && this.pump !== null && msg.spoolId === this.opts.spool?.spoolId) {
        void this.pump.onAck(msg.upto, performance.now());
      }
    }
  }

  /** Frames from the ground through the policy (when configured) into the router. */
  private admitFrames(body: Buffer): void {
    const admit = this.opts.admit;
    const now = performance.now();
    const whole = splitFrames(body, (frame) => {
      this.counters.framesIn++;
      this.opts.budget?.noteDownlink(frame, now);
      if (!admit) {
        this.opts.router.route(this.id, frame);
        return;
      }
      const v = admit(frame);
      if (v.action === 'allow') {
        this.opts.router.route(this.id, v.frame); // possibly rewritten (stream-rate cap)
        return;
      }
      this.counters.framesRefused++;
      // The answers (COMMAND_ACK, PARAM_VALUE, FTP NAK, STATUSTEXT) go back to the ground only.
      for (const bytes of v.replies) this.deliver(describeFrame(bytes));
    });
    if (!whole) this.log.warn('authentic envelope with a torn frame list (sender bug)');
  }

  /** A batch that spent too long in transit: none of it runs; commands get a failure, not a late surprise. */
  private refuseStale(body: Buffer, lateMs: number): void {
    let n = 0;
    splitFrames(body, (frame) => {
      n++;
      const ack = this.opts.responder?.ackFor(frame, MAV_RESULT_TEMPORARILY_REJECTED);
      if (ack) this.deliver(describeFrame(ack));
    });
    this.counters.framesStale += n;
    this.log.warn({ frames: n, lateMs: Math.round(lateMs) }, 'frames from the ground arrived too late to run; refused');
  }
}
