import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, lstat, mkdtemp, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * scripts/install.sh in a throwaway root (--root; no user creation, systemctl offline or skipped):
 * the layout, the compiled CLI running with neither src/ nor tsx present, and a re-install that
 * keeps a technician's config edit. Builds once (npm run build into the stage) and runs
 * `npm ci --omit=dev --prefer-offline` twice: about 20-40 s depending on the npm cache and load.
 */
const SRC = fileURLToPath(new URL('../..', import.meta.url));
const roots: string[] = [];
after(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd ?? SRC, env: opts.env ?? process.env, timeout: 180_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout, err: stderr });
    });
  });
}

const hasSystemctl = ((): boolean => {
  try {
    execFileSync('sh', ['-c', 'command -v systemctl'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const mode = async (p: string): Promise<number> => (await stat(p)).mode & 0o777;
/** Exists, without following symlinks (the enable links point to /etc/systemd/system, outside the root). */
const present = async (p: string): Promise<boolean> => lstat(p).then(() => true, () => false);

void test('install.sh: layout, compiled CLI without src/ or tsx, re-install keeps edits, uninstall', { timeout: 170_000 }, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'mavmq-root-'));
  roots.push(root);
  const opt = join(root, 'opt', 'mavmq');
  const etc = join(root, 'etc', 'mavmq');

  // 1. Fresh install.
  const t0 = performance.now();
  const first = await sh('bash', [join(SRC, 'scripts', 'install.sh'), '--root', root, '--no-user', '--no-enable']);
  assert.equal(first.code, 0, `install failed:\n${first.out}\n${first.err}`);
  const firstS = (performance.now() - t0) / 1000;

  for (const p of ['dist/cli/run.js', 'dist/cli/main.js', 'bin/mavmq.js', 'package.json', 'node_modules/yaml/package.json', 'node_modules/prom-client/package.json', '.mavmq-install', 'docs/OPERATIONS.md', 'share/config/air.example.yaml', 'share/systemd/mavmq-air.service']) {
    assert.ok(existsSync(join(opt, p)), `missing ${p}`);
  }
  // (typescript itself does arrive, as a dependency of node-mavlink -> mavlink-mappings.)
  for (const p of ['src', 'test', 'scripts', 'node_modules/eslint', 'node_modules/fast-check', 'node_modules/typescript-eslint', 'node_modules/@eslint', 'tsconfig.json']) {
    assert.ok(!existsSync(join(opt, p)), `${p} must not be installed (production only)`);
  }
  assert.ok((await lstat(join(opt, 'bin', 'mavmq'))).isSymbolicLink());
  assert.equal(await readlink(join(root, 'usr', 'local', 'bin', 'mavmq')), '/opt/mavmq/bin/mavmq');
  assert.equal(await mode(etc), 0o750);
  assert.equal(await mode(join(etc, 'keys')), 0o700);
  assert.equal(await readFile(join(etc, 'air.yaml'), 'utf8'), await readFile(join(SRC, 'config', 'air.example.yaml'), 'utf8'));
  assert.ok(!existsSync(join(etc, 'ground.yaml')), 'role air installs only the air config');
  for (const u of ['mavmq-air.service', 'mavmq-ground.service']) {
    const unit = await readFile(join(root, 'etc', 'systemd', 'system', u), 'utf8');
    assert.match(unit, /^ExecStart=\/opt\/mavmq\/bin\/mavmq (air|ground) --config \/etc\/mavmq\/(air|ground)\.yaml --http 127\.0\.0\.1:918[01]$/m);
  }
  assert.ok(existsSync(join(root, 'etc', 'udev', 'rules.d', '99-mavmq-autopilot.rules')));
  assert.ok(!existsSync(join(root, 'etc', 'systemd', 'system', 'multi-user.target.wants')), '--no-enable');

  // 2. The installed CLI runs on compiled JavaScript: no src/ and no tsx (a dev dependency). Take
  //    mqtt away too (loaded only by daemons that use a broker) to see a re-install restore it.
  assert.ok(!existsSync(join(opt, 'node_modules', 'tsx')), 'tsx is a dev dependency: not installed');
  await rm(join(opt, 'node_modules', 'mqtt'), { recursive: true, force: true });
  const env = { ...process.env, PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, MAVMQ_USE_DIST: '' };
  const help = await sh(join(opt, 'bin', 'mavmq'), ['--help'], { cwd: root, env });
  assert.equal(help.code, 0, help.err);
  assert.match(help.out, /Usage: mavmq <command>/);
  const check = await sh(join(opt, 'bin', 'mavmq'), ['config', 'check', join(etc, 'air.yaml')], { cwd: root, env });
  assert.equal(check.code, 0, check.err);
  assert.match(check.out, /ok \(air config\)/);
  const broken = await sh(join(opt, 'bin', 'mavmq'), ['config', 'check', join(opt, 'package.json')], { cwd: root, env });
  assert.equal(broken.code, 3, 'ExecStartPre=mavmq config check fails a bad config with exit 3');

  // 3. Re-install (from the installed dist/, so no second build; enabling offline when systemctl exists):
  //    the edited config is kept, the new default goes next to it.
  await appendFile(join(etc, 'air.yaml'), '# technician: rate raised for the survey camera\n');
  const edited = await readFile(join(etc, 'air.yaml'), 'utf8');
  const again = await sh('bash', [join(SRC, 'scripts', 'install.sh'), '--root', root, '--no-user', '--role', 'both', '--dist', join(opt, 'dist'), ...(hasSystemctl ? [] : ['--no-enable'])]);
  assert.equal(again.code, 0, `re-install failed:\n${again.out}\n${again.err}`);
  assert.equal(await readFile(join(etc, 'air.yaml'), 'utf8'), edited);
  assert.equal(await readFile(join(etc, 'air.yaml.dist'), 'utf8'), await readFile(join(SRC, 'config', 'air.example.yaml'), 'utf8'));
  assert.match(again.out, /kept your .*air\.yaml; the new default is .*air\.yaml\.dist/);
  assert.ok(existsSync(join(etc, 'ground.yaml')), '--role both adds the ground config');
  assert.ok(existsSync(join(opt, 'node_modules', 'mqtt')), 'the program directory was replaced as a whole');
  assert.ok(!existsSync(`${opt}.old.${process.pid}`));
  if (hasSystemctl) {
    const wants = join(root, 'etc', 'systemd', 'system', 'multi-user.target.wants');
    assert.equal(await readlink(join(wants, 'mavmq-air.service')), '/etc/systemd/system/mavmq-air.service');
    assert.equal(await readlink(join(wants, 'mavmq-ground.service')), '/etc/systemd/system/mavmq-ground.service');
  }

  // 4. Uninstall keeps config and state; --purge removes them.
  const un = await sh('bash', [join(SRC, 'scripts', 'install.sh'), '--root', root, '--no-user', '--uninstall']);
  assert.equal(un.code, 0, un.err);
  for (const gone of [opt, join(root, 'usr', 'local', 'bin', 'mavmq'), join(root, 'etc', 'systemd', 'system', 'mavmq-air.service'), join(root, 'etc', 'udev', 'rules.d', '99-mavmq-autopilot.rules'), join(root, 'etc', 'systemd', 'system', 'multi-user.target.wants', 'mavmq-air.service')]) {
    assert.ok(!(await present(gone)), `${gone} should be gone`);
  }
  assert.equal(await readFile(join(etc, 'air.yaml'), 'utf8'), edited);
  assert.ok(existsSync(join(root, 'var', 'lib', 'mavmq')));
  const purge = await sh('bash', [join(SRC, 'scripts', 'install.sh'), '--root', root, '--no-user', '--uninstall', '--purge']);
  assert.equal(purge.code, 0, purge.err);
  assert.ok(!existsSync(etc) && !existsSync(join(root, 'var', 'lib', 'mavmq')));
  t.diagnostic(`install.sh: first install ${firstS.toFixed(1)} s`);
});

void test('install.sh refuses what it must not do', async () => {
  const root = await mkdtemp(join(tmpdir(), 'mavmq-root-'));
  roots.push(root);
  const bad = async (args: string[], re: RegExp): Promise<void> => {
    const r = await sh('bash', [join(SRC, 'scripts', 'install.sh'), '--root', root, '--no-user', '--no-enable', ...args]);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.err, re, args.join(' '));
  };
  await bad(['--prefix', '/usr'], /system directory/);
  await bad(['--prefix', 'relative/dir'], /absolute path/);
  await bad(['--role', 'drone'], /--role must be/);
  await bad(['--purge'], /--purge goes with --uninstall/);
  await bad(['--bogus'], /unknown option/);
  // A directory it did not create is never removed or overwritten.
  const { mkdir, writeFile } = await import('node:fs/promises');
  await mkdir(join(root, 'opt', 'other'), { recursive: true });
  await writeFile(join(root, 'opt', 'other', 'precious'), 'x');
  await bad(['--prefix', '/opt/other', '--uninstall'], /not installed by this script/);
  await bad(['--prefix', '/opt/other', '--dist', join(SRC, 'dist')], /not installed by this script/);
  assert.ok(existsSync(join(root, 'opt', 'other', 'precious')));
  const help = await sh('bash', [join(SRC, 'scripts', 'install.sh'), '--help']);
  assert.equal(help.code, 0);
  assert.match(help.out, /--uninstall/);
});
