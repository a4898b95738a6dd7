import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt';
import type { MqttConfig } from '../config/schema.js';
import type { Logger } from '../obs/logger.js';
import { MavmqError, ErrorCodes } from '../errors.js';

/**
 * mqtt.js wrapped with the settings a cellular link needs and with OUR bounded outbox: mqtt.js
 * would queue offline QoS 1 publishes without limit, so while disconnected we hold them ourselves
 * (drop-oldest beyond the byte cap, counted) and QoS 0 is dropped (queueQoSZero: false).
 */
export interface WillSpec {
  topic: string;
  payload: string;
}

export interface MqttLinkOptions {
  config: MqttConfig;
  clientId: string;
  logger: Logger;
  /** Retained status: `birth` published on every connect, `will` left with the broker. */
  statusTopic: string;
  subscriptions: string[];
  maxOutboxBytes?: number;
  /** Bytes waiting in the socket beyond which QoS 0 telemetry is dropped (slow link). */
  maxSocketBacklogBytes?: number;
}

export interface MqttLinkStats {
  connected: boolean;
  connects: number;
  published: number;
  publishErrors: number;
  received: number;
  outboxBytes: number;
  outboxDropped: number;
  qos0DroppedOffline: number;
  qos0DroppedBacklog: number;
  lastError: string | null;
}

export interface MqttLinkEvents {
  message: [topic: string, payload: Buffer];
  connect: [];
  offline: [];
}

interface Queued {
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  retain: boolean;
}

export class MqttLink extends EventEmitter<MqttLinkEvents> {
  private client: MqttClient | null = null;
  private readonly outbox: Queued[] = [];
  private outboxBytes = 0;
  private readonly maxOutboxBytes: number;
  private readonly counters = { connects: 0, published: 0, publishErrors: 0, received: 0, outboxDropped: 0, qos0DroppedOffline: 0, qos0DroppedBacklog: 0 };
  private readonly maxSocketBacklogBytes: number;
  private lastError: string | null = null;
  private stopping: Promise<void> | null = null;

  constructor(private readonly opts: MqttLinkOptions) {
    super();
    this.maxOutboxBytes = opts.maxOutboxBytes ?? 4 * 1024 * 1024;
    this.maxSocketBacklogBytes = opts.maxSocketBacklogBytes ?? 256 * 1024;
  }

  start(signal: AbortSignal): Promise<void> {
    const { config, logger } = this.opts;
    const options: IClientOptions = {
      clientId: this.opts.clientId,
      protocolVersion: config.protocolVersion,
      keepalive: config.keepaliveS,
      reconnectPeriod: config.reconnectPeriodMs,
      connectTimeout: config.connectTimeoutMs,
      clean: true,
      queueQoSZero: false,
      resubscribe: true,
      rejectUnauthorized: config.rejectUnauthorized,
      will: { topic: this.opts.statusTopic, payload: Buffer.from('offline'), qos: 1, retain: true },
      ...(config.username !== undefined ? { username: config.username } : {}),
      ...(config.password !== undefined ? { password: config.password } : {}),
      ...readTls(config),
    };
    const client = mqtt.connect(config.url, options);
    this.client = client;
    client.on('connect', () => {
      // Envelopes are already batched (batching.maxDelayMs): Nagle on top would hold every publish
      // until the previous one is ACKed, i.e. up to the 40 ms delayed ACK of the broker's kernel
      // (an RTT on a cellular link). The stream is new on every (re)connect; ws streams lack it.
      (client.stream as { setNoDelay?: (noDelay: boolean) => unknown } | undefined)?.setNoDelay?.(true);
      this.counters.connects++;
      logger.info({ broker: config.url, connects: this.counters.connects }, 'broker connected');
      client.subscribe(this.opts.subscriptions, { qos: 1 }, (err) => {
        if (err) logger.warn({ err: err.message }, 'subscribe failed');
      });
      client.publish(this.opts.statusTopic, 'online', { qos: 1, retain: true });
      this.flushOutbox();
      this.emit('connect');
    });
    client.on('message', (topic, payload) => {
      this.counters.received++;
      this.emit('message', topic, payload);
    });
    client.on('offline', () => {
      logger.warn({ broker: config.url }, 'broker unreachable; holding QoS 1 traffic in the outbox');
      this.emit('offline');
    });
    client.on('error', (err) => {
      if (this.lastError !== err.message) logger.warn({ err: err.message }, 'mqtt error');
      this.lastError = err.message;
    });
    signal.addEventListener('abort', () => void this.stop(), { once: true });
    return Promise.resolve();
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  /** Non-blocking publish. Offline: QoS 0 is dropped (stale telemetry is worthless), QoS 1 is held. */
  publish(topic: string, payload: Buffer, qos: 0 | 1, retain = false): void {
    if (!this.connected) {
      if (qos === 0) {
        this.counters.qos0DroppedOffline++;
        return;
      }
      this.enqueue({ topic, payload, qos, retain });
      return;
    }
    // A connected but slow link (poor cellular) backs up in the socket: telemetry beyond the cap is
    // dropped here rather than queued without bound (QoS 1 still goes; the broker paces it).
    if (qos === 0 && (this.client?.stream?.writableLength ?? 0) > this.maxSocketBacklogBytes) {
      this.counters.qos0DroppedBacklog++;
      return;
    }
    this.send({ topic, payload, qos, retain });
  }

  /** Idempotent: the abort signal and an explicit stop() share one shutdown. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const client = this.client;
    if (!client) return;
    if (client.connected) {
      // A clean shutdown says so itself (bounded wait); the will covers the unclean ones.
      await Promise.race([
        new Promise<void>((resolve) => client.publish(this.opts.statusTopic, 'offline', { qos: 1, retain: true }, () => resolve())),
        new Promise<void>((resolve) => setTimeout(resolve, 1000).unref()),
      ]);
    }
    await client.endAsync(true).catch(() => undefined);
    this.client = null;
  }

  stats(): MqttLinkStats {
    return { connected: this.connected, ...this.counters, outboxBytes: this.outboxBytes, lastError: this.lastError };
  }

  private send(q: Queued): void {
    this.client?.publish(q.topic, q.payload, { qos: q.qos, retain: q.retain }, (err) => {
      if (err) {
        this.counters.publishErrors++;
        this.lastError = err.message;
      }
    });
    this.counters.published++;
  }

  private enqueue(q: Queued): void {
    this.outbox.push(q);
    this.outboxBytes += q.payload.length;
    while (this.outboxBytes > this.maxOutboxBytes && this.outbox.length > 0) {
      const dropped = this.outbox.shift();
      this.outboxBytes -= dropped?.payload.length ?? 0;
      this.counters.outboxDropped++;
    }
  }

  private flushOutbox(): void {
    while (this.outbox.length > 0 && this.connected) {
      const q = this.outbox.shift() as Queued;
      this.outboxBytes -= q.payload.length;
      this.send(q);
    }
  }
}

function readTls(config: MqttConfig): Pick<IClientOptions, 'ca' | 'cert' | 'key'> {
  const read = (file: string | undefined, what: string): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new MavmqError(ErrorCodes.CONFIG_INVALID, `cannot read MQTT ${what} ${file}`, {
        cause: err, problems: [{ path: `mqtt.${what}File`, message: (err as Error).message, hint: 'check the path and permissions' }],
      });
    }
  };
  const ca = read(config.caFile, 'ca');
  const cert = read(config.certFile, 'cert');
  const key = read(config.keyFile, 'key');
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}
