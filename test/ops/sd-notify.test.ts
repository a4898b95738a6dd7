import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SdNotifier, Watchdog, LinkStallDetector, notifyReady, waitUntil, sanitizeStatus } from '../../src/obs/sd-notify.js';

function recorder(): { sent: string[][]; send: (a: readonly string[]) => Promise<void> } {
  const sent: string[][] = [];
  return { sent, send: (a) => (sent.push([...a]), Promise.resolve()) };
}

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // block the event loop on purpose
  }
}

function which(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

void describe('SdNotifier', () => {
  void test('no NOTIFY_SOCKET: every call is a no-op and nothing is spawned', async () => {
    const r = recorder();
    const n = new SdNotifier({ env: {}, send: r.send });
    assert.equal(n.enabled, false);
    assert.equal(await n.ready('x'), false);
    assert.equal(await n.notify('WATCHDOG=1'), false);
    assert.equal(n.watchdogTimeoutMs(), null);
    const w = new Watchdog({ notifier: n, intervalMs: 10 });
    assert.equal(w.start(), false);
    assert.deepEqual(r.sent, []);
  });

  void test('READY / STATUS / STOPPING messages, in order, with a one-line STATUS', async () => {
    const r = recorder();
    const n = new SdNotifier({ env: { NOTIFY_SOCKET: '/run/x' }, send: r.send });
    await Promise.all([n.ready('running: autopilot\nok'), n.status('x'.repeat(500)), n.stopping()]);
    assert.deepEqual(r.sent[0], ['READY=1', 'STATUS=running: autopilot ok']);
    assert.equal(r.sent[1]?.[0]?.length, 'STATUS='.length + 200);
    assert.deepEqual(r.sent[2], ['STOPPING=1']);
    assert.equal(sanitizeStatus(' a\tb\u0000c '), 'a b c');
  });

  void test('WATCHDOG_USEC gives the period; WATCHDOG_PID for another process disables it', () => {
    const env = { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '20000000' };
    assert.equal(new SdNotifier({ env }).watchdogTimeoutMs(), 20_000);
    assert.equal(new SdNotifier({ env: { ...env, WATCHDOG_PID: String(process.pid) } }).watchdogTimeoutMs(), 20_000);
    assert.equal(new SdNotifier({ env: { ...env, WATCHDOG_PID: '1' } }).watchdogTimeoutMs(), null);
    assert.equal(new SdNotifier({ env: { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: 'nope' } }).watchdogTimeoutMs(), null);
  });

  void test('a failing sender is reported as false, never thrown; a missing systemd-notify disables it', async () => {
    const n = new SdNotifier({ env: { NOTIFY_SOCKET: '/run/x' }, send: () => Promise.reject(new Error('refused')) });
    assert.equal(await n.ready(), false);
    assert.equal(n.stats().failures, 1);
    const missing = new SdNotifier({ env: { NOTIFY_SOCKET: '/run/x', PATH: '/nonexistent' }, command: 'systemd-notify-missing' });
    assert.equal(await missing.ready(), false);
    assert.equal(await missing.notify('WATCHDOG=1'), false);
    assert.equal(missing.stats().failures, 1, 'after ENOENT nothing more is attempted');
  });

  void test('notifyReady: on the injected promise, or at the timeout', async () => {
    const r = recorder();
    const n = new SdNotifier({ env: { NOTIFY_SOCKET: '/run/x' }, send: r.send });
    let heartbeat!: () => void;
    const first = new Promise<void>((res) => (heartbeat = res));
    const p = notifyReady(n, first, { timeoutMs: 5000, readyStatus: 'autopilot heard' });
    await sleep(20);
    assert.deepEqual(r.sent, []);
    heartbeat();
    assert.equal(await p, 'ready');
    assert.deepEqual(r.sent, [['READY=1', 'STATUS=autopilot heard']]);
    const t0 = performance.now();
    assert.equal(await notifyReady(n, new Promise(() => undefined), { timeoutMs: 50 }), 'timeout');
    assert.ok(performance.now() - t0 >= 45);
    assert.deepEqual(r.sent[1], ['READY=1', 'STATUS=running (still waiting for the autopilot)']);
    const ac = new AbortController();
    const aborted = notifyReady(n, new Promise(() => undefined), { timeoutMs: 5000, signal: ac.signal });
    ac.abort();
    assert.equal(await aborted, 'aborted');
    assert.equal(r.sent.length, 2, 'no READY=1 when stopping before ready');
  });

  void test('waitUntil polls a condition (e.g. AirApp.snapshot().autopilotState !== null)', async () => {
    let seen = false;
    setTimeout(() => (seen = true), 30);
    await waitUntil(() => seen, { pollMs: 5 });
    const ac = new AbortController();
    const never = waitUntil(() => false, { pollMs: 5, signal: ac.signal });
    ac.abort();
    await assert.rejects(never);
  });
});

void describe('Watchdog', () => {
  void test('pings at half of WatchdogSec while healthy', async () => {
    const r = recorder();
    const n = new SdNotifier({ env: { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '100000' }, send: r.send });
    const w = new Watchdog({ notifier: n, status: () => 'ok' });
    assert.equal(w.start(), true);
    assert.equal(w.stats().intervalMs, 50);
    await sleep(180);
    w.stop();
    const pings = r.sent.filter((m) => m[0] === 'WATCHDOG=1');
    assert.ok(pings.length >= 2 && pings.length <= 6, `pings: ${pings.length}`);
    assert.deepEqual(pings[0], ['WATCHDOG=1', 'STATUS=ok']);
    const after = r.sent.length;
    await sleep(120);
    assert.equal(r.sent.length, after, 'stop() stops the pings');
  });

  void test('no ping while healthy() is false, and pings resume when it is true again', async () => {
    const r = recorder();
    const n = new SdNotifier({ env: { NOTIFY_SOCKET: '/run/x' }, send: r.send });
    let healthy = false;
    const w = new Watchdog({ notifier: n, intervalMs: 20, healthy: () => healthy });
    w.start();
    await sleep(120);
    assert.equal(r.sent.length, 0);
    assert.ok(w.stats().withheld >= 3);
    assert.equal(w.stats().lastWithheldReason, 'health check false');
    healthy = true;
    await sleep(80);
    w.stop();
    assert.ok(r.sent.length >= 2);
  });

  void test('a blocked event loop sends nothing, and the next ping after it is withheld', async () => {
    const r = recorder();
    const n = new SdNotifier({ env: { NOTIFY_SOCKET: '/run/x' }, send: r.send });
    const w = new Watchdog({ notifier: n, intervalMs: 40, probeMs: 10, maxLagMs: 150 });
    w.start();
    await sleep(100);
    const before = r.sent.length;
    assert.ok(before >= 1, `pings before the block: ${before}`);
    busyWait(400); // the loop is stuck: no timer can fire, so no ping can go out
    assert.equal(r.sent.length, before);
    await sleep(15); // the overdue ping timer runs first thing after the block
    assert.equal(r.sent.length, before, 'the first decision after the block withholds the ping');
    assert.equal(w.stats().withheld, 1);
    assert.match(w.stats().lastWithheldReason ?? '', /event loop blocked for \d+ ms/);
    assert.ok(w.stats().maxLagEverMs >= 300);
    await sleep(100);
    w.stop();
    assert.ok(r.sent.length > before, 'pings resume once the loop keeps up again');
  });

  void test('LinkStallDetector: only "carried data, then silent while open" is a stall', () => {
    let now = 0;
    const d = new LinkStallDetector(30_000, () => now);
    // Autopilot off since start: never a stall (so a restart cannot loop).
    assert.equal(d.stalled({ connected: true, bytes: 0 }), false);
    now += 60_000;
    assert.equal(d.stalled({ connected: true, bytes: 0 }), false);
    // Data flows, then stops while the port stays open.
    assert.equal(d.stalled({ connected: true, bytes: 1000 }), false);
    now += 20_000;
    assert.equal(d.stalled({ connected: true, bytes: 1000 }), false);
    now += 11_000;
    assert.equal(d.stalled({ connected: true, bytes: 1000 }), true);
    // Closed (unplugged): the transport reopens it by itself; not a stall.
    assert.equal(d.stalled({ connected: false, bytes: 1000 }), false);
    now += 60_000;
    assert.equal(d.stalled({ connected: false, bytes: 1000 }), false);
    assert.equal(d.stalled({ connected: true, bytes: 1200 }), false);
  });
});

void describe('systemd-notify for real', () => {
  // A stand-in for systemd's notify socket: perl (perl-base is Essential on Debian) receives the
  // datagrams; systemd-notify's BARRIER=1 completes because the passed fd is closed on receipt.
  const skip = !which('systemd-notify') ? 'systemd-notify is not installed (apt-get install systemd)' : !which('perl') ? 'perl is not installed' : false;

  void test('READY=1 and WATCHDOG=1 reach $NOTIFY_SOCKET with our pid as MAINPID', { skip }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mavmq-sdn-'));
    const sock = join(dir, 'notify');
    const out = join(dir, 'received');
    const script = 'use Socket; $|=1; socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die; bind($s, pack_sockaddr_un($ARGV[0])) or die "bind: $!"; open(my $o, ">", $ARGV[1]) or die; select($o); $|=1; print "listening\\n"; while (1) { my $b; defined(recv($s, $b, 65536, 0)) or die; $b =~ s/\\n/|/g; print "$b\\n"; }';
    const perl: ChildProcess = spawn('perl', ['-e', script, sock, out], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await sleep(20);
      const n = new SdNotifier({ env: { ...process.env, NOTIFY_SOCKET: sock, WATCHDOG_USEC: '2000000' } });
      const t0 = performance.now();
      assert.equal(await n.ready('test ready'), true);
      const ms = performance.now() - t0;
      assert.equal(await n.notify('WATCHDOG=1'), true);
      assert.equal(await n.stopping(), true);
      const text = await readFile(out, 'utf8');
      assert.match(text, new RegExp(`MAINPID=${process.pid}\\|READY=1\\|STATUS=test ready`));
      assert.match(text, /WATCHDOG=1/);
      assert.match(text, /STOPPING=1/);
      assert.match(text, /BARRIER=1/, 'systemd-notify waited for the receiver (no exit-before-delivery race)');
      assert.ok(ms < 2000, `one notification took ${ms} ms`);
    } finally {
      perl.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
