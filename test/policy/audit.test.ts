import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog, MAX_AUDIT_LINE_BYTES } from '../../src/policy/audit.js';
import type { VerdictRecord } from '../../src/policy/engine.js';
import { ErrorCodes, MavmqError } from '../../src/errors.js';
import { armedInAir, commandLong, gcs, heartbeat, makeEngine } from './helpers.js';

async function dir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'mavmq-audit-'));
}

function record(i: number, over: Partial<VerdictRecord> = {}): VerdictRecord {
  return {
    time: new Date(1_700_000_000_000 + i).toISOString(), session: 'abcd', rule: 'reboot-while-armed', verdict: 'deny', reason: 'reboot while armed',
    rewritten: false, dryRun: false, routine: false,
    frame: { msgid: 76, name: 'COMMAND_LONG', sysid: 255, compid: 190, command: 246, commandName: 'PREFLIGHT_REBOOT_SHUTDOWN', params: [1, 0, 0, 0, 0, 0, i] },
    ...over,
  };
}

async function lines(file: string): Promise<unknown[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  if (text === '') return [];
  assert.ok(text.endsWith('\n'), 'no torn last line');
  return text.slice(0, -1).split('\n').map((l) => JSON.parse(l) as unknown);
}

describe('audit log', () => {
  test('engine verdicts become well-formed JSON lines; routine frames are skipped unless asked for', async () => {
    const file = join(await dir(), 'sub', 'audit.jsonl');
    const audit = new AuditLog({ file });
    await audit.start();
    const { engine } = makeEngine(undefined, { onVerdict: (v) => audit.write(v) });
    armedInAir(engine);
    engine.check(commandLong(246, [1]));
    engine.check(heartbeat({ armed: false, type: 6, autopilotType: 8 }, gcs));
    engine.check(commandLong(20));
    await audit.flush();
    const got = (await lines(file)) as VerdictRecord[];
    assert.equal(got.length, 2, 'the GCS heartbeat is routine');
    const [deny, rtl] = got;
    assert.match(deny!.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(deny!.session, 'sess-1');
    assert.deepEqual({ msgid: deny!.frame.msgid, name: deny!.frame.name, sysid: deny!.frame.sysid, compid: deny!.frame.compid, command: deny!.frame.command }, { msgid: 76, name: 'COMMAND_LONG', sysid: 255, compid: 190, command: 246 });
    assert.deepEqual(deny!.frame.params, [1, 0, 0, 0, 0, 0, 0]);
    assert.equal(deny!.rule, 'reboot-while-armed');
    assert.equal(deny!.verdict, 'deny');
    assert.equal(deny!.dryRun, false);
    assert.equal(rtl!.verdict, 'allow');
    assert.equal(rtl!.frame.command, 20);
    assert.equal(audit.stats().skippedRoutine, 1);
    assert.ok(audit.stats().fsyncs >= 1);
    await audit.stop();
    const mode = (await stat(file)).mode & 0o777;
    assert.equal(mode & 0o007, 0, 'not world-readable');

    const all = new AuditLog({ file: join(await dir(), 'all.jsonl'), includeRoutine: true });
    await all.start();
    all.write(record(1, { routine: true, verdict: 'allow', rule: 'message-allowed' }));
    await all.stop();
    assert.equal((await lines(join(all.stats().file))).length, 1);
  });

  test('bounded: the live file stays under maxBytes, one rotation file, no torn lines', async () => {
    const file = join(await dir(), 'audit.jsonl');
    const audit = new AuditLog({ file, maxBytes: 8192 });
    await audit.start();
    for (let i = 0; i < 500; i++) {
      audit.write(record(i));
      if (i % 50 === 0) await audit.flush();
    }
    await audit.stop();
    const s = audit.stats();
    assert.equal(s.lines, 500);
    assert.ok(s.rotations >= 5, `rotations ${s.rotations}`);
    assert.ok((await stat(file)).size <= 8192);
    assert.ok((await stat(`${file}.1`)).size <= 8192);
    const live = (await lines(file)) as VerdictRecord[];
    const prev = (await lines(`${file}.1`)) as VerdictRecord[];
    // The newest records survive, in order, continuing from .1 into the live file.
    const seq = [...prev, ...live].map((r) => r.frame.params?.[6]);
    assert.equal(seq.at(-1), 499);
    for (let i = 1; i < seq.length; i++) assert.equal(seq[i], (seq[i - 1] as number) + 1);
  });

  test('a full file at start is rotated before the first new line', async () => {
    const file = join(await dir(), 'audit.jsonl');
    await writeFile(file, `${'x'.repeat(9000)}\n`);
    const audit = new AuditLog({ file, maxBytes: 8192 });
    await audit.start();
    audit.write(record(1));
    await audit.stop();
    assert.equal((await lines(file)).length, 1);
    assert.equal(audit.stats().rotations, 1);
  });

  test('oversized records become a marker line; a full queue drops and counts', async () => {
    const file = join(await dir(), 'audit.jsonl');
    const audit = new AuditLog({ file, maxQueueBytes: MAX_AUDIT_LINE_BYTES });
    await audit.start();
    audit.write(record(1, { reason: 'r'.repeat(10_000) }));
    for (let i = 0; i < 100; i++) audit.write(record(i));
    await audit.stop();
    const got = (await lines(file)) as (VerdictRecord & { truncated?: boolean })[];
    assert.equal(got[0]!.truncated, true);
    assert.ok(audit.stats().dropped > 0);
    assert.equal(got.length, audit.stats().lines);
  });

  test('never throws into the caller: an unwritable path fails start() clearly, and write() only counts', async () => {
    const blocker = join(await dir(), 'file');
    await writeFile(blocker, 'not a directory');
    const bad = new AuditLog({ file: join(blocker, 'audit.jsonl') });
    await assert.rejects(bad.start(), (e: unknown) => e instanceof MavmqError && e.code === ErrorCodes.POLICY_INVALID);
    const errors: Error[] = [];
    const unstarted = new AuditLog({ file: join(blocker, 'audit.jsonl'), onError: (e) => errors.push(e) });
    assert.doesNotThrow(() => unstarted.write(record(1)));
    await unstarted.flush();
    assert.ok(unstarted.stats().errors >= 1);
    assert.ok(errors.length >= 1);
    const settled = unstarted.stats().errors;
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(unstarted.stats().errors, settled, 'no retry loop after a failure: the next write tries again');
    assert.ok(unstarted.stats().dropped >= 1);
    const throwingHandler = new AuditLog({ file: join(blocker, 'audit.jsonl'), onError: () => { throw new Error('logger down'); } });
    assert.doesNotThrow(() => throwingHandler.write(record(1)));
    await throwingHandler.stop();
  });
});
