import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, stat, readFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli/main.js';
import { COMMANDS, type CliIo } from '../../src/cli/commands.js';
import { silentLogger } from '../../src/obs/logger.js';

function io(): CliIo & { stdout: string; stderr: string } {
  const o = {
    stdout: '',
    stderr: '',
    out: (s: string) => { o.stdout += `${s}\n`; },
    err: (s: string) => { o.stderr += `${s}\n`; },
    env: {},
    makeLogger: () => silentLogger(),
    untilSignal: () => Promise.resolve(),
  };
  return o;
}

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'mavmq-cli-'));
}

describe('cli', () => {
  test('no command prints usage and exits 2; unknown command exits 2', async () => {
    const a = io();
    assert.equal(await runCli([], a), 2);
    assert.match(a.stdout, /Usage: mavmq <command>/);
    const b = io();
    assert.equal(await runCli(['fly'], b), 2);
    assert.match(b.stderr, /unknown command "fly"/);
  });

  test('every command has --help with an example', async () => {
    for (const c of COMMANDS) {
      const o = io();
      assert.equal(await runCli([...c.name.split(' '), '--help'], o), 0, c.name);
      assert.match(o.stdout, new RegExp(`Usage: mavmq ${c.name}`));
      assert.match(o.stdout, /Examples:/, `${c.name} has examples`);
    }
  });

  test('config check: ok exits 0, problems exit 3 and are all listed', async () => {
    const ok = io();
    assert.equal(await runCli(['config', 'check', 'config/air.example.yaml'], ok), 0);
    assert.match(ok.stdout, /ok \(air config\)/);
    const dir = await tmp();
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'link:\n  url: serial://dev/x\ncompanion:\n  compid: 999\nbogus: 1\n');
    const o = io();
    assert.equal(await runCli(['config', 'check', bad], o), 3);
    assert.match(o.stderr, /3 problems/);
    assert.match(o.stderr, /link\.url \(.*bad\.yaml:2\)/);
    assert.match(o.stderr, /companion\.compid/);
    assert.match(o.stderr, /unknown key "bogus"/);
  });

  test('a daemon refuses to start on the same config errors', async () => {
    const dir = await tmp();
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'link:\n  url: nonsense\n');
    const o = io();
    assert.equal(await runCli(['air', '--config', bad], o), 3);
    assert.match(o.stderr, /missing scheme/);
  });

  test('air without a link or config is a usage error', async () => {
    const o = io();
    assert.equal(await runCli(['air'], o), 2);
    assert.match(o.stderr, /give --config FILE or --link URL/);
  });

  test('keys new writes a 0600 key and refuses to overwrite without --force', async () => {
    const dir = await tmp();
    const o = io();
    assert.equal(await runCli(['keys', 'new', '--vehicle', 'drone-7', '--out', dir], o), 0);
    const file = join(dir, 'drone-7.key');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.match(o.stdout, /fingerprint [0-9a-f]{16}/);
    const before = await readFile(file, 'utf8');
    const again = io();
    assert.equal(await runCli(['keys', 'new', '--vehicle', 'drone-7', '--out', dir], again), 4);
    assert.equal(await readFile(file, 'utf8'), before);
    assert.equal(await runCli(['keys', 'new', '--vehicle', 'drone-7', '--out', dir, '--force'], io()), 0);
    assert.notEqual(await readFile(file, 'utf8'), before);
    assert.equal(await runCli(['keys', 'new', '--vehicle', 'bad/id', '--out', dir], io()), 2);
  });

  test('ground flag parsing: --vehicle needs ID=KEYFILE, several vehicles need --gcs ID=URL', async () => {
    const a = io();
    assert.equal(await runCli(['ground', '--broker', 'mqtt://127.0.0.1:1', '--vehicle', 'x'], a), 2);
    assert.match(a.stderr, /ID=KEYFILE/);
    const b = io();
    assert.equal(await runCli(['ground', '--broker', 'mqtt://127.0.0.1:1', '--vehicle', 'a=a.key', '--vehicle', 'b=b.key', '--gcs', 'udp://127.0.0.1:14550'], b), 2);
    assert.match(b.stderr, /--gcs ID=URL/);
  });

  test('a key readable by others is refused before anything connects (exit 4)', async () => {
    const dir = await tmp();
    assert.equal(await runCli(['keys', 'new', '--vehicle', 'v1', '--out', dir], io()), 0);
    const { chmod } = await import('node:fs/promises');
    await chmod(join(dir, 'v1.key'), 0o644);
    const o = io();
    const code = await runCli(['ground', '--broker', 'mqtt://127.0.0.1:1', '--vehicle', `v1=${join(dir, 'v1.key')}`, '--gcs', 'udp://127.0.0.1:14550'], o);
    assert.equal(code, 4);
    assert.match(o.stderr, /chmod 600/);
  });

  test('the installed entry point runs (bin/mavmq.js)', () => {
    const r = spawnSync('bin/mavmq.js', ['--help'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Commands:/);
  });
});
