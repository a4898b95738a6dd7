import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';
import { mosquittoPasswdLine } from '../../src/cli/ops.js';
import { Topics } from '../../src/uplink/topics.js';
import { freePort } from '../fakes/mosquitto.js';

/**
 * config/mosquitto-acl.example, unmodified, in a real mosquitto (plain listener + password file
 * written by `mavmq provision`'s mosquittoPasswdLine; the TLS listener of the example config
 * identifies clients the same way, by user name). A vehicle can only write its own up topics and
 * read its own down topics; the gateway reads every up and writes every down topic.
 */
const NO_MOSQUITTO = ((): string | false => {
  try {
    execFileSync('sh', ['-c', 'command -v mosquitto'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'mosquitto is not installed (apt-get install mosquitto)';
  }
})();

const topics = new Topics('mavmq');
const PASSWORDS: Record<string, string> = { 'drone-1': 'pw-drone-1', 'drone-2': 'pw-drone-2', 'mavmq.gateway': 'pw-gateway' };
let dir = '';
let port = 0;
let broker: ChildProcess | null = null;
const clients: MqttClient[] = [];

async function canConnect(p: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(p, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

async function client(user: string): Promise<MqttClient & { got: { topic: string; payload: string }[] }> {
  const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { username: user, password: PASSWORDS[user] ?? 'wrong', protocolVersion: 5, clientId: `${user}-${clients.length}`, reconnectPeriod: 0 });
  clients.push(c);
  const got: { topic: string; payload: string }[] = [];
  c.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }));
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return Object.assign(c, { got });
}

