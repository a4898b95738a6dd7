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

/**
 * The air side's end of the encrypted relay, as a router port named "uplink":
 *   router -> deliver(frame) -> batch by class -> seal -> MQTT (telemetry QoS 0, reliable QoS 1)
 *   MQTT down/command -> open -> frames -> (policy, later) -> router
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
  rejected: Partial<Record<EnvelopeRejectReason | 'handshake', number>>;
}

export class AirRelay implements RouterPort {
  readonly id = 'uplink';
  private telemetry: Batcher | null = null;
  private reliable: Batcher | null = null;
  private helloTimer: NodeJS.Timeout | null = null;
  private healthTimer: NodeJS.Timeout | null = null;
  private readonly counters: Omit<AirRelayStats, 'sessionId' | 'rejected'> = {
    sessions: 0, envelopesOut: 0, framesOut: 0, bytesOut: 0, framesUnsentNoSession: 0, envelopesIn: 0, framesIn: 0, framesRefused: 0,
  };
  private readonly rejected: Partial<Record<EnvelopeRejectReason | 'handshake', number>> = {};
  private readonly log: Logger;

  constructor(private readonly opts: AirRelayOptions) {
    this.log = opts.logger.child({ module: 'relay' });
  }

  start(signal: AbortSignal): void {
    const { mqtt, batching } = this.opts;
    this.telemetry = new Batcher({ ...batching, onBatch: (body, n) => this.sendFrames('telemetry', body, n) });
    this.reliable = new Batcher({ ...batching, onBatch: (body, n) => this.sendFrames('reliable', body, n) });
    mqtt.on('connect', () => this.hello());
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
    signal.addEventListener('abort', () => this.stop(), { once: true });
  }

  stop(): void {
    if (this.helloTimer) clearInterval(this.helloTimer);
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.helloTimer = this.healthTimer = null;
    this.telemetry?.clear();
    this.reliable?.clear();
    this.opts.router.removePort(this.id);
  }

  /** From the router: a frame for the ground. */
  deliver(frame: Frame): void {
    if (isReliable(frame.msgid)) this.reliable?.add(frame.bytes, isLatencyCritical(frame.msgid));
    else this.telemetry?.add(frame.bytes, isLatencyCritical(frame.msgid));
  }

  stats(): AirRelayStats {
    return { sessionId: this.opts.session.sessionId, ...this.counters, rejected: { ...this.rejected } };
  }

  /** Each HELLO draws a fresh random; the gateway keeps a few pending sessions, so retries are harmless. */
  private hello(): void {
    const { session, mqtt, topics, vehicleId } = this.opts;
    mqtt.publish(topics.up(vehicleId, 'hello'), session.startHello(), UP_TOPICS.hello.qos);
  }

  private sendFrames(kind: 'telemetry' | 'reliable', body: Buffer, frames: number): void {
    const { session, mqtt, topics, vehicleId } = this.opts;
    const topic = topics.up(vehicleId, kind);
    const sealed = session.seal('frames', body, topic);
    if (!sealed.ok) {
      this.counters.framesUnsentNoSession += frames;
      return;
    }
    mqtt.publish(topic, sealed.envelope, UP_TOPICS[kind].qos);
    this.counters.envelopesOut++;
    this.counters.framesOut += frames;
    this.counters.bytesOut += sealed.envelope.length;
  }

  private sendSealed(kind: UpTopicKind & ('telemetry' | 'reliable'), payloadKind: 'control' | 'health' | 'keepalive', body: Buffer): void {
    const { session, mqtt, topics, vehicleId } = this.opts;
    const topic = topics.up(vehicleId, kind);
    const sealed = session.seal(payloadKind, body, topic);
    if (sealed.ok) mqtt.publish(topic, sealed.envelope, UP_TOPICS[kind].qos);
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
    if (r.kind === 'frames') {
      const admit = this.opts.admit;
      const whole = splitFrames(r.body, (frame) => {
        this.counters.framesIn++;
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
    } else if (r.kind === 'control') {
      const msg = decodeControl(r.body);
      if (msg?.type === 'ping') this.sendSealed('reliable', 'control', encodeControl({ type: 'pong', id: msg.id, sentAtMs: msg.sentAtMs }));
    }
  }
}
