import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile, mkdir, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { SecretKey, formatKeyFile, generateKey, parseKeyFile, readKeyFile, writeKeyFile, PSK_LENGTH_BYTES } from '../../src/crypto/index.js';
import { ErrorCodes, MavmqError } from '../../src/errors.js';

const KEY_BYTES = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const KEY_B64 = KEY_BYTES.toString('base64url');
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** Same key with one of the 2 spare low bits of the last character set: decodes identically, not canonical. */
const NON_CANONICAL_B64 = KEY_B64.slice(0, 42) + B64URL[B64URL.indexOf(KEY_B64.at(-1)!) | 1]!;

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mavmq-keys-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function isCode(code: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof MavmqError, `expected MavmqError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    // No error text may quote the key (or any part of the file that could be the key).
    assert.ok(!err.message.includes(KEY_B64.slice(0, 12)), 'error message leaks key material');
    return true;
  };
}

void describe('SecretKey never shows its bytes', () => {
  void test('JSON, inspect, string conversion and nesting all redact', () => {
    const k = SecretKey.fromBytes(KEY_BYTES);
    const hexKey = KEY_BYTES.toString('hex');
    for (const shown of [
      JSON.stringify({ psk: k, nested: { k } }),
      inspect(k),
      inspect({ a: { b: k } }, { depth: 10, showHidden: true }),
      `${String(k)}`,
      String(k),
    ]) {
      assert.ok(shown.includes('[redacted]'), shown);
      assert.ok(!shown.includes(hexKey) && !shown.includes(KEY_B64) && !shown.includes('0, 1, 2, 3'), shown);
    }
  });

  void test('copies its input, compares in constant time, checks length', () => {
    const src = Buffer.from(KEY_BYTES);
    const k = SecretKey.fromBytes(src, 32);
    src.fill(0);
    assert.deepEqual(k.unsafeBytes(), KEY_BYTES);
    assert.ok(k.equals(SecretKey.fromBytes(KEY_BYTES)));
    assert.ok(!k.equals(SecretKey.fromBytes(Buffer.alloc(32))));
    assert.throws(() => SecretKey.fromBytes(Buffer.alloc(31), 32), isCode(ErrorCodes.CRYPTO));
    assert.throws(() => SecretKey.fromBytes(Buffer.alloc(0)), isCode(ErrorCodes.CRYPTO));
  });

  void test('generateKey uses the injected randomness', () => {
    const k = generateKey((n) => Buffer.alloc(n, 7));
    assert.equal(k.lengthBytes, PSK_LENGTH_BYTES);
    assert.deepEqual(k.unsafeBytes(), Buffer.alloc(32, 7));
    assert.ok(!generateKey().equals(generateKey()));
  });
});

void describe('key file format', () => {
  void test('format and parse round trip; one trailing LF or CRLF tolerated', () => {
    const k = SecretKey.fromBytes(KEY_BYTES);
    const text = formatKeyFile(k);
    assert.equal(text, `mavmq-psk-v1 ${KEY_B64}\n`);
    assert.ok(parseKeyFile(text).equals(k));
    assert.ok(parseKeyFile(`mavmq-psk-v1 ${KEY_B64}`).equals(k));
    assert.ok(parseKeyFile(`mavmq-psk-v1 ${KEY_B64}\r\n`).equals(k));
  });

  void test('malformed files are refused with a clear reason and no key material in the message', () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['\n', /empty/],
      [`mavmq-psk-v1 ${KEY_B64}\n\n`, /more than one line/],
      [`mavmq-psk-v1 ${KEY_B64}\nextra`, /more than one line/],
      [`mavmq-psk-v2 ${KEY_B64}\n`, /does not start with "mavmq-psk-v1 "/],
      [`${KEY_B64}\n`, /does not start with/],
      [`mavmq-psk-v1  ${KEY_B64}\n`, /does not start with/],
      [`mavmq-psk-v1 ${KEY_B64} \n`, /does not start with/],
      [`mavmq-psk-v1 ${KEY_BYTES.toString('hex')}\n`, /43 base64url characters.*got 64/],
      [`mavmq-psk-v1 ${KEY_B64.slice(0, 42)}\n`, /got 42/],
      [`mavmq-psk-v1 ${KEY_BYTES.toString('base64')}\n`, /outside base64url/],
      [`mavmq-psk-v1 ${KEY_B64.slice(0, 42)}+\n`, /outside base64url/],
      [`mavmq-psk-v1 ${NON_CANONICAL_B64}\n`, /canonical/],
    ];
    for (const [text, re] of cases) {
      assert.throws(() => parseKeyFile(text, 'psk.key'), (err: unknown) => {
        isCode(ErrorCodes.KEY_FILE)(err);
        assert.match((err as Error).message, re, JSON.stringify(text));
        assert.match((err as Error).message, /^psk\.key: /);
        return true;
      });
    }
  });
});

void describe('key file on disk', () => {
  void test('writeKeyFile creates mode 0600, leaves no temp file, and reads back', () =>
    withTempDir(async (dir) => {
      const path = join(dir, 'vehicle-7.key');
      const k = generateKey();
      await writeKeyFile(path, k);
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.deepEqual(await readdir(dir), ['vehicle-7.key']);
      assert.ok((await readKeyFile(path)).equals(k));
    }));

  void test('refuses to overwrite without force (file untouched); force replaces it, still 0600', () =>
    withTempDir(async (dir) => {
      const path = join(dir, 'psk');
      const first = generateKey();
      const second = generateKey();
      await writeKeyFile(path, first);
      await assert.rejects(writeKeyFile(path, second), (err: unknown) => {
        isCode(ErrorCodes.KEY_FILE)(err);
        assert.match((err as MavmqError).message, /already exists/);
        assert.match((err as MavmqError).problems[0]?.hint ?? '', /--force/);
        return true;
      });
      assert.ok((await readKeyFile(path)).equals(first));
      assert.deepEqual(await readdir(dir), ['psk']);
      await writeKeyFile(path, second, { force: true });
      assert.ok((await readKeyFile(path)).equals(second));
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.deepEqual(await readdir(dir), ['psk']);
    }));

  void test('a missing directory is a KEY_FILE error', () =>
    withTempDir(async (dir) => {
      await assert.rejects(writeKeyFile(join(dir, 'nope', 'psk'), generateKey()), isCode(ErrorCodes.KEY_FILE));
    }));

  void test('readKeyFile refuses group/other access with a chmod hint, accepts 0600 and 0400', () =>
    withTempDir(async (dir) => {
      const path = join(dir, 'psk');
      await writeFile(path, `mavmq-psk-v1 ${KEY_B64}\n`, { mode: 0o600 });
      for (const mode of [0o644, 0o640, 0o604, 0o660, 0o601, 0o610, 0o700 | 0o001]) {
        await chmod(path, mode);
        await assert.rejects(readKeyFile(path), (err: unknown) => {
          isCode(ErrorCodes.KEY_PERMISSIONS)(err);
          assert.equal((err as MavmqError).problems[0]?.hint, `chmod 600 ${path}`);
          assert.match((err as MavmqError).message, new RegExp(mode.toString(8)));
          return true;
        });
      }
      for (const mode of [0o600, 0o400]) {
        await chmod(path, mode);
        assert.deepEqual((await readKeyFile(path)).unsafeBytes(), KEY_BYTES);
      }
    }));

  void test('readKeyFile: missing, directory, oversized and malformed files are KEY_FILE errors', () =>
    withTempDir(async (dir) => {
      await assert.rejects(readKeyFile(join(dir, 'missing')), isCode(ErrorCodes.KEY_FILE));
      const sub = join(dir, 'sub');
      await mkdir(sub, { mode: 0o700 });
      await assert.rejects(readKeyFile(sub), isCode(ErrorCodes.KEY_FILE));
      const big = join(dir, 'big');
      await writeFile(big, 'x'.repeat(4096), { mode: 0o600 });
      await assert.rejects(readKeyFile(big), (err: unknown) => isCode(ErrorCodes.KEY_FILE)(err) && /too large/.test((err as Error).message));
      const bad = join(dir, 'bad');
      await writeFile(bad, `mavmq-psk-v1 ${KEY_B64.slice(0, 30)}\n`, { mode: 0o600 });
      await assert.rejects(readKeyFile(bad), isCode(ErrorCodes.KEY_FILE));
    }));

  void test('a symlink is followed and the TARGET mode is what counts', () =>
    withTempDir(async (dir) => {
      const target = join(dir, 'real');
      await writeFile(target, `mavmq-psk-v1 ${KEY_B64}\n`, { mode: 0o600 });
      const link = join(dir, 'link');
      await symlink(target, link);
      assert.deepEqual((await readKeyFile(link)).unsafeBytes(), KEY_BYTES);
      await chmod(target, 0o644);
      await assert.rejects(readKeyFile(link), isCode(ErrorCodes.KEY_PERMISSIONS));
    }));

  void test('the written file has exactly the documented one-line format', () =>
    withTempDir(async (dir) => {
      const path = join(dir, 'psk');
      await writeKeyFile(path, SecretKey.fromBytes(KEY_BYTES));
      assert.equal(await readFile(path, 'utf8'), `mavmq-psk-v1 ${KEY_B64}\n`);
    }));
});