/** PUBACK reason code of a QoS 1 publish (0 = accepted, 0x87 = not authorized). */
function publish(c: MqttClient, topic: string, payload: string, retain = false): Promise<number> {
  return new Promise((resolve, reject) => {
    c.publish(topic, payload, { qos: 1, retain }, (err, packet) => {
      if (err && (err as { code?: number }).code === undefined) reject(err);
      else resolve((err as { code?: number } | undefined)?.code ?? (packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0);
    });
  });
}

async function subscribe(c: MqttClient, filter: string): Promise<void> {
  await c.subscribeAsync(filter, { qos: 1 });
}

/** Waits until `c` got a message on `topic` (the ordering witness), then returns all it got. */
async function until(c: { got: { topic: string }[] }, topic: string): Promise<string[]> {
  for (let i = 0; i < 200; i++) {
    if (c.got.some((m) => m.topic === topic)) return c.got.map((m) => m.topic);
    await sleep(10);
  }
  throw new Error(`no message on ${topic}; got ${JSON.stringify(c.got)}`);
}

void describe('mosquitto ACL (config/mosquitto-acl.example)', { skip: NO_MOSQUITTO }, () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mavmq-acl-'));
    port = await freePort();
    await copyFile(new URL('../../config/mosquitto-acl.example', import.meta.url), join(dir, 'acl'));
    await writeFile(join(dir, 'passwd'), Object.entries(PASSWORDS).map(([u, p]) => mosquittoPasswdLine(u, p)).join('\n') + '\n', { mode: 0o600 });
    await writeFile(join(dir, 'mosquitto.conf'), [
      'per_listener_settings false', 'allow_anonymous false', `acl_file ${join(dir, 'acl')}`, `password_file ${join(dir, 'passwd')}`,
      `listener ${port} 127.0.0.1`, 'persistence false', 'log_dest stderr', 'log_type error', 'log_type warning',
      // Started as root (CI containers), mosquitto would switch to the "mosquitto" user, which cannot read our 0700 temp dir.
      ...(process.getuid?.() === 0 ? ['user root'] : []), '',
    ].join('\n'));
    broker = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    broker.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    for (let i = 0; !(await canConnect(port)); i++) {
      if (broker.exitCode !== null || i > 200) throw new Error(`mosquitto did not start: ${stderr}`);
      await sleep(25);
    }
  });

  after(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => undefined);
    if (broker && broker.exitCode === null) {
      const exited = new Promise((r) => broker?.once('exit', r));
      broker.kill('SIGKILL');
      await exited;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  void test('a vehicle cannot publish on another vehicle\'s topics (or the gateway\'s)', async () => {
    const gateway = await client('mavmq.gateway');
    await subscribe(gateway, 'mavmq/+/up/#');
    await subscribe(gateway, 'mavmq/_gateways/#');
    const d1 = await client('drone-1');

    // Forged: drone-1 pretending to be drone-2, and to be a gateway.
    assert.equal(await publish(d1, topics.up('drone-2', 'telemetry'), 'forged'), 0x87);
    assert.equal(await publish(d1, topics.up('drone-2', 'status'), 'offline', true), 0x87);
    assert.equal(await publish(d1, topics.gatewayStatus('gw'), 'offline', true), 0x87);
    assert.equal(await publish(d1, topics.down('drone-2', 'command'), 'forged'), 0x87);
    // Allowed, and the ordering witness: MQTT keeps one publisher's order, so anything forged that
    // got through would have arrived before this.
    assert.equal(await publish(d1, topics.up('drone-1', 'telemetry'), 'mine'), 0);
    const seen = await until(gateway, topics.up('drone-1', 'telemetry'));
    assert.deepEqual(seen, [topics.up('drone-1', 'telemetry')]);
  });

  void test('a vehicle reads only its own down topics, even subscribed to everything', async () => {
    const gateway = await client('mavmq.gateway');
    const d1 = await client('drone-1');
    const d2 = await client('drone-2');
    await subscribe(d1, 'mavmq/#');
    await subscribe(d2, topics.down('drone-2', 'command'));
    assert.equal(await publish(gateway, topics.down('drone-2', 'command'), 'for 2'), 0);
    assert.equal(await publish(gateway, topics.up('drone-2', 'telemetry'), 'gateway may not write up'), 0x87);
    assert.equal(await publish(gateway, topics.down('drone-1', 'command'), 'for 1'), 0);
    await until(d2, topics.down('drone-2', 'command'));
    assert.deepEqual(await until(d1, topics.down('drone-1', 'command')), [topics.down('drone-1', 'command')], 'drone-1 saw another vehicle\'s command');
  });

  void test('the gateway reads every vehicle\'s up topics and keeps its own status', async () => {
    const gateway = await client('mavmq.gateway');
    await subscribe(gateway, 'mavmq/+/up/#');
    const d2 = await client('drone-2');
    assert.equal(await publish(d2, topics.up('drone-2', 'hello'), 'hello'), 0);
    await until(gateway, topics.up('drone-2', 'hello'));
    assert.equal(await publish(gateway, topics.gatewayStatus('gw-1'), 'online', true), 0);
  });

  void test('unknown users and wrong passwords are refused (allow_anonymous false)', async () => {
    await assert.rejects(client('intruder'));
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { username: 'drone-1', password: 'nope', protocolVersion: 5, reconnectPeriod: 0 });
    clients.push(c);
    await assert.rejects(new Promise((resolve, reject) => {
      c.once('connect', resolve);
      c.once('error', reject);
    }));
    assert.match(await readFile(join(dir, 'acl'), 'utf8'), /^pattern write mavmq\/%u\/up\/#$/m);
  });
});

/**
 * config/mosquitto.example.conf itself, with only its paths and port rewritten: TLS with client
 * certificates, the CN as the user name (use_identity_as_username), and the ACL applied to it.
 */
