import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { HealthServer, airHealth, groundHealth, parseHttpAddr, toJson, type HealthReport } from '../../src/obs/health-server.js';
import { sampleFromAir, sampleFromGround } from '../../src/obs/metrics.js';
import { ErrorCodes, MavmqError } from '../../src/errors.js';

import { fakeAirSnapshot, fakeGroundSnapshot, link } from './fixtures.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, path: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const servers: HealthServer[] = [];
after(async () => {
  for (const s of servers) await s.stop();
});

async function startServer(opts: Partial<ConstructorParameters<typeof HealthServer>[0]> = {}): Promise<{ server: HealthServer; port: number; setHealth: (h: HealthReport) => void }> {
  let health: HealthReport = { ok: true, reasons: [] };
  const snap = fakeAirSnapshot();
  const server = new HealthServer({
    listen: '127.0.0.1:0', role: 'air', version: '9.9.9',
    health: () => health, snapshot: () => snap, metrics: () => sampleFromAir(snap, { policy: { allow: 10, deny: 3 }, spool: { bytes: 2048, messages: 7 } }),
    ...opts,
  });
  servers.push(server);
  await server.start();
  return { server, port: server.address!.port, setHealth: (h) => (health = h) };
}

void describe('--http address', () => {
  void test('loopback unless an address is written', () => {
    assert.deepEqual(parseHttpAddr(':9180'), { host: '127.0.0.1', port: 9180 });
    assert.deepEqual(parseHttpAddr('9180'), { host: '127.0.0.1', port: 9180 });
    assert.deepEqual(parseHttpAddr('127.0.0.1:9180'), { host: '127.0.0.1', port: 9180 });
    assert.deepEqual(parseHttpAddr('0.0.0.0:9180'), { host: '0.0.0.0', port: 9180 });
    assert.deepEqual(parseHttpAddr('[::1]:9181'), { host: '::1', port: 9181 });
    assert.deepEqual(parseHttpAddr('localhost:9180'), { host: 'localhost', port: 9180 });
    for (const bad of ['127.0.0.1', '127.0.0.1:99999', 'host:port', '::1:9180', 'a b:1', '']) {
      assert.throws(() => parseHttpAddr(bad), (e: unknown) => e instanceof MavmqError && e.code === ErrorCodes.USAGE, bad);
    }
  });
});

