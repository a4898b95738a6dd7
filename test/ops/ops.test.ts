import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { pbkdf2Sync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile, appendFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DaemonOps, OPS_COMMANDS, mosquittoPasswdLine, renderStatus } from '../../src/cli/ops.js';
import { SdNotifier } from '../../src/obs/sd-notify.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AirSnapshot } from '../../src/app/air.js';
import { COMMANDS, type CliIo, type Command } from '../../src/cli/commands.js';
import { runCli } from '../../src/cli/main.js';
import { checkConfigFile, loadAirConfig } from '../../src/config/loader.js';
import { readKeyFile, readPreviousKeyFile, writeKeyFile, generateKey } from '../../src/crypto/keys.js';
import { pskFingerprint } from '../../src/crypto/hkdf.js';
import { MavmqError, exitCodeFor, formatProblems } from '../../src/errors.js';
import { HealthServer, airHealth, type StatusDocument } from '../../src/obs/health-server.js';
import { silentLogger } from '../../src/obs/logger.js';
import { freePort } from '../fakes/mosquitto.js';
import { fakeAirSnapshot, fakeGroundSnapshot } from './fixtures.js';

interface Ran {
  code: number;
  out: string;
  err: string;
}

/**
 * Runs `mavmq ARGV` in-process. Through the real CLI (runCli) once commands.ts registers
 * OPS_COMMANDS; until then with the same parsing and error handling as src/cli/main.ts.
 */
async function mavmq(argv: string[]): Promise<Ran> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (s) => out.push(s), err: (s) => err.push(s), env: {}, makeLogger: () => silentLogger(), untilSignal: () => Promise.resolve() };
  let code: number;
  if (COMMANDS.some((c) => c.name === 'provision')) {
    code = await runCli(argv, io);
  } else {
    const two = `${argv[0] ?? ''} ${argv[1] ?? ''}`;
    const cmd: Command | undefined = OPS_COMMANDS.find((c) => c.name === two) ?? OPS_COMMANDS.find((c) => c.name === argv[0]);
    assert.ok(cmd, `no command in ${argv.join(' ')}`);
    const rest = argv.slice(cmd.name.split(' ').length);
    const options: ParseArgsConfig['options'] = {};
    for (const [name, o] of Object.entries(cmd.options)) options[name] = { type: o.type, ...(o.multiple ? { multiple: true } : {}) };
    const parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
    try {
      code = await cmd.run({ values: parsed.values, positionals: parsed.positionals }, io);
    } catch (e) {
      err.push(e instanceof MavmqError ? `${e.message}\n${formatProblems(e.problems)}` : String(e));
      code = exitCodeFor(e);
    }
  }
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const dirs: string[] = [];
const servers: HealthServer[] = [];
after(async () => {
  for (const s of servers) await s.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'mavmq-ops-'));
  dirs.push(d);
  return d;
}
const mode = async (p: string): Promise<number> => (await stat(p)).mode & 0o777;

async function serve(role: 'air' | 'ground', snapshot: unknown, health = { ok: true, reasons: [] as string[] }): Promise<number> {
  const s = new HealthServer({ listen: '127.0.0.1:0', role, version: '0.1.0', health: () => health, snapshot: () => snapshot, defaultMetrics: false });
  servers.push(s);
  await s.start();
  return s.address!.port;
}