const NO_TLS_TOOLS = NO_MOSQUITTO || ((): string | false => {
  try {
    execFileSync('sh', ['-c', 'command -v openssl'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'openssl is not installed';
  }
})();

void describe('mosquitto example config (TLS, client certificates)', { skip: NO_TLS_TOOLS }, () => {
  let tdir = '';
  let tport = 0;
  let proc: ChildProcess | null = null;
  const tclients: MqttClient[] = [];
  const pem = async (name: string): Promise<Buffer> => readFile(join(tdir, name));

  before(async () => {
    tdir = await mkdtemp(join(tmpdir(), 'mavmq-tls-'));
    tport = await freePort();
    const ossl = (args: string[]): void => void execFileSync('openssl', args, { cwd: tdir, stdio: 'ignore' });
    ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=test-ca', '-keyout', 'ca.key', '-out', 'ca.crt']);
    await writeFile(join(tdir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
    for (const cn of ['broker', 'mavmq.gateway', 'drone-1']) {
      ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${cn}.key`, '-out', `${cn}.csr`]);
      ossl(['x509', '-req', '-in', `${cn}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${cn}.crt`, ...(cn === 'broker' ? ['-extfile', 'san.ext'] : [])]);
    }
    await copyFile(new URL('../../config/mosquitto-acl.example', import.meta.url), join(tdir, 'acl'));
    const conf = (await readFile(new URL('../../config/mosquitto.example.conf', import.meta.url), 'utf8'))
      .replace('/etc/mosquitto/mavmq.acl', join(tdir, 'acl'))
      .replace(/^listener 8883$/m, `listener ${tport} 127.0.0.1`)
      .replace('/etc/mosquitto/certs/ca.crt', join(tdir, 'ca.crt'))
      .replace('/etc/mosquitto/certs/broker.crt', join(tdir, 'broker.crt'))
      .replace('/etc/mosquitto/certs/broker.key', join(tdir, 'broker.key'))
      .replace(/^persistence true$/m, 'persistence false')
      .replace(/^persistence_location .*$/m, '');
    assert.deepEqual(conf.split('\n').filter((l) => !l.trimStart().startsWith('#') && l.includes('/etc/mosquitto')), [], 'every active path rewritten');
    await writeFile(join(tdir, 'mosquitto.conf'), `${conf}\nlog_dest stderr\n${process.getuid?.() === 0 ? 'user root\n' : ''}`);
    proc = spawn('mosquitto', ['-c', join(tdir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    for (let i = 0; !(await canConnect(tport)); i++) {
      if (proc.exitCode !== null || i > 200) throw new Error(`mosquitto did not start with the example config: ${stderr}`);
      await sleep(25);
    }
  });

  after(async () => {
    for (const c of tclients) await c.endAsync(true).catch(() => undefined);
    if (proc && proc.exitCode === null) {
      const exited = new Promise((r) => proc?.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
    }
    if (tdir) await rm(tdir, { recursive: true, force: true });
  });

  async function tlsClient(cn: string | null): Promise<MqttClient & { got: { topic: string }[] }> {
    const c = mqtt.connect(`mqtts://127.0.0.1:${tport}`, {
      ca: await pem('ca.crt'), ...(cn ? { cert: await pem(`${cn}.crt`), key: await pem(`${cn}.key`) } : {}),
      protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, clientId: `${cn ?? 'anon'}-${tclients.length}`,
    });
    tclients.push(c);
    const got: { topic: string }[] = [];
    c.on('message', (topic) => got.push({ topic }));
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve());
      c.once('error', reject);
      c.once('close', () => reject(new Error('closed')));
    });
    return Object.assign(c, { got });
  }

  void test('the certificate CN is the user: drone-1 writes only its own topics', async () => {
    const gateway = await tlsClient('mavmq.gateway');
    await gateway.subscribeAsync('mavmq/+/up/#', { qos: 1 });
    const d1 = await tlsClient('drone-1');
    assert.equal(await publish(d1, topics.up('drone-2', 'telemetry'), 'forged'), 0x87);
    assert.equal(await publish(d1, topics.up('drone-1', 'telemetry'), 'mine'), 0);
    assert.deepEqual(await until(gateway, topics.up('drone-1', 'telemetry')), [topics.up('drone-1', 'telemetry')]);
  });

  void test('no client certificate, no connection', async () => {
    await assert.rejects(tlsClient(null));
  });
});
