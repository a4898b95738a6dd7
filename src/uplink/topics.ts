/**
 * The only place MQTT topics are spelled. Layout, with the vehicle id as one whole level so broker
 * ACLs can use `%u`/`%c` patterns (see config/mosquitto-acl.example):
 *
 *   {prefix}/{vehicle}/up/hello       air -> ground  handshake HELLO            QoS 1
 *   {prefix}/{vehicle}/up/telemetry   air -> ground  sealed frames (bulk)       QoS 0
 *   {prefix}/{vehicle}/up/reliable    air -> ground  sealed acks, params, mission, statustext   QoS 1
 *   {prefix}/{vehicle}/up/history     air -> ground  sealed spooled frames from a link outage (tlog only)  QoS 1
 *   {prefix}/{vehicle}/up/status      air -> ground  retained "online"/"offline" (last will)    QoS 1, retained
 *   {prefix}/{vehicle}/down/handshake ground -> air  REPLY / REHELLO            QoS 1
 *   {prefix}/{vehicle}/down/command   ground -> air  sealed frames from GCSs    QoS 1, never retained
 *
 * Status is plaintext on purpose (it is what the broker itself knows: connected or not); every
 * payload that matters is sealed, and the topic is part of each envelope's associated data.
 */
export type UpTopicKind = 'hello' | 'telemetry' | 'reliable' | 'history' | 'status';
export type DownTopicKind = 'handshake' | 'command';
export type Direction = 'up' | 'down';

export interface TopicSpec {
  qos: 0 | 1;
  retain: boolean;
}

export const UP_TOPICS: Record<UpTopicKind, TopicSpec> = {
  hello: { qos: 1, retain: false },
  telemetry: { qos: 0, retain: false },
  reliable: { qos: 1, retain: false },
  history: { qos: 1, retain: false },
  status: { qos: 1, retain: true },
};

export const DOWN_TOPICS: Record<DownTopicKind, TopicSpec> = {
  handshake: { qos: 1, retain: false },
  command: { qos: 1, retain: false },
};

export type ParsedTopic =
  | { direction: 'up'; vehicleId: string; kind: UpTopicKind }
  | { direction: 'down'; vehicleId: string; kind: DownTopicKind };

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export class Topics {
  constructor(readonly prefix: string) {}

  up(vehicleId: string, kind: UpTopicKind): string {
    return `${this.prefix}/${vehicleId}/up/${kind}`;
  }

  down(vehicleId: string, kind: DownTopicKind): string {
    return `${this.prefix}/${vehicleId}/down/${kind}`;
  }

  /** Retained online/offline of one ground gateway instance ("_gateways" cannot clash: it is not an up/down path). */
  gatewayStatus(gatewayId: string): string {
    return `${this.prefix}/_gateways/${gatewayId}/status`;
  }

  /** What the air side subscribes to. */
  airSubscriptions(vehicleId: string): string[] {
    return [this.down(vehicleId, 'handshake'), this.down(vehicleId, 'command')];
  }

  /** What the ground gateway subscribes to, for one vehicle. */
  groundSubscriptions(vehicleId: string): string[] {
    return [`${this.prefix}/${vehicleId}/up/+`];
  }

  parse(topic: string): ParsedTopic | null {
    if (!topic.startsWith(`${this.prefix}/`)) return null;
    const parts = topic.slice(this.prefix.length + 1).split('/');
    if (parts.length !== 3) return null;
    const [vehicleId, direction, kind] = parts as [string, string, string];
    if (!ID_RE.test(vehicleId)) return null;
    if (direction === 'up' && kind in UP_TOPICS) return { direction, vehicleId, kind: kind as UpTopicKind };
    if (direction === 'down' && kind in DOWN_TOPICS) return { direction, vehicleId, kind: kind as DownTopicKind };
    return null;
  }
}
