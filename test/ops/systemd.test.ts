import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The unit files and the udev rule. `systemd-analyze verify` checks a unit offline, but it also
 * insists that every Exec*= binary exists and is executable; /opt/mavmq/bin/mavmq does not exist
 * on a build machine, so each unit is verified as a copy whose /opt/mavmq/bin/mavmq points at a
 * stand-in executable in a temp directory. Everything else in the unit is verified as shipped.
 */
const SYSTEMD = fileURLToPath(new URL('../../systemd/', import.meta.url));
const UNITS = ['mavmq-air.service', 'mavmq-ground.service'];

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const NO_ANALYZE = has('systemd-analyze') ? false : 'systemd-analyze is missing: apt-get install systemd (CI installs it; the unit files are then NOT verified)';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function run(cmd: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 60_000, env: { ...process.env, SYSTEMD_LOG_COLOR: '0', SYSTEMD_PAGER: '' } }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout, err: stderr }));
  });
}

/** Copies the unit next to a stand-in for the mavmq binary and verifies it; returns what to complain about. */
async function verify(name: string, text: string): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'mavmq-units-'));
  dirs.push(dir);
  const bin = join(dir, 'mavmq');
  await writeFile(bin, '#!/bin/sh\nexit 0\n');
  await chmod(bin, 0o755);
  const path = join(dir, name);
  await writeFile(path, text.replaceAll('/opt/mavmq/bin/mavmq', bin));
  const r = await run('systemd-analyze', ['verify', '--man=no', path]);
  // verify exits 0 on unknown keys or unparsable values: they are only logged, naming the file.
  const problems = r.err.split('\n').filter((l) => l.trim() !== '' && (l.includes(name) || l.includes(dir)));
  if (r.code !== 0) problems.unshift(`systemd-analyze verify exited ${r.code}: ${r.err.trim()}`);
  return problems;
}

/** [section, key] -> values, for the assertions below (a unit file is INI with repeatable keys). */
function parseUnit(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      section = sec[1] ?? '';
      continue;
    }
    const i = line.indexOf('=');
    const key = `${section}.${line.slice(0, i)}`;
    m.set(key, [...(m.get(key) ?? []), line.slice(i + 1)]);
  }
  return m;
}

void describe('systemd units', () => {
  for (const name of UNITS) {
    void test(`${name} passes systemd-analyze verify`, { skip: NO_ANALYZE }, async () => {
      const problems = await verify(name, await readFile(join(SYSTEMD, name), 'utf8'));
      assert.deepEqual(problems, []);
    });
  }

  void test('the check catches a broken unit (so a pass means something)', { skip: NO_ANALYZE }, async () => {
    const good = await readFile(join(SYSTEMD, 'mavmq-air.service'), 'utf8');
    const typo = await verify('mavmq-air.service', good.replace('WatchdogSec=20', 'WatchdogSecs=20'));
    assert.ok(typo.some((l) => /Unknown key/.test(l)), typo.join('\n'));
    const badValue = await verify('mavmq-air.service', good.replace('Restart=on-failure', 'Restart=sometimes'));
    assert.ok(badValue.length > 0, 'an unparsable Restart= must be reported');
    const missingBinary = await verify('mavmq-air.service', good.replace('ExecStart=/opt/mavmq/bin/mavmq air', 'ExecStart=/nonexistent/mavmq air'));
    assert.ok(missingBinary.length > 0, 'a missing ExecStart binary must be reported');
  });

  void test('hardening exposure stays low (systemd-analyze security --offline)', { skip: NO_ANALYZE }, async (t) => {
    const probe = await run('systemd-analyze', ['security', '--help']);
    if (!probe.out.includes('--offline')) {
      t.skip('this systemd-analyze has no security --offline (systemd < 252)');
      return;
    }
    for (const name of UNITS) {
      const dir = await mkdtemp(join(tmpdir(), 'mavmq-units-'));
      dirs.push(dir);
      const bin = join(dir, 'mavmq');
      await writeFile(bin, '#!/bin/sh\nexit 0\n');
      await chmod(bin, 0o755);
      await writeFile(join(dir, name), (await readFile(join(SYSTEMD, name), 'utf8')).replaceAll('/opt/mavmq/bin/mavmq', bin));
      const r = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', join(dir, name)]);
      const m = /Overall exposure level for \S+: (\d+\.\d)/.exec(r.out + r.err);
      assert.ok(m, `no exposure level in:\n${r.out}${r.err}`);
      assert.ok(Number(m[1]) <= 3.0, `${name}: exposure ${m[1]} (systemd's scale: 0 safest .. 10 unsafe)`);
    }
  });

  void test('what the units promise', async () => {
    for (const name of UNITS) {
      const role = name === 'mavmq-air.service' ? 'air' : 'ground';
      const u = parseUnit(await readFile(join(SYSTEMD, name), 'utf8'));
      const one = (k: string): string | undefined => u.get(k)?.at(-1);
      assert.equal(one('Service.Type'), 'notify', name);
      assert.equal(one('Service.NotifyAccess'), 'all', `${name}: systemd-notify children send READY/WATCHDOG`);
      assert.ok(Number(one('Service.WatchdogSec')) >= 10, name);
      assert.ok(Number(one('Service.TimeoutStartSec')) > 15, `${name}: longer than the 15 s READY timeout`);
      assert.equal(one('Service.Restart'), 'on-failure');
      assert.equal(one('Service.RestartPreventExitStatus'), '2 3 4 5');
      assert.ok(Number(one('Unit.StartLimitIntervalSec')) > 0 && Number(one('Unit.StartLimitBurst')) >= 3, name);
      assert.equal(one('Service.User'), 'mavmq');
      assert.equal(one('Service.Environment'), 'NODE_ENV=production');
      assert.deepEqual(u.get('Service.ExecStartPre')?.[0], `/opt/mavmq/bin/mavmq config check /etc/mavmq/${role}.yaml`);
      assert.equal(one('Service.ExecStart'), `/opt/mavmq/bin/mavmq ${role} --config /etc/mavmq/${role}.yaml --http 127.0.0.1:${role === 'air' ? 9180 : 9181}`);
      for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'], ['StateDirectory', 'mavmq'], ['ConfigurationDirectory', 'mavmq'], ['RestrictAddressFamilies', 'AF_UNIX AF_INET AF_INET6 AF_NETLINK'], ['CapabilityBoundingSet', '']]) {
        assert.equal(one(`Service.${k}`), v, `${name}: ${k}`);
      }
      assert.match(one('Service.MemoryMax') ?? '', /^\d+M$/);
      assert.equal(u.get('Service.MemoryDenyWriteExecute'), undefined, 'Node\'s JIT needs W+X memory');
      assert.equal(one('Install.WantedBy'), 'multi-user.target');
    }
    const air = parseUnit(await readFile(join(SYSTEMD, 'mavmq-air.service'), 'utf8'));
    assert.equal(air.get('Service.SupplementaryGroups')?.[0], 'dialout');
    assert.match(air.get('Service.ExecStartPre')?.[1] ?? '', /mavmq policy check \/etc\/mavmq\/policy\.yaml/);
    assert.deepEqual(air.get('Service.DeviceAllow'), ['char-tty* rw', 'char-pts rw']);
  });

  void test('the policy pre-check is skipped when there is no policy file, and fails the start on a bad one', async () => {
    const air = parseUnit(await readFile(join(SYSTEMD, 'mavmq-air.service'), 'utf8'));
    const cmd = air.get('Service.ExecStartPre')?.[1] ?? '';
    const m = /^\/bin\/sh -c '(.*)'$/.exec(cmd);
    assert.ok(m, cmd);
    const dir = await mkdtemp(join(tmpdir(), 'mavmq-pre-'));
    dirs.push(dir);
    const fakeBin = join(dir, 'mavmq');
    await writeFile(fakeBin, '#!/bin/sh\necho "$@" >> "$(dirname "$0")/calls"\nexit 5\n');
    await chmod(fakeBin, 0o755);
    const script = (m[1] ?? '').replaceAll('/opt/mavmq/bin/mavmq', fakeBin).replaceAll('/etc/mavmq/policy.yaml', join(dir, 'policy.yaml'));
    assert.equal((await run('/bin/sh', ['-c', script])).code, 0, 'no policy file: nothing to check');
    await writeFile(join(dir, 'policy.yaml'), 'rules: []\n');
    assert.equal((await run('/bin/sh', ['-c', script])).code, 5, 'the check\'s exit status reaches systemd');
    assert.match(await readFile(join(dir, 'calls'), 'utf8'), /^policy check .*policy\.yaml$/m);
  });
});