void describe('mavmq status', () => {
  void test('air: a table of what the daemon sees', async () => {
    const port = await serve('air', fakeAirSnapshot());
    const r = await mavmq(['status', '--http', `127.0.0.1:${port}`]);
    assert.equal(r.code, 0, r.err);
    for (const want of [
      `mavmq air 0.1.0 on 127.0.0.1:${port}`, 'health: OK',
      'AUTOPILOT   serial:///dev/autopilot?baud=921600  open  sys 1 comp 1, ArduPilot quadrotor, disarmed, heartbeat',
      'frames 5000', 'crc errors 7', 'loss 0.99 %',
      'ENDPOINTS', 'local-gcs', 'CLOSED', 'EADDRINUSE',
      'BROKER      connected', 'telemetry dropped offline 4',
      'SESSION     ab12cd34ef567890  handshakes 2', 'unsent (no session) 5',
      'REFUSED     3 command frames refused by the policy',
      'REJECTED    auth-failed 2, replay 1',
      'RECORDER    /var/lib/mavmq/tlog/000001-x.tlog',
    ]) assert.ok(r.out.includes(want), `missing "${want}" in:\n${r.out}`);
  });

  void test('degraded: the reasons, and exit status 1', async () => {
    const snap = fakeAirSnapshot({ autopilotState: null });
    const port = await serve('air', snap, airHealth(snap));
    const r = await mavmq(['status', '--http', `127.0.0.1:${port}`]);
    assert.equal(r.code, 1);
    assert.match(r.out, /health: DEGRADED\n {2}! no autopilot HEARTBEAT yet/);
    assert.match(r.out, /AUTOPILOT .* no HEARTBEAT yet/);
  });

  void test('ground: one row per vehicle; --json gives the raw document', async () => {
    const port = await serve('ground', fakeGroundSnapshot());
    const r = await mavmq(['status', '--http', `127.0.0.1:${port}`]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /mavmq ground 0\.1\.0/);
    assert.match(r.out, /^ {2}ID\s+ONLINE\s+SESSION\s+RTT\s+LOSS/m);
    assert.match(r.out, /^ {2}drone-1\s+yes\s+ab12cd34ef567890\s+85\.5 ms\s+0\.99 %\s+5000\s+30\s+0\s+replay 1\s+1$/m);
    assert.match(r.out, /GCS ENDPOINTS of drone-1/);
    const j = await mavmq(['status', '--http', `127.0.0.1:${port}`, '--json']);
    const doc = JSON.parse(j.out) as StatusDocument;
    assert.equal(doc.role, 'ground');
    assert.equal((doc.snapshot as { vehicles: unknown[] }).vehicles.length, 1);
  });

  void test('extra snapshot sections (policy, spool) show when the daemon reports them', () => {
    const doc: StatusDocument = { role: 'air', version: 'x', pid: 1, uptimeS: 3725, monoNowMs: 0, health: { ok: true, reasons: [] }, snapshot: { ...fakeAirSnapshot(), policy: { allow: 5, deny: 2 }, spool: { bytes: 3 * 1024 * 1024, messages: 9 } } };
    const text = renderStatus(doc, 'here');
    assert.match(text, /up 1h02m/);
    assert.match(text, /POLICY {6}allow 5, deny 2/);
    assert.match(text, /SPOOL {7}3\.0 MiB, 9 messages/);
    // The engine's and the spool's own stats shapes render too.
    const rich = renderStatus({ ...doc, snapshot: { ...fakeAirSnapshot(), policy: { dryRun: true, frames: 12, allow: 9, deny: 2, confirm: 1, byRule: { 'no-disarm-in-air': { allow: 0, deny: 2, confirm: 0 }, ok: { allow: 9, deny: 0, confirm: 0 } }, state: { armed: true } }, spool: { bytes: 2048, records: 4, dropped: { telemetry: { records: 3, bytes: 10 }, reliable: { records: 0, bytes: 0 } } } } }, 'here');
    assert.match(rich, /POLICY {6}frames 12, allow 9, deny 2, confirm 1 {2}\(DRY RUN/);
    assert.match(rich, /rule no-disarm-in-air: deny 2, confirm 0/);
    assert.doesNotMatch(rich, /rule ok:/);
    assert.match(rich, /SPOOL {7}2\.0 KiB, 4 messages, 3 dropped/);
  });

  void test('no daemon: a clear error and exit status 1', async () => {
    const port = await freePort();
    const r = await mavmq(['status', '--http', `127.0.0.1:${port}`]);
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`no mavmq daemon answers on 127\\.0\\.0\\.1:${port}`));
    assert.match(r.err, /systemctl status mavmq-air/);
    assert.equal((await mavmq(['status', '--http', 'nonsense'])).code, 2);
  });
});