void describe('HealthServer', () => {
  void test('the constructor does nothing: no socket, no prom-client', async () => {
    // In a fresh process: importing the module and constructing the server must not load prom-client
    // (~11 MB RSS); start() does.
    const script = `
      import { createRequire } from 'node:module';
      const { HealthServer } = await import(${JSON.stringify(new URL('../../src/obs/health-server.ts', import.meta.url).href)});
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/prom-client/'));
      const s = new HealthServer({ listen: '127.0.0.1:0', role: 'air', health: () => ({ ok: true, reasons: [] }), snapshot: () => ({}) });
      const before = loaded();
      const rss0 = process.memoryUsage().rss;
      await s.start();
      const after = loaded();
      const rss1 = process.memoryUsage().rss;
      await s.stop();
      console.log(JSON.stringify({ before, after, rssMb: Math.round((rss1 - rss0) / 1e6) }));
    `;
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
    });
    const r = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { before: boolean; after: boolean; rssMb: number };
    assert.equal(r.before, false, 'prom-client loaded before start()');
    assert.equal(r.after, true, 'prom-client not loaded by start()');
  });

  void test('/health: 200 ok, 503 with the reasons, 503 when the check throws', async () => {
    const { port, setHealth } = await startServer();
    let r = await get(port, '/health');
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { status: 'ok' });
    assert.match(String(r.headers['content-type']), /application\/json/);
    assert.equal(r.headers['cache-control'], 'no-store');
    setHealth({ ok: false, reasons: ['autopilot link serial:///dev/autopilot is not open'] });
    r = await get(port, '/health');
    assert.equal(r.status, 503);
    assert.deepEqual(JSON.parse(r.body), { status: 'degraded', reasons: ['autopilot link serial:///dev/autopilot is not open'] });

    const thrower = await startServer({ health: () => { throw new Error('boom'); } });
    r = await get(thrower.port, '/health');
    assert.equal(r.status, 503);
    assert.match(r.body, /health check failed: boom/);
  });

  void test('/status: role, version, pid, health and the snapshot (bigints as strings)', async () => {
    const { port } = await startServer({ snapshot: () => ({ big: 2n ** 70n, nested: { ok: true } }) });
    const r = await get(port, '/status');
    assert.equal(r.status, 200);
    const doc = JSON.parse(r.body) as Record<string, unknown>;
    assert.equal(doc['role'], 'air');
    assert.equal(doc['version'], '9.9.9');
    assert.equal(doc['pid'], process.pid);
    assert.equal(typeof doc['monoNowMs'], 'number');
    assert.deepEqual(doc['health'], { ok: true, reasons: [] });
    assert.deepEqual(doc['snapshot'], { big: (2n ** 70n).toString(), nested: { ok: true } });

    const notStarted = await startServer({ snapshot: () => { throw new Error('AirApp not started'); } });
    const r2 = await get(notStarted.port, '/status');
    assert.equal(r2.status, 503);
    assert.match(r2.body, /AirApp not started/);
  });

  void test('/metrics: link, broker, session, rejection, policy, spool and process metrics', async () => {
    const { port } = await startServer();
    const r = await get(port, '/metrics');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /text\/plain/);
    const m = r.body;
    const expectLine = (re: RegExp): void => assert.match(m, re, `missing ${String(re)}`);
    expectLine(/^# TYPE mavmq_link_frames_total counter$/m);
    expectLine(/^mavmq_link_frames_total\{role="autopilot",name="autopilot",vehicle=""\} 5000$/m);
    expectLine(/^mavmq_link_receive_bytes_total\{role="autopilot",name="autopilot",vehicle=""\} 200000$/m);
    expectLine(/^mavmq_link_crc_errors_total\{role="endpoint",name="local-gcs",vehicle=""\} 7$/m);
    expectLine(/^mavmq_link_loss_percent\{role="endpoint",name="local-gcs",vehicle=""\} 0.99$/m);
    expectLine(/^mavmq_link_queue_drops_total\{role="endpoint",name="apps",vehicle=""\} 3$/m);
    expectLine(/^mavmq_link_up\{role="endpoint",name="apps",vehicle=""\} 0$/m);
    expectLine(/^mavmq_mqtt_connected 1$/m);
    expectLine(/^mavmq_mqtt_qos0_dropped_offline_total 4$/m);
    expectLine(/^mavmq_session_established\{vehicle="self"\} 1$/m);
    expectLine(/^mavmq_sessions_total\{vehicle="self"\} 2$/m);
    expectLine(/^mavmq_envelopes_rejected_total\{vehicle="self",reason="auth-failed"\} 2$/m);
    expectLine(/^mavmq_envelopes_rejected_total\{vehicle="self",reason="replay"\} 1$/m);
    expectLine(/^mavmq_relay_frames_refused_total 3$/m);
    expectLine(/^mavmq_policy_verdicts_total\{verdict="deny"\} 3$/m);
    expectLine(/^mavmq_spool_bytes 2048$/m);
    expectLine(/^mavmq_spool_messages 7$/m);
    expectLine(/^mavmq_autopilot_heartbeat_age_seconds 0\.\d+$/m);
    expectLine(/^mavmq_router_frames_total\{vehicle=""\} 9000$/m);
    expectLine(/^mavmq_info\{role="air"\} 1$/m);
    // prom-client's defaults: RSS and event-loop lag.
    expectLine(/^process_resident_memory_bytes \d+$/m);
    expectLine(/^nodejs_eventloop_lag_seconds [\d.e-]+$/m);
    expectLine(/^nodejs_eventloop_lag_p99_seconds [\d.e-]+$/m);
  });

  void test('/metrics for the ground: per-vehicle series', async () => {
    const snap = fakeGroundSnapshot();
    const { port } = await startServer({ role: 'ground', snapshot: () => snap, metrics: () => sampleFromGround(snap), defaultMetrics: false });
    const m = (await get(port, '/metrics')).body;
    assert.match(m, /^mavmq_vehicle_online\{vehicle="drone-1"\} 1$/m);
    assert.match(m, /^mavmq_relay_rtt_seconds\{vehicle="drone-1"\} 0.0855$/m);
    assert.match(m, /^mavmq_relay_loss_percent\{vehicle="drone-1"\} 0.99$/m);
    assert.match(m, /^mavmq_link_frames_total\{role="gcs",name="qgc",vehicle="drone-1"\} 1000$/m);
    assert.match(m, /^mavmq_envelopes_rejected_total\{vehicle="drone-1",reason="replay"\} 1$/m);
    assert.doesNotMatch(m, /process_resident_memory_bytes/, 'defaultMetrics: false');
    assert.doesNotMatch(m, /mavmq_spool_bytes \d/, 'no spool input, no spool sample');
  });

  void test('a failing snapshot does not break /metrics: it is counted', async () => {
    const { port } = await startServer({ metrics: () => { throw new Error('not started'); }, defaultMetrics: false });
    const m = (await get(port, '/metrics')).body;
    assert.match(m, /^mavmq_snapshot_errors_total 1$/m);
    assert.doesNotMatch(m, /^mavmq_link_frames_total\{/m);
  });

  void test('unknown paths 404, other methods 405, HEAD has no body', async () => {
    const { port } = await startServer();
    assert.equal((await get(port, '/nope')).status, 404);
    const post = await get(port, '/health', 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers['allow'], 'GET, HEAD');
    const head = await get(port, '/health', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  void test('a taken port is a clear usage error; stop() closes keep-alive connections', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    const s = new HealthServer({ listen: `127.0.0.1:${port}`, role: 'air', health: () => ({ ok: true, reasons: [] }), snapshot: () => ({}) });
    await assert.rejects(s.start(), (e: unknown) => e instanceof MavmqError && e.code === ErrorCodes.USAGE && /EADDRINUSE/.test(e.message) && /another mavmq/.test(e.problems[0]?.hint ?? ''));
    await new Promise<void>((r) => blocker.close(() => r()));

    const { server, port: p2 } = await startServer({ defaultMetrics: false });
    // A keep-alive client must not hold stop() open.
    const { Agent } = await import('node:http');
    const agent = new Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      request({ host: '127.0.0.1', port: p2, path: '/health', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      }).on('error', reject).end();
    });
    const t0 = performance.now();
    await server.stop();
    assert.ok(performance.now() - t0 < 1000, 'stop() waited for an idle keep-alive connection');
    agent.destroy();
    await assert.rejects(get(p2, '/health'));
  });
});