void describe('udev rule', () => {
  void test('99-mavmq-autopilot.rules is well-formed and links only the MAVLink interface of known autopilots', async () => {
    const text = await readFile(join(SYSTEMD, '99-mavmq-autopilot.rules'), 'utf8');
    const labels = new Set<string>();
    const gotos: string[] = [];
    const rules = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    const TOKEN = /^(ACTION|SUBSYSTEM|SUBSYSTEMS|KERNEL|ATTRS\{[a-zA-Z_]+\}|ATTR\{[a-zA-Z_]+\}|ENV\{[A-Z_]+\}|SYMLINK|GROUP|MODE|GOTO|LABEL)(==|!=|\+=|=)"([^"]*)"$/;
    for (const rule of rules) {
      for (const part of rule.split(/,\s*/)) {
        const m = TOKEN.exec(part);
        assert.ok(m, `bad token "${part}" in: ${rule}`);
        const [, key = '', op = '', value = ''] = m;
        const assignment = ['SYMLINK', 'GROUP', 'MODE', 'GOTO', 'LABEL'].includes(key) || (key.startsWith('ENV{') && (op === '=' || op === '+='));
        if (['SYMLINK', 'GROUP', 'MODE', 'GOTO', 'LABEL'].includes(key)) assert.ok(op === '=' || op === '+=', `${key} is an assignment: ${rule}`);
        if (!assignment) assert.ok(op === '==' || op === '!=', `${key} is a match: ${rule}`);
        if (key === 'LABEL') labels.add(value);
        if (key === 'GOTO') gotos.push(value);
      }
    }
    for (const g of gotos) assert.ok(labels.has(g), `GOTO ${g} has no LABEL`);
    for (const vid of ['2dae', '3162', '26ac', '1209']) assert.match(text, new RegExp(`^ATTRS\\{idVendor\\}=="${vid}"`, 'm'), vid);
    assert.match(text, /^ENV\{MAVMQ_AUTOPILOT\}=="1", ENV\{ID_USB_INTERFACE_NUM\}=="00", SYMLINK\+="autopilot", GROUP="dialout", MODE="0660"$/m);
    assert.match(text, /ttyAMA0[\s\S]*ttyTHS1/, 'UART notes for Raspberry Pi and Jetson');
  });
});