void describe('mavmq provision', () => {
  const base = ['provision', '--vehicle', 'drone-1', '--broker', 'mqtt://127.0.0.1:1883', '--link', 'tcp://127.0.0.1:5760'];

  void test('writes air config, key, broker password and the gateway lines; all of it validates', async () => {
    const out = await tmp();
    const r = await mavmq([...base, '--out', out]);
    assert.equal(r.code, 0, r.err);
    const air = join(out, 'air.yaml');
    const key = join(out, 'keys', 'drone-1.key');
    assert.equal(await mode(join(out, 'keys')), 0o700);
    assert.equal(await mode(key), 0o600);
    assert.equal(await mode(air), 0o600, 'air.yaml holds the broker password');
    assert.equal(await mode(join(out, 'keys', 'drone-1.mqtt-password')), 0o600);
    assert.match(r.out, new RegExp(`fingerprint ${pskFingerprint(await readKeyFile(key))}`));

    // Round trip through `mavmq config check` and the loader the daemon uses.
    assert.equal((await checkConfigFile(air)).role, 'air');
    const cfg = await loadAirConfig({ file: air, env: {} });
    assert.equal(cfg.vehicle?.id, 'drone-1');
    assert.equal(cfg.link.url, 'tcp://127.0.0.1:5760');
    assert.equal(cfg.keyFile, key);
    assert.equal(cfg.mqtt?.username, 'drone-1');
    await readKeyFile(cfg.keyFile ?? '');

    // The fleet entry goes under `fleet:` of a ground config and passes the same check.
    const fleet = await readFile(join(out, 'ground', 'drone-1.fleet.yaml'), 'utf8');
    const ground = join(out, 'ground.yaml');
    await writeFile(ground, `role: ground\nmqtt:\n  url: mqtt://127.0.0.1:1883\nfleet:\n${fleet}`);
    const g = await checkConfigFile(ground);
    assert.equal(g.role, 'ground');
    assert.deepEqual((g.config as { fleet: { id: string; keyFile: string }[] }).fleet.map((v) => [v.id, v.keyFile]), [['drone-1', '/etc/mavmq/keys/drone-1.key']]);

    // Broker lines: the password line verifies against the password in the config.
    const passwd = (await readFile(join(out, 'ground', 'drone-1.mosquitto-passwd'), 'utf8')).trim();
    const m = /^drone-1:\$7\$(\d+)\$([^$]+)\$([^$]+)$/.exec(passwd);
    assert.ok(m, passwd);
    assert.equal(pbkdf2Sync(cfg.mqtt?.password ?? '', Buffer.from(m[2]!, 'base64'), Number(m[1]), 64, 'sha512').toString('base64'), m[3]);
    assert.equal(await readFile(join(out, 'ground', 'drone-1.mosquitto-acl'), 'utf8').then((t) => t.split('\n').filter((l) => l && !l.startsWith('#')).join('|')),
      'user drone-1|topic write mavmq/drone-1/up/#|topic read mavmq/drone-1/down/#');
  });

  void test('re-running changes nothing; the key and password are never replaced', async () => {
    const out = await tmp();
    assert.equal((await mavmq([...base, '--out', out])).code, 0);
    const snapshot = async (): Promise<Record<string, string>> => {
      const files: Record<string, string> = {};
      for (const sub of ['', 'keys', 'ground']) {
        for (const f of await readdir(join(out, sub), { withFileTypes: true })) if (f.isFile()) files[join(sub, f.name)] = await readFile(join(out, sub, f.name), 'utf8');
      }
      return files;
    };
    const first = await snapshot();
    const again = await mavmq([...base, '--out', out]);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /kept {6}.*drone-1\.key \(existing key/);
    assert.match(again.out, /unchanged .*air\.yaml/);
    assert.deepEqual(await snapshot(), first);

    // --force replaces config files, never the key or the password.
    const forced = await mavmq([...base, '--out', out, '--force', '--gcs', 'udp://127.0.0.1:14551']);
    assert.equal(forced.code, 0, forced.err);
    const after = await snapshot();
    assert.equal(after['keys/drone-1.key'], first['keys/drone-1.key']);
    assert.equal(after['keys/drone-1.mqtt-password'], first['keys/drone-1.mqtt-password']);
    assert.match(after['ground/drone-1.fleet.yaml'] ?? '', /udp:\/\/127\.0\.0\.1:14551/);
  });

  void test('a technician\'s edit survives a re-run: the new default goes to air.yaml.new', async () => {
    const out = await tmp();
    assert.equal((await mavmq([...base, '--out', out])).code, 0);
    const air = join(out, 'air.yaml');
    const generated = await readFile(air, 'utf8');
    await appendFile(air, 'stats:\n  intervalMs: 5000\n');
    const r = await mavmq([...base, '--out', out, '--link', 'serial:///dev/ttyAMA0?baud=921600']);
    assert.equal(r.code, 0, r.err);
    assert.equal(await readFile(air, 'utf8'), `${generated}stats:\n  intervalMs: 5000\n`);
    assert.match(await readFile(`${air}.new`, 'utf8'), /serial:\/\/\/dev\/ttyAMA0/);
    assert.match(r.out, /kept {6}.*air\.yaml \(you edited it\); the new default is in .*air\.yaml\.new/);
    assert.equal((await checkConfigFile(`${air}.new`)).role, 'air');
  });

  void test('the unedited example config that the installer put in place is replaced, not kept', async () => {
    const out = await tmp();
    await writeFile(join(out, 'air.yaml'), await readFile(new URL('../../config/air.example.yaml', import.meta.url), 'utf8'));
    const r = await mavmq([...base, '--out', out]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /replaced .*air\.yaml \(air config; it was the unedited example from the install\)/);
    assert.equal((await loadAirConfig({ file: join(out, 'air.yaml'), env: {} })).vehicle?.id, 'drone-1');
    assert.ok(!(await readdir(out)).includes('air.yaml.new'));
  });

  void test('with a client certificate: TLS settings, no password', async () => {
    const out = await tmp();
    const r = await mavmq(['provision', '--vehicle', 'v7', '--broker', 'mqtts://broker.example:8883', '--ca', '/etc/ssl/ca.crt', '--cert', '/etc/mavmq/tls/v7.crt', '--key', '/etc/mavmq/tls/v7.key', '--out', out]);
    assert.equal(r.code, 0, r.err);
    const cfg = await loadAirConfig({ file: join(out, 'air.yaml'), env: {} });
    assert.deepEqual([cfg.mqtt?.caFile, cfg.mqtt?.certFile, cfg.mqtt?.keyFile, cfg.mqtt?.password], ['/etc/ssl/ca.crt', '/etc/mavmq/tls/v7.crt', '/etc/mavmq/tls/v7.key', undefined]);
    assert.equal(cfg.link.url, 'serial:///dev/autopilot?baud=921600');
    assert.equal(await mode(join(out, 'air.yaml')), 0o640);
    assert.ok(!(await readdir(join(out, 'ground'))).some((f) => f.endsWith('passwd')));
    assert.match(r.out, /CN must be "v7"|certificate's CN must be "v7"/);
  });

  void test('usage errors', async () => {
    const out = await tmp();
    assert.equal((await mavmq(['provision', '--vehicle', 'a/b', '--broker', 'mqtt://x:1', '--out', out])).code, 2);
    assert.equal((await mavmq(['provision', '--vehicle', 'a', '--out', out])).code, 2);
    assert.equal((await mavmq(['provision', '--vehicle', 'a', '--broker', 'mqtt://x:1', '--cert', 'c.crt', '--out', out])).code, 2);
    const bad = await mavmq(['provision', '--vehicle', 'a', '--broker', 'http://x', '--out', out]);
    assert.equal(bad.code, 3, 'a broker URL the config would refuse is caught before anything is written');
    assert.deepEqual(await readdir(out), []);
  });

  void test('mosquittoPasswdLine is what mosquitto_passwd writes', () => {
    const line = mosquittoPasswdLine('drone-1', 'secret', Buffer.from('lXdTByT6v2izk8oX', 'base64'));
    assert.equal(line, 'drone-1:$7$101$lXdTByT6v2izk8oX$E61bdobNC/DREX85nsI0qtZ+mO0GjKNqXX0Gpoit4E4ZZKgB1zIVcte6z5JN/TdQHfKDF5qFf3IDK5l1k0PDQw==');
  });
});

void describe('example configs', () => {
  void test('config/ground.example.yaml passes mavmq config check', async () => {
    const r = await runCli(['config', 'check', fileURLToPath(new URL('../../config/ground.example.yaml', import.meta.url))], { out: () => undefined, err: () => undefined, env: {}, makeLogger: () => silentLogger(), untilSignal: () => Promise.resolve() });
    assert.equal(r, 0);
    const { role, config } = await checkConfigFile(fileURLToPath(new URL('../../config/ground.example.yaml', import.meta.url)));
    assert.equal(role, 'ground');
    assert.deepEqual((config as { fleet: { id: string }[] }).fleet.map((v) => v.id), ['drone-1']);
  });
});

void describe('mavmq keys rotate', () => {
  void test('new key, the old one as .prev with an expiry; a second rotation inside the overlap is refused', async () => {
    const dir = await tmp();
    const old = generateKey();
    await writeKeyFile(join(dir, 'drone-1.key'), old);
    const r = await mavmq(['keys', 'rotate', '--vehicle', 'drone-1', '--dir', dir, '--overlap-hours', '48']);
    assert.equal(r.code, 0, r.err);
    const current = await readKeyFile(join(dir, 'drone-1.key'));
    const prev = await readPreviousKeyFile(join(dir, 'drone-1.key'));
    assert.ok(!current.equals(old) && prev?.key.equals(old));
    assert.ok(Math.abs((prev?.expiresAtMs ?? 0) - (Date.now() + 48 * 3_600_000)) < 60_000);
    assert.match(r.out, new RegExp(`new key {7}fingerprint ${pskFingerprint(current)}`));
    assert.match(r.out, new RegExp(`previous key {2}fingerprint ${pskFingerprint(old)}`));
    assert.match(r.out, /systemctl restart mavmq-ground/);

    const again = await mavmq(['keys', 'rotate', '--vehicle', 'drone-1', '--dir', dir]);
    assert.equal(again.code, 4);
    assert.match(again.err, /still in its overlap/);
    assert.ok((await readKeyFile(join(dir, 'drone-1.key'))).equals(current), 'refused rotation changed nothing');
    assert.equal((await mavmq(['keys', 'rotate', '--vehicle', 'drone-1', '--dir', dir, '--force'])).code, 0);
  });

  void test('keys fingerprint shows the current and the previous key', async () => {
    const dir = await tmp();
    const k = generateKey();
    await writeKeyFile(join(dir, 'v.key'), k);
    let r = await mavmq(['keys', 'fingerprint', join(dir, 'v.key')]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `${join(dir, 'v.key')}: fingerprint ${pskFingerprint(k)}`);
    assert.equal((await mavmq(['keys', 'rotate', '--vehicle', 'v', '--dir', dir, '--overlap-hours', '1'])).code, 0);
    r = await mavmq(['keys', 'fingerprint', join(dir, 'v.key')]);
    assert.match(r.out, new RegExp(`v\\.key\\.prev: fingerprint ${pskFingerprint(k)}, accepted by the gateway until 20`));
    assert.equal((await mavmq(['keys', 'fingerprint', join(dir, 'missing.key')])).code, 4);
  });

  void test('no key to rotate, bad overlap', async () => {
    const dir = await tmp();
    const r = await mavmq(['keys', 'rotate', '--vehicle', 'drone-9', '--dir', dir]);
    assert.equal(r.code, 4);
    assert.match(r.err, /mavmq keys new --vehicle drone-9/);
    assert.equal((await mavmq(['keys', 'rotate', '--vehicle', 'drone-9', '--dir', dir, '--overlap-hours=-1'])).code, 2);
  });
});

void describe('help', () => {
  void test('every ops command documents its options and has examples', async () => {
    for (const c of OPS_COMMANDS) {
      assert.ok(c.summary.length > 20 && c.usage.length > 0, c.name);
      assert.ok(c.examples.length >= 2, `${c.name}: examples`);
      for (const [name, o] of Object.entries(c.options)) assert.ok(o.help.length > 10, `${c.name} --${name}: help`);
      if (COMMANDS.some((x) => x.name === c.name)) {
        const h = await mavmq([...c.name.split(' '), '--help']);
        assert.equal(h.code, 0);
        assert.match(h.out, /Examples:/);
      }
    }
  });
});

void describe('DaemonOps (what `mavmq air --http ...` runs under systemd)', () => {
  void test('HTTP before start, READY=1 at the first heartbeat, watchdog pings, STOPPING=1 at the end', async () => {
    const sent: string[][] = [];
    const notifier = new SdNotifier({ env: { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '100000' }, send: (a) => (sent.push([...a]), Promise.resolve()) });
    let snap: AirSnapshot = fakeAirSnapshot({ autopilotState: null });
    const ops = new DaemonOps({ role: 'air', http: '127.0.0.1:0', snapshot: () => snap, logger: silentLogger(), env: {}, version: '0.1.0', notifier, extras: () => ({ spool: { bytes: 10 } }) });
    await ops.listen();
    const port = ops.httpAddress!.port;
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(health.status, 503, 'no heartbeat yet');
    assert.match(await health.text(), /no autopilot HEARTBEAT yet/);
    const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as StatusDocument;
    assert.deepEqual((status.snapshot as { spool: unknown }).spool, { bytes: 10 });
    assert.match(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), /^mavmq_spool_bytes 10$/m);

    ops.started();
    await sleep(300);
    assert.deepEqual(sent, [], 'no READY=1 before the first heartbeat');
    snap = fakeAirSnapshot();
    for (let i = 0; i < 100 && sent.length < 3; i++) await sleep(20);
    assert.deepEqual(sent[0], ['READY=1', 'STATUS=running: autopilot heard']);
    assert.equal(sent[1]?.[0], 'WATCHDOG=1');
    assert.match(sent[1]?.[1] ?? '', /^STATUS=autopilot ok, 0.99 % loss; broker up, session ab12cd34ef567890$/);
    assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);

    await ops.stop();
    assert.deepEqual(sent.at(-1), ['STOPPING=1', 'STATUS=stopping']);
    const n = sent.length;
    await sleep(150);
    assert.equal(sent.length, n, 'no pings after stop()');
    await assert.rejects(fetch(`http://127.0.0.1:${port}/health`));
  });

  void test('no --http, no NOTIFY_SOCKET: nothing at all', async () => {
    const ops = new DaemonOps({ role: 'ground', snapshot: () => fakeGroundSnapshot(), logger: silentLogger(), env: {}, version: '0.1.0' });
    await ops.listen();
    ops.started();
    assert.equal(ops.httpAddress, null);
    assert.equal(ops.statusLine(), 'broker up; 1/1 vehicles online');
    await ops.stop();
  });

  void test('READY=1 after the timeout when the autopilot stays silent', async () => {
    const sent: string[][] = [];
    const notifier = new SdNotifier({ env: { NOTIFY_SOCKET: '/run/x' }, send: (a) => (sent.push([...a]), Promise.resolve()) });
    const ops = new DaemonOps({ role: 'air', snapshot: () => fakeAirSnapshot({ autopilotState: null }), logger: silentLogger(), env: {}, version: 'x', notifier, readyTimeoutMs: 50 });
    ops.started();
    await sleep(150);
    assert.deepEqual(sent[0], ['READY=1', 'STATUS=running: no autopilot HEARTBEAT yet']);
    await ops.stop();
  });
});