void describe('what healthy means', () => {
  void test('air: link closed, no/old heartbeat, broker down, no session are reasons', () => {
    const now = performance.now();
    assert.deepEqual(airHealth(fakeAirSnapshot(), { nowMs: now }), { ok: true, reasons: [] });
    const bad = airHealth(fakeAirSnapshot({
      autopilot: link('autopilot', { connected: false, url: 'serial:///dev/autopilot', lastError: 'ENOENT' }),
      autopilotState: { sysid: 1, compid: 1, autopilot: 3, type: 2, baseMode: 0, customMode: 0, systemStatus: 4, armed: false, lastHeartbeatMs: now - 9000 },
      mqtt: { connected: false, connects: 0, published: 0, publishErrors: 0, received: 0, outboxBytes: 0, outboxDropped: 0, qos0DroppedOffline: 0, lastError: 'ECONNREFUSED' },
    }), { nowMs: now });
    assert.equal(bad.ok, false);
    assert.deepEqual(bad.reasons, ['autopilot link serial:///dev/autopilot is not open: ENOENT', 'no autopilot HEARTBEAT for 9 s', 'MQTT broker not connected: ECONNREFUSED']);
    const noSession = airHealth(fakeAirSnapshot({ autopilotState: null, relay: { ...fakeAirSnapshot().relay, sessionId: null } }), { nowMs: now });
    assert.equal(noSession.reasons.length, 2);
    assert.match(noSession.reasons.join('\n'), /no autopilot HEARTBEAT yet[\s\S]*no end-to-end session/);
    // A pure local router (no mqtt section) has no broker or session to complain about.
    assert.deepEqual(airHealth(fakeAirSnapshot({ mqtt: null, relay: null }), { nowMs: now }), { ok: true, reasons: [] });
  });

  void test('ground: only the broker (vehicles being off is normal)', () => {
    const s = fakeGroundSnapshot();
    assert.deepEqual(groundHealth(s), { ok: true, reasons: [] });
    const off = { ...s, mqtt: { ...s.mqtt, connected: false, lastError: 'not authorized' } };
    assert.deepEqual(groundHealth(off), { ok: false, reasons: ['MQTT broker not connected: not authorized'] });
  });

  void test('toJson survives bigints and cycles', () => {
    const a: Record<string, unknown> = { n: 1n };
    a['self'] = a;
    assert.equal(toJson(a), '{"n":"1","self":"[circular]"}');
  });
});
