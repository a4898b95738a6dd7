import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Chain } from '../fakes/chain.js';
import { parseTlog } from '../../src/mavlink/tlog.js';

/**
 * Issue 6's proof: the broker is stopped for 30 s while the simulated autopilot streams. The air
 * side spools; after the broker returns the spool drains as history, and the ground-side tlogs end
 * up with every autopilot frame the air-side tlog holds for the outage, in order, with no duplicates.
 */
const OUTAGE_MS = 30_000;
const chain = new Chain({ tlog: true, spool: true, sim: { speedup: 2 } });

before(async () => {
  await chain.start();
});
after(async () => {
  await chain.stop();
});

async function tlogFrames(dir: string, filter: (name: string) => boolean): Promise<{ timestampUs: bigint; frame: Buffer }[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.tlog') && filter(n)).sort();
  return (await Promise.all(names.map(async (n) => parseTlog(await readFile(join(dir, n)))))).flat();
}

test('a 30 s broker outage loses no autopilot frame: the ground tlogs hold all of it, in order, once', { timeout: 150_000 }, async () => {
  const gcs = chain.gcs!;
  await gcs.waitFor('HEARTBEAT', () => true, 15_000, 0);
  await sleep(1000);
  const stopAtUs = BigInt(Date.now()) * 1000n;
  await chain.broker.stop();
  await sleep(OUTAGE_MS);
  const startAtUs = BigInt(Date.now()) * 1000n;
  await chain.broker.start();

  // Wait for the spool to drain and the gateway to acknowledge all of it.
  const air = (): NonNullable<ReturnType<NonNullable<typeof chain.air>['snapshot']>['relay']> => chain.air!.snapshot().relay!;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const h = air().history;
    if (air().batchesSpooled > 0 && h !== null && h.ackedSeq >= (chain.air!.snapshot().spool?.lastSeq ?? Infinity)) break;
    await sleep(250);
  }
  await sleep(1000);
  const snap = chain.air!.snapshot();
  assert.ok(snap.relay!.batchesSpooled > 100, `only ${snap.relay!.batchesSpooled} batches spooled during the outage`);
  assert.ok(snap.relay!.history!.ackedSeq >= snap.spool!.lastSeq, `history acked ${snap.relay!.history!.ackedSeq} of ${snap.spool!.lastSeq}`);

  // Make the recorders flush what they hold.
  await chain.air!.flushRecorders();
  await chain.ground!.flushRecorders();

  // The air-side record of the outage, from the autopilot (1/1), with a second of margin at each end
  // for frames in flight when the broker died or came back.
  const margin = 1_000_000n;
  const airFrames = (await tlogFrames(join(chain.dir, 'air-tlog'), () => true))
    .filter((r) => r.timestampUs > stopAtUs + margin && r.timestampUs < startAtUs - margin && r.frame[5] === 1 && r.frame[6] === 1)
    .map((r) => r.frame.toString('hex'));
  assert.ok(airFrames.length > 500, `the air tlog holds only ${airFrames.length} autopilot frames for the outage`);

  const groundDir = join(chain.dir, 'ground-tlog');
  const history = (await tlogFrames(groundDir, (n) => n.includes('-history-'))).map((r) => r.frame.toString('hex'));
  const live = (await tlogFrames(groundDir, (n) => !n.includes('-history-'))).map((r) => r.frame.toString('hex'));
  assert.ok(history.length > 0, 'history arrived on the ground');

  // Every outage frame is in the ground's history, in the same order (a subsequence match).
  let i = 0;
  for (const h of history) if (i < airFrames.length && h === airFrames[i]) i++;
  assert.equal(i, airFrames.length, `only ${i} of ${airFrames.length} outage frames found in order in the ground history`);
  // No duplicates: no frame appears in the history more often than the autopilot sent it (an idle
  // vehicle may legitimately repeat a frame byte for byte when the 8-bit seq wraps).
  const sent = new Map<string, number>();
  for (const r of await tlogFrames(join(chain.dir, 'air-tlog'), () => true)) {
    const k = r.frame.toString('hex');
    sent.set(k, (sent.get(k) ?? 0) + 1);
  }
  const recorded = new Map<string, number>();
  for (const h of history) recorded.set(h, (recorded.get(h) ?? 0) + 1);
  const extra = [...recorded].filter(([k, n]) => n > (sent.get(k) ?? 0));
  assert.deepEqual(extra.map(([k, n]) => `${k.slice(0, 20)}… x${n}`), [], 'frames recorded in the history more often than sent');
  // History is never fed to live ground stations: no outage frame was both recorded as history and
  // delivered live more often than the autopilot sent it (idle frames repeat byte for byte when
  // the 8-bit seq wraps, so the check counts copies rather than looking for equal bytes).
  const count = (list: Iterable<string>): Map<string, number> => {
    const m = new Map<string, number>();
    for (const k of list) m.set(k, (m.get(k) ?? 0) + 1);
    return m;
  };
  const liveCount = count(live);
  const gcsCount = count(gcs.rx.map((r) => r.frame.bytes.toString('hex')));
  const doubled = [...new Set(airFrames)].filter((k) => (recorded.get(k) ?? 0) + Math.max(liveCount.get(k) ?? 0, gcsCount.get(k) ?? 0) > (sent.get(k) ?? 0));
  assert.deepEqual(doubled.map((k) => k.slice(0, 24)), [], 'outage frames that reached the live path as well as the history');
});
