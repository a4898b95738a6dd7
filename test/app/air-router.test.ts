import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { minimal } from 'node-mavlink';
import { PtyPair } from '../fakes/pty.js';
import { GcsClient } from '../fakes/gcs-client.js';
import { freePort } from '../fakes/mosquitto.js';
import { airConfigSchema } from '../../src/config/schema.js';
import { AirApp } from '../../src/app/air.js';
import { createTransport } from '../../src/link/index.js';
import { SimAutopilot } from '../../src/sim/index.js';
import { silentLogger } from '../../src/obs/logger.js';
import { ardupilotmegaDialect } from '../../src/mavlink/dialect.js';
import { Framer, type Frame } from '../../src/mavlink/framer.js';
import { parseTlog } from '../../src/mavlink/tlog.js';

/**
 * `mavmq air` as a local router (no broker), all real: the simulated autopilot on one end of a
 * pseudo-terminal pair, the air side on the other at 921600, a UDP endpoint and a TCP endpoint.
 */
const pty = new PtyPair();
let sim: SimAutopilot;
let air: AirApp;
let udp: Socket;
const udpFrames: { atMs: number; frame: Frame }[] = [];
let tcpPort = 0;
const gcs = new GcsClient();

before(async () => {
  await pty.start();
  sim = new SimAutopilot({ link: `serial://${pty.pathA}?baud=921600`, logger: silentLogger(), transportFactory: createTransport, sim: { speedup: 4, gpsDelayMs: 500 } });
  await sim.start(new AbortController().signal);
  udp = createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  const framer = new Framer(ardupilotmegaDialect());
  udp.on('message', (m) => framer.push(m, (frame) => udpFrames.push({ atMs: performance.now(), frame })));
  tcpPort = await freePort();
  air = new AirApp(airConfigSchema.parse({
    link: { url: `serial://${pty.pathB}?baud=921600` },
    endpoints: [{ url: `udp://127.0.0.1:${udp.address().port}` }, { url: `tcp-listen://127.0.0.1:${tcpPort}` }],
    companion: { messageRatesHz: { ATTITUDE: 25 } },
    tlog: { dir: join(pty.dir, 'tlog'), flushIntervalMs: 100 },
  }), { logger: silentLogger(), createTransport });
  await air.start(new AbortController().signal);
  await gcs.connect(tcpPort);
});

after(async () => {
  gcs.close();
  await air.stop();
  await sim.stop();
  udp.close();
  await pty.dispose();
});

test('autopilot telemetry reaches every local endpoint', async () => {
  await gcs.waitFor<minimal.Heartbeat>('HEARTBEAT', (h) => h.autopilot === 3, 10_000, 0);
  for (let i = 0; i < 100 && !udpFrames.some((f) => f.frame.msgid === 0 && f.frame.sysid === 1 && f.frame.compid === 1); i++) await sleep(50);
  assert.ok(udpFrames.some((f) => f.frame.msgid === 0 && f.frame.compid === 1), 'UDP endpoint got the autopilot heartbeat');
});

test('the companion announces itself as component 191', async () => {
  const hb = await gcs.waitFor<minimal.Heartbeat>('HEARTBEAT', (h) => h.type === 18, 5_000, 0);
  assert.equal(hb.autopilot, 8);
  const frame = gcs.rx.find((r) => r.name === 'HEARTBEAT' && (r.msg as minimal.Heartbeat).type === 18)!.frame;
  assert.equal(frame.compid, 191);
  assert.equal(frame.sysid, 1, 'the companion shares its vehicle\'s system id');
});

test('the configured message rate is requested from the autopilot', async () => {
  await sleep(2500);
  const since = performance.now() - 2000;
  const attitude = udpFrames.filter((f) => f.frame.msgid === 30 && f.atMs >= since).length;
  assert.ok(attitude >= 35, `ATTITUDE at ${attitude / 2} Hz, asked for 25 Hz`);
});

test('a command from the TCP GCS is answered there and not sprayed to other endpoints', async () => {
  const udpAcksBefore = udpFrames.filter((f) => f.frame.msgid === 77 && f.frame.compid === 1).length;
  const result = await gcs.command(511, [33, 200_000]); // SET_MESSAGE_INTERVAL GLOBAL_POSITION_INT 5 Hz
  assert.equal(result, 0);
  await sleep(300);
  const udpAcksAfter = udpFrames.filter((f) => f.frame.msgid === 77 && f.frame.compid === 1).length;
  assert.equal(udpAcksAfter, udpAcksBefore, 'the ack is for 255/190 behind the TCP endpoint only');
  const snap = air.snapshot();
  assert.ok(snap.router.targeted > 0);
});

test('unplug and replug of the autopilot serial device while streaming: back within 2 s, no restart', async () => {
  await pty.kill();
  await sleep(1500);
  const before = air.snapshot().autopilot.reconnects;
  await pty.restart();
  const back = performance.now();
  const mark = gcs.mark;
  await gcs.waitFor<minimal.Heartbeat>('HEARTBEAT', (h) => h.autopilot === 3, 8_000, mark);
  // The heartbeat is 1 Hz: the link is back when frames of any kind flow again.
  const firstFrame = gcs.rx.slice(mark).find((r) => r.frame.compid === 1);
  assert.ok(firstFrame);
  assert.ok(firstFrame.atMs - back < 2500, `first frame ${Math.round(firstFrame.atMs - back)} ms after the device returned`);
  assert.ok(air.snapshot().autopilot.reconnects >= before);
});

test('the flight recorder holds autopilot and GCS frames in tlog format', async () => {
  await sleep(300);
  const dir = join(pty.dir, 'tlog');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.tlog'));
  const recs = (await Promise.all(files.map(async (f) => parseTlog(await readFile(join(dir, f)))))).flat();
  assert.ok(recs.length > 100);
  assert.ok(recs.some((r) => r.frame[0] === 0xfd && r.frame[5] === 1 && r.frame[6] === 1), 'autopilot frames');
  assert.ok(recs.some((r) => r.frame[5] === 255), 'GCS frames');
  const nowUs = BigInt(Date.now()) * 1000n;
  assert.ok(recs.every((r) => r.timestampUs > nowUs - 600_000_000n && r.timestampUs <= nowUs), 'timestamps are recent microseconds');
});
