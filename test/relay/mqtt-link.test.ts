import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt from 'mqtt';
import { Mosquitto } from '../fakes/mosquitto.js';
import { MqttLink } from '../../src/uplink/mqtt-client.js';
import { mqttSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/obs/logger.js';

/** The MQTT link against a real mosquitto: offline behaviour, bounds, retained status and will. */
const broker = new Mosquitto();
before(() => broker.start());
after(() => broker.dispose());

async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(20);
  }
}

function spy(url: string, topic: string): Promise<{ client: mqtt.MqttClient; got: { topic: string; payload: string; retain: boolean }[] }> {
  const client = mqtt.connect(url, { reconnectPeriod: 200 });
  const got: { topic: string; payload: string; retain: boolean }[] = [];
  client.on('message', (t, p, packet) => got.push({ topic: t, payload: p.toString(), retain: packet.retain }));
  return new Promise((resolve) => client.on('connect', () => client.subscribe(topic, { qos: 1 }, () => resolve({ client, got }))));
}

test('while the broker is away QoS 1 is held (bounded, oldest dropped) and QoS 0 is dropped; all flushed in order on return', async () => {
  const ac = new AbortController();
  const link = new MqttLink({
    config: mqttSchema.parse({ url: broker.url, reconnectPeriodMs: 200 }), clientId: 'link-test', logger: silentLogger(),
    statusTopic: 't/v1/up/status', subscriptions: [], maxOutboxBytes: 50,
  });
  await link.start(ac.signal);
  await until(() => link.connected);
  await broker.stop();
  await until(() => !link.connected);
  for (let i = 0; i < 10; i++) link.publish('t/v1/up/reliable', Buffer.from(`r${i}`.padEnd(10, '.')), 1);
  for (let i = 0; i < 5; i++) link.publish('t/v1/up/telemetry', Buffer.from(`t${i}`), 0);
  const s = link.stats();
  assert.equal(s.qos0DroppedOffline, 5);
  assert.equal(s.outboxDropped, 5, '10 messages of 10 bytes into a 50-byte outbox: the 5 oldest go');
  assert.ok(s.outboxBytes <= 50);
  await broker.start();
  const { client, got } = await spy(broker.url, 't/v1/up/#');
  await until(() => link.connected);
  await until(() => got.filter((g) => g.topic.endsWith('reliable')).length >= 5);
  assert.deepEqual(got.filter((g) => g.topic.endsWith('reliable')).map((g) => g.payload.slice(0, 2)), ['r5', 'r6', 'r7', 'r8', 'r9']);
  ac.abort();
  await link.stop();
  client.end(true);
});

test('retained status: online on connect, offline on clean stop, offline by last will on a crash', async () => {
  const ac = new AbortController();
  const mk = (id: string): MqttLink => new MqttLink({
    config: mqttSchema.parse({ url: broker.url, keepaliveS: 5 }), clientId: id, logger: silentLogger(), statusTopic: `t/${id}/up/status`, subscriptions: [],
  });
  const a = mk('va');
  await a.start(ac.signal);
  await until(() => a.connected);
  const { client, got } = await spy(broker.url, 't/+/up/status');
  await until(() => got.some((g) => g.topic === 't/va/up/status' && g.payload === 'online'));
  await a.stop();
  await until(() => got.some((g) => g.topic === 't/va/up/status' && g.payload === 'offline'));
  // A crash: the socket dies without DISCONNECT, so the broker publishes the will.
  const b = mk('vb');
  await b.start(ac.signal);
  await until(() => got.some((g) => g.topic === 't/vb/up/status' && g.payload === 'online'));
  (b as unknown as { client: mqtt.MqttClient }).client.stream.destroy();
  (b as unknown as { client: mqtt.MqttClient }).client.options.reconnectPeriod = 0;
  await until(() => got.some((g) => g.topic === 't/vb/up/status' && g.payload === 'offline'), 15_000);
  // A newcomer sees the retained state.
  const late = await spy(broker.url, 't/vb/up/status');
  await until(() => late.got.length > 0);
  assert.equal(late.got[0]!.payload, 'offline');
  assert.equal(late.got[0]!.retain, true);
  ac.abort();
  await b.stop();
  client.end(true);
  late.client.end(true);
});
