import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { TlogWriter, parseTlog } from '../../src/mavlink/tlog.js';
import { silentLogger } from '../../src/obs/logger.js';
import { telemetryFrames } from '../../scripts/bench/framer.js';

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'mavmq-tlog-'));
}

describe('tlog recorder', () => {
  test('writes the MAVProxy format: 8-byte BE microseconds then the raw frame', async () => {
    const dir = await tmp();
    let t = 1_700_000_000_000_000n;
    const w = new TlogWriter({ dir, maxFileBytes: 1 << 20, maxTotalBytes: 1 << 24, flushIntervalMs: 50, logger: silentLogger(), nowUs: () => (t += 1000n) });
    const ac = new AbortController();
    await w.start(ac.signal);
    const frames = telemetryFrames(100);
    for (const f of frames) w.write(f);
    await w.stop();
    const files = (await readdir(dir)).filter((n) => n.endsWith('.tlog'));
    assert.equal(files.length, 1);
    const recs = parseTlog(await readFile(join(dir, files[0]!)));
    assert.equal(recs.length, 100);
    assert.deepEqual(recs.map((r) => r.frame.toString('hex')), frames.map((f) => f.toString('hex')));
    assert.equal(recs[0]!.timestampUs, 1_700_000_000_001_000n);
    assert.equal(recs[99]!.timestampUs, 1_700_000_000_100_000n);
    await rm(dir, { recursive: true });
  });

  test('rotates at maxFileBytes and deletes oldest files beyond maxTotalBytes', async () => {
    const dir = await tmp();
    // Someone else's file in the same directory must never be touched.
    await writeFile(join(dir, 'notes.txt'), 'keep me');
    const w = new TlogWriter({ dir, maxFileBytes: 4096, maxTotalBytes: 16384, flushIntervalMs: 10_000, logger: silentLogger() });
    await w.start(new AbortController().signal);
    const frames = telemetryFrames(2000);
    for (let i = 0; i < frames.length; i++) {
      w.write(frames[i]!);
      if (i % 50 === 49) await w.flush();
    }
    await w.stop();
    const names = (await readdir(dir)).filter((n) => n.endsWith('.tlog')).sort();
    const sizes = await Promise.all(names.map(async (n) => (await readFile(join(dir, n))).length));
    const total = sizes.reduce((a, b) => a + b, 0);
    assert.ok(names.length >= 3, `expected several files, got ${names.length}`);
    assert.ok(total <= 16384 + 4096 * 2, `total ${total} over cap`);
    assert.ok(w.stats().filesDeleted > 0);
    // Indices keep increasing and the newest data is kept.
    const kept = (await Promise.all(names.map(async (n) => parseTlog(await readFile(join(dir, n)))))).flat();
    assert.equal(kept.at(-1)!.frame.toString('hex'), frames.at(-1)!.toString('hex'));
    // What is kept is a contiguous tail of what was written, oldest files dropped first.
    const offset = frames.length - kept.length;
    assert.ok(kept.every((r, i) => r.frame.equals(frames[offset + i]!)));
    assert.equal(await readFile(join(dir, 'notes.txt'), 'utf8'), 'keep me');
    // A restart continues the numbering instead of overwriting.
    const w2 = new TlogWriter({ dir, maxFileBytes: 4096, maxTotalBytes: 16384, flushIntervalMs: 10_000, logger: silentLogger() });
    await w2.start(new AbortController().signal);
    const newest = w2.stats().file!;
    await w2.stop();
    assert.ok(newest > names.at(-1)!, `${newest} should sort after ${names.at(-1)}`);
    await rm(dir, { recursive: true });
  });

  test('kill -9 loses at most about the last flush interval', async () => {
    const dir = await tmp();
    const script = `
      import { TlogWriter } from ${JSON.stringify(new URL('../../src/mavlink/tlog.ts', import.meta.url).href)};
      import { telemetryFrames } from ${JSON.stringify(new URL('../../scripts/bench/framer.ts', import.meta.url).href)};
      import { pino } from 'pino';
      const w = new TlogWriter({ dir: ${JSON.stringify(dir)}, maxFileBytes: 1 << 26, maxTotalBytes: 1 << 28, flushIntervalMs: 500, logger: pino({ level: 'silent' }) });
      await w.start(new AbortController().signal);
      const frames = telemetryFrames(256);
      let n = 0;
      setInterval(() => { for (let k = 0; k < 10; k++) { w.write(frames[n % 256]); n++; } process.stdout.write(n + '\\n'); }, 10);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], cwd: process.cwd() });
    const written: { atMs: number; n: number }[] = [];
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) written.push({ atMs: performance.now(), n: Number(l) });
    });
    while (written.length < 150) await sleep(50);
    const killAtMs = performance.now();
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const files = (await readdir(dir)).filter((n) => n.endsWith('.tlog'));
    const recs = parseTlog(await readFile(join(dir, files[0]!)));
    // Everything written more than ~1 s before the kill must be on disk.
    const mustHave = [...written].reverse().find((w) => w.atMs < killAtMs - 1000)?.n ?? 0;
    assert.ok(mustHave > 0);
    assert.ok(recs.length >= mustHave, `only ${recs.length} frames on disk, ${mustHave} were written over 1 s before the kill`);
    await rm(dir, { recursive: true });
  });
});
