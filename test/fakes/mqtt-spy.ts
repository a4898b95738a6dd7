import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';
import { common } from 'node-mavlink';
import { decodeHandshake, deriveHandshakeKeys, deriveSessionKeys, openEnvelope, verifyHandshakeMac, type SecretKey, type SessionKeys } from '../../src/crypto/index.js';
import { ardupilotmegaDialect } from '../../src/mavlink/dialect.js';
import { Codec } from '../../src/mavlink/codec.js';
import { Framer, splitFrames, type Frame } from '../../src/mavlink/framer.js';
import type { Transport } from '../../src/link/transport.js';
import type { GcsClient } from './gcs-client.js';

/**
 * What the untrusted broker (or anyone on its path) can do, for the relay's attack and fault tests:
 * an mqtt.js client subscribed to everything ('#'), recording every message with its topic,
 * payload, QoS and retain flag (MQTT 5 "retain as published", so a live retained publish is seen
 * as retained), and publishing raw bytes to any topic.
 *
 * Also here, because the attack and fault tests share them:
 *  - MqttMitm: the broker as a man in the middle (air and gateway on two brokers, bridged), which
 *    can withhold, delay, duplicate and reorder what the air receives.
 *  - EnvelopeOracle: the test's own key-holding view of captured traffic (it learns session keys
 *    from captured REPLYs and the PSKs), used only to FIND which captured envelope carries the
 *    command a test wants to replay; the code under test never sees it.
 *  - CommandProbe: the autopilot side's view. SimCore.stats() only counts frames in total
 *    (framesIn), not per message, so the probe listens to the simulator's own transport and counts
 *    the tagged COMMAND_LONGs that actually reached the simulated autopilot.
 */
export interface SpiedMessage {
  /** Index in MqttSpy.messages. */
  index: number;
  atMs: number;
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  dup: boolean;
}

export interface SpyPublishOptions {
  qos?: 0 | 1;
  retain?: boolean;
}

export class MqttSpy {
  readonly messages: SpiedMessage[] = [];
  private client: MqttClient | null = null;

  constructor(
    readonly url: string,
    readonly filter = '#',
    readonly clientId = `mavmq-spy-${Math.random().toString(16).slice(2, 10)}`,
  ) {}

