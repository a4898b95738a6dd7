import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAirConfig, checkConfigFile } from '../../src/config/loader.js';
import { MavmqError, ErrorCodes } from '../../src/errors.js';

async function file(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mavmq-cfg-'));
  const p = join(dir, 'c.yaml');
  await writeFile(p, text);
  return p;
}

async function problemsOf(p: Promise<unknown>): Promise<MavmqError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MavmqError);
    return err;
  }
  assert.fail('expected a config error');
}

describe('config', () => {
  test('the shipped example is valid', async () => {
    const { role } = await checkConfigFile('config/air.example.yaml');
    assert.equal(role, 'air');
  });

  test('defaults are filled in from the schema', async () => {
    const c = await loadAirConfig({ overrides: { link: { url: 'tcp://127.0.0.1:5760' } }, env: {} });
    assert.equal(c.companion.compid, 191);
    assert.equal(c.companion.heartbeat, true);
    assert.equal(c.stats.intervalMs, 10_000);
    assert.deepEqual(c.endpoints, []);
  });

  test('every problem is listed at once, with its path, line and a hint', async () => {
    const p = await file([
      'link:',
      '  url: serial://dev/ttyACM0', // line 2: relative path
      'endpoints:',
      '  - url: udp://127.0.0.1:14550',
      '    nmae: gcs', // line 5: typo
      'companion:',
      '  compid: 300', // line 7: out of range
      'tlogg: {}', // line 8: unknown key
    ].join('\n'));
    const err = await problemsOf(checkConfigFile(p));
    assert.equal(err.code, ErrorCodes.CONFIG_INVALID);
    const byPath = new Map(err.problems.map((x) => [x.path.split(' ')[0], x]));
    assert.equal(err.problems.length, 4);
    assert.match(byPath.get('link.url')!.path, /c\.yaml:2/);
    assert.match(byPath.get('link.url')!.message, /absolute/);
    assert.equal(byPath.get('endpoints.0.nmae')!.hint, 'did you mean "name"?');
    assert.match(byPath.get('endpoints.0.nmae')!.path, /c\.yaml:5/);
    assert.match(byPath.get('companion.compid')!.path, /c\.yaml:7/);
    assert.equal(byPath.get('tlogg')!.hint, 'did you mean "tlog"?');
  });

  test('YAML syntax errors name the line', async () => {
    const p = await file('link:\n  url: [unclosed\n');
    const err = await problemsOf(checkConfigFile(p));
    assert.equal(err.code, ErrorCodes.CONFIG_INVALID);
    assert.match(err.problems[0]!.path, /c\.yaml:\d+/);
  });

  test('an unreadable file is a read error naming the file', async () => {
    const err = await problemsOf(checkConfigFile('/nonexistent/mavmq.yaml'));
    assert.equal(err.code, ErrorCodes.CONFIG_READ);
    assert.match(err.message, /nonexistent/);
  });

  test('environment overrides the file, flags override both', async () => {
    const p = await file('link:\n  url: serial:///dev/ttyACM0\n');
    const c = await loadAirConfig({ file: p, env: { MAVMQ_LINK_URL: 'tcp://127.0.0.1:5762' } });
    assert.equal(c.link.url, 'tcp://127.0.0.1:5762');
    const c2 = await loadAirConfig({ file: p, env: { MAVMQ_LINK_URL: 'tcp://127.0.0.1:5762' }, overrides: { link: { url: 'udp://127.0.0.1:14551' } } });
    assert.equal(c2.link.url, 'udp://127.0.0.1:14551');
  });

  test('MAVMQ_LOG_LEVEL sets the daemons\' log level, and a bad value is a config error naming it', async () => {
    const c = await loadAirConfig({ overrides: { link: { url: 'tcp://127.0.0.1:5760' } }, env: { MAVMQ_LOG_LEVEL: 'debug' } });
    assert.equal(c.log.level, 'debug');
    const err = await problemsOf(loadAirConfig({ overrides: { link: { url: 'tcp://127.0.0.1:5760' } }, env: { MAVMQ_LOG_LEVEL: 'loud' } }));
    assert.ok(err.problems.some((p) => p.path.startsWith('log.level')));
  });

  test('repeated --endpoint flags append to the file\'s endpoints', async () => {
    const p = await file('link:\n  url: tcp://127.0.0.1:5760\nendpoints:\n  - url: udp://127.0.0.1:14550\n');
    const c = await loadAirConfig({ file: p, env: {}, appendEndpoints: ['tcp-listen://127.0.0.1:5800'] });
    assert.deepEqual(c.endpoints.map((e) => e.url), ['udp://127.0.0.1:14550', 'tcp-listen://127.0.0.1:5800']);
  });

  test('mqtt without vehicle id or key is refused: there is no plaintext mode', async () => {
    const err = await problemsOf(loadAirConfig({ env: {}, overrides: { link: { url: 'tcp://127.0.0.1:5760' }, mqtt: { url: 'mqtt://127.0.0.1:1883' } } }));
    const paths = err.problems.map((p) => p.path);
    assert.ok(paths.some((p) => p.startsWith('vehicle')));
    assert.ok(paths.some((p) => p.startsWith('keyFile')));
  });
});