  /** Connects and resolves once the '#' subscription is granted (so nothing after this is missed). */
  async start(): Promise<void> {
    const client = mqtt.connect(this.url, { clientId: this.clientId, protocolVersion: 5, reconnectPeriod: 200, connectTimeout: 5000, clean: true });
    this.client = client;
    client.on('error', () => undefined);
    client.on('message', (topic, payload, packet) => {
      this.messages.push({
        index: this.messages.length, atMs: performance.now(), topic, payload: Buffer.from(payload),
        qos: packet.qos, retain: packet.retain, dup: packet.dup,
      });
    });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    await client.subscribeAsync(this.filter, { qos: 1, rap: true });
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  /** Waits for the client to be connected (and resubscribed: mqtt.js resubscribes before 'connect'). */
  async waitConnected(timeoutMs = 10_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!this.connected) {
      if (performance.now() > deadline) throw new Error(`spy not reconnected to ${this.url} after ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  get mark(): number {
    return this.messages.length;
  }

  /** Messages since a mark, on exactly this topic (or all topics). */
  since(mark: number, topic?: string): SpiedMessage[] {
    return this.messages.slice(mark).filter((m) => topic === undefined || m.topic === topic);
  }

  async waitFor(pred: (m: SpiedMessage) => boolean, timeoutMs = 5000, since = this.mark): Promise<SpiedMessage> {
    const deadline = performance.now() + timeoutMs;
    let i = since;
    for (;;) {
      for (; i < this.messages.length; i++) {
        const m = this.messages[i]!;
        if (pred(m)) return m;
      }
      if (performance.now() > deadline) throw new Error(`spy: no matching message within ${timeoutMs} ms`);
      await sleep(10);
    }
  }

  /** Publishes raw bytes; resolves when the broker has it (PUBACK for QoS 1). */
  async publish(topic: string, payload: Buffer, opts: SpyPublishOptions = {}): Promise<void> {
    const client = this.client;
    if (client === null) throw new Error('spy not started');
    await client.publishAsync(topic, payload, { qos: opts.qos ?? 1, retain: opts.retain ?? false });
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = null;
    await client?.endAsync(true).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------

export interface BridgedMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  retain: boolean;
}

/**
 * A man in the middle: the air daemon talks to one broker, the gateway to another, and this
 * bridge carries every up topic from the air's broker to the gateway's and every down topic the
 * other way, byte-exact (QoS and retain kept, per-topic order kept). The `down` hook sees each
 * down message first and decides what the air gets: the original at once (default), nothing
 * (withheld), later, twice, or reordered; the `up` hook does the same for what the gateway gets.
 * Anything published on the gateway's broker (by the spy, say) reaches the air through the hook.
 */
export class MqttMitm {
  down: (m: BridgedMessage, forward: (m: BridgedMessage) => void) => void = (m, forward) => forward(m);
  up: (m: BridgedMessage, forward: (m: BridgedMessage) => void) => void = (m, forward) => forward(m);
  readonly stats = { downIn: 0, downOut: 0, upIn: 0, upOut: 0 };
  private groundSide: MqttClient | null = null;
  private airSide: MqttClient | null = null;

  constructor(
    readonly groundUrl: string,
    readonly airUrl: string,
    readonly prefix = 'mavmq',
    /** How fast the bridge is back after a broker restart (a short one: before the daemons). */
    readonly reconnectPeriodMs = 200,
  ) {}

  async start(): Promise<void> {
    const id = Math.random().toString(16).slice(2, 10);
    const opts = { protocolVersion: 5 as const, reconnectPeriod: this.reconnectPeriodMs, connectTimeout: 5000, clean: true };
    const g = mqtt.connect(this.groundUrl, { ...opts, clientId: `mavmq-mitm-g-${id}` });
    const a = mqtt.connect(this.airUrl, { ...opts, clientId: `mavmq-mitm-a-${id}` });
    this.groundSide = g;
    this.airSide = a;
    for (const c of [g, a]) c.on('error', () => undefined);
    g.on('message', (topic, payload, packet) => {
      this.stats.downIn++;
      this.down({ topic, payload: Buffer.from(payload), qos: packet.qos === 0 ? 0 : 1, retain: packet.retain }, (m) => {
        this.stats.downOut++;
        a.publish(m.topic, m.payload, { qos: m.qos, retain: m.retain });
      });
    });
    a.on('message', (topic, payload, packet) => {
      this.stats.upIn++;
      this.up({ topic, payload: Buffer.from(payload), qos: packet.qos === 0 ? 0 : 1, retain: packet.retain }, (m) => {
        this.stats.upOut++;
        g.publish(m.topic, m.payload, { qos: m.qos, retain: m.retain });
      });
    });
    await Promise.all([g, a].map((c) => new Promise<void>((resolve) => c.once('connect', () => resolve()))));
    await g.subscribeAsync(`${this.prefix}/+/down/+`, { qos: 1, rap: true });
    await a.subscribeAsync(`${this.prefix}/+/up/+`, { qos: 1, rap: true });
  }

  /** Delivers a message to the air's broker directly (e.g. one the hook withheld earlier). */
  async deliverDown(m: BridgedMessage): Promise<void> {
    if (this.airSide === null) throw new Error('mitm not started');
    this.stats.downOut++;
    await this.airSide.publishAsync(m.topic, m.payload, { qos: m.qos, retain: m.retain });
  }

  /** Delivers a message to the gateway's broker directly (e.g. one the hook withheld earlier). */
  async deliverUp(m: BridgedMessage): Promise<void> {
    if (this.groundSide === null) throw new Error('mitm not started');
    this.stats.upOut++;
    await this.groundSide.publishAsync(m.topic, m.payload, { qos: m.qos, retain: m.retain });
  }

  async stop(): Promise<void> {
    const clients = [this.groundSide, this.airSide];
    this.groundSide = this.airSide = null;
    for (const c of clients) await c?.endAsync(true).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------

export interface OpenedEnvelope {
  vehicleId: string;
  direction: 'up' | 'down';
  sessionId: string;
  counter: bigint;
  kind: string;
  body: Buffer;
  frames: Frame[];
}

/** Session id and counter straight from an envelope header (public bytes), or null if not an envelope. */
export function envelopeHeader(payload: Buffer): { sessionId: string; counter: bigint } | null {
  if (payload.length < 35 || payload[0] !== 0x01 || payload[1] !== 0x10) return null;
  return { sessionId: payload.subarray(2, 10).toString('hex'), counter: payload.readBigUInt64BE(10) };
}

/**
 * Decrypts captured envelopes with keys derived from the PSKs and the randoms of captured,
 * authentic REPLYs (what the two daemons derive). Test-side only.
 */
export class EnvelopeOracle {
  private readonly sessions = new Map<string, { vehicleId: string; keys: SessionKeys }>();
  private learnedUpTo = 0;

  constructor(
    private readonly spy: MqttSpy,
    private readonly psks: ReadonlyMap<string, SecretKey>,
    private readonly prefix = 'mavmq',
  ) {}

  /** Sessions (hex ids) learned from authentic REPLYs, oldest first. */
  get sessionIds(): string[] {
    this.learn();
    return [...this.sessions.keys()];
  }

  open(m: { topic: string; payload: Buffer }): OpenedEnvelope | null {
    this.learn();
    const t = this.parse(m.topic);
    const h = envelopeHeader(m.payload);
    if (t === null || h === null) return null;
    const s = this.sessions.get(h.sessionId);
    if (s === undefined || s.vehicleId !== t.vehicleId) return null;
    const r = openEnvelope(t.direction === 'up' ? s.keys.up : s.keys.down, { vehicleId: t.vehicleId, direction: t.direction, topic: m.topic }, m.payload);
    if (!r.ok) return null;
    const frames: Frame[] = [];
    if (r.kind === 'frames') splitFrames(r.body, (f) => frames.push(f));
    // Ground-to-air batches carry the gateway's send time (8 bytes) before the frames.
    else if (r.kind === 'commands') splitFrames(r.body.subarray(8), (f) => frames.push(f));
    return { vehicleId: t.vehicleId, direction: t.direction, sessionId: h.sessionId, counter: h.counter, kind: r.kind, body: r.body, frames };
  }

  /** Captured messages on `topic` whose (authentic) envelope carries a frame matching `pred`. */
  carrying(topic: string, pred: (f: Frame) => boolean, since = 0): SpiedMessage[] {
    return this.spy.since(since, topic).filter((m) => this.open(m)?.frames.some(pred) === true);
  }

  private parse(topic: string): { vehicleId: string; direction: 'up' | 'down' } | null {
    const parts = topic.split('/');
    if (parts.length !== 4 || parts[0] !== this.prefix) return null;
    const [, vehicleId, direction] = parts as [string, string, string, string];
    return direction === 'up' || direction === 'down' ? { vehicleId, direction } : null;
  }

  private learn(): void {
    for (; this.learnedUpTo < this.spy.messages.length; this.learnedUpTo++) {
      const m = this.spy.messages[this.learnedUpTo]!;
      if (!m.topic.endsWith('/down/handshake')) continue;
      const d = decodeHandshake(m.payload);
      if (!d.ok || d.message.type !== 'reply') continue;
      const psk = this.psks.get(d.message.vehicleId);
      if (psk === undefined || !verifyHandshakeMac(deriveHandshakeKeys(psk, d.message.vehicleId), d.message)) continue;
      const keys = deriveSessionKeys(psk, d.message.vehicleId, d.message.airRandom, d.message.groundRandom);
      this.sessions.set(keys.sessionId.toString('hex'), { vehicleId: d.message.vehicleId, keys });
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** COMMAND_LONG msgid. */
export const COMMAND_LONG = 76;
export const COMMAND_ACK = 77;

/**
 * Tagged commands: every COMMAND_LONG a test sends carries a unique tag in param7, which the
 * commands used here (DO_SET_MODE, COMPONENT_ARM_DISARM) ignore. The probe listens on the
 * simulator's transport (bytes that reached the autopilot) and counts each tag.
 */
export class CommandProbe {
  private readonly codec = new Codec(ardupilotmegaDialect());
  private readonly framers = new Map<string, Framer>();
  private readonly byTag = new Map<number, number>();
  private nextTag = 1000;
  /** COMMAND_LONG frames (any tag) that reached the autopilot. */
  commandsIn = 0;

  /** Listens on the simulator's transport; call again after the sim is replaced. */
  attach(transport: Transport): void {
    transport.on('data', (link, chunk) => {
      let framer = this.framers.get(link.id);
      if (framer === undefined) {
        framer = new Framer(this.codec.dialect);
        this.framers.set(link.id, framer);
      }
      framer.push(chunk, (frame) => {
        if (frame.msgid !== COMMAND_LONG) return;
        this.commandsIn++;
        const tag = tagOf(this.codec, frame);
        if (tag !== undefined) this.byTag.set(tag, (this.byTag.get(tag) ?? 0) + 1);
      });
    });
  }

  /** How many times the autopilot received the command with this tag. */
  received(tag: number): number {
    return this.byTag.get(tag) ?? 0;
  }

  newTag(): number {
    return this.nextTag++;
  }

  /** Sends ONE COMMAND_LONG (no retry), tagged; returns the tag. */
  send(gcs: GcsClient, command: number, params: number[] = [], tag = this.newTag()): number {
    const c = new common.CommandLong();
    c.targetSystem = gcs.targetSystem;
    c.targetComponent = gcs.targetComponent;
    c.command = command as common.MavCmd;
    c.confirmation = 0;
    [c._param1, c._param2, c._param3, c._param4, c._param5, c._param6] = [0, 1, 2, 3, 4, 5].map((i) => params[i] ?? 0) as [number, number, number, number, number, number];
    c._param7 = tag;
    gcs.send(c);
    return tag;
  }

  /** Waits until the autopilot has received the tagged command at least `n` times. */
  async waitReceived(tag: number, n = 1, timeoutMs = 10_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.received(tag) < n) {
      if (performance.now() > deadline) throw new Error(`command tag ${tag} reached the autopilot ${this.received(tag)} times, wanted ${n}`);
      await sleep(10);
    }
  }
}

function tagOf(codec: Codec, frame: Frame): number | undefined {
  const m = codec.decode<common.CommandLong>(frame);
  return m === undefined ? undefined : m._param7;
}

/** The tag of a frame if it is a tagged COMMAND_LONG (for EnvelopeOracle.carrying). */
export function isTaggedCommand(tag: number): (f: Frame) => boolean {
  const codec = new Codec(ardupilotmegaDialect());
  return (f) => f.msgid === COMMAND_LONG && tagOf(codec, f) === tag;
}
