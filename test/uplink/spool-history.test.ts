import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool } from '../../src/uplink/spool.js';
import { HistoryPump, HistoryReceiver, decodeHistoryBody, encodeHistoryBody, type HistoryFrame } from '../../src/uplink/spool-history.js';
import { telemetryFrames } from '../../scripts/bench/framer.js';

const ID = Buffer.from('0123456789abcdef', 'hex');
const frames = telemetryFrames(2000);
const batch = (i: number, n = 5): Buffer => Buffer.concat(frames.slice((i * n) % 1900, ((i * n) % 1900) + n));

describe('history (spool drain to the ground tlog)', () => {
  test('body round trip and strict decoding', () => {
    const items = [
      { seq: 5, cls: 2 as const, ageMs: 1234, frames: batch(1) },
      { seq: 9, cls: 0 as const, ageMs: null, frames: batch(2, 1) },
    ];
    const body = encodeHistoryBody({ spoolId: ID, afterSeq: 4, items });
    const d = decodeHistoryBody(body);
    assert.ok(d !== null);
    assert.equal(d.afterSeq, 4);
    assert.ok(d.spoolId.equals(ID));
    assert.deepEqual(d.items.map((x) => [x.seq, x.cls, x.ageMs, x.frames.toString('hex')]), items.map((x) => [x.seq, x.cls, x.ageMs, x.frames.toString('hex')]));
    assert.equal(decodeHistoryBody(body.subarray(0, body.length - 1)), null, 'torn');
    assert.equal(decodeHistoryBody(Buffer.concat([body, Buffer.of(0)])), null, 'trailing bytes');
    const v2 = Buffer.from(body);
    v2[0] = 2;
    assert.equal(decodeHistoryBody(v2), null, 'unknown version');
    assert.equal(decodeHistoryBody(encodeHistoryBody({ spoolId: ID, afterSeq: 9, items })), null, 'seq not after afterSeq');
    const tornFrames = encodeHistoryBody({ spoolId: ID, afterSeq: 0, items: [{ seq: 1, cls: 1, ageMs: 0, frames: batch(3).subarray(0, 50) }] });
    assert.equal(decodeHistoryBody(tornFrames), null, 'frames must be whole');
  });

  test('receiver: in order, duplicates dropped, gaps refused, a new spool starts over, timestamps from relative age', () => {
    const rx = new HistoryReceiver();
    const now = 1_700_000_000_000_000n;
    const body = (after: number, seqs: number[], age: number | null = 1000, id = ID): Buffer =>
      encodeHistoryBody({ spoolId: id, afterSeq: after, items: seqs.map((seq, i) => ({ seq, cls: 2, ageMs: age === null ? null : age - i * 100, frames: batch(seq, 2) })) });
    let r = rx.accept(body(0, [1, 2, 3]), now, 50);
    assert.ok(r.ok);
    assert.equal(r.records, 3);
    assert.equal(r.frames.length, 6);
    assert.equal(r.ackUpto, 3);
    assert.equal(r.frames[0]?.timestampUs, now - 1_050_000n, 'now - (age + one-way delay)');
    r = rx.accept(body(3, [4, 5]), now + 1000n);
    assert.ok(r.ok && r.records === 2 && r.ackUpto === 5);
    r = rx.accept(body(3, [4, 5, 6]), now + 2000n); // resent after a rewind: 4 and 5 are duplicates
    assert.ok(r.ok && r.records === 1 && r.duplicates === 2 && r.ackUpto === 6);
    r = rx.accept(body(8, [9]), now + 3000n); // 7..8 never arrived
    assert.deepEqual(r, { ok: false, reason: 'gap', ackUpto: 6 });
    r = rx.accept(body(6, [7, 8], null), now + 4000n); // unknown age: keeps the previous timestamp (order)
    assert.ok(r.ok);
    const ts = r.frames.map((f) => f.timestampUs);
    assert.ok(ts.every((t) => t >= now - 1_050_000n));
    const other = Buffer.from('ffffffffffffffff', 'hex');
    r = rx.accept(body(0, [1]), now, 0);
    assert.ok(r.ok && r.duplicates === 1, 'same spool: old seq is a duplicate');
    r = rx.accept(body(0, [1], 10, other), now);
    assert.ok(r.ok && r.records === 1, 'a new spool identity starts over');
    assert.equal(rx.stats().spoolResets, 1);
    assert.deepEqual(rx.accept(Buffer.from('junk'), now), { ok: false, reason: 'malformed', ackUpto: 1 });
  });

  test('spool -> pump -> lossy link with restarts -> receiver: every frame once, in order; the spool ends empty', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mavmq-history-'));
    const spool = await Spool.open({ dir, segmentBytes: 64 * 1024 });
    const sent: Buffer[] = [];
    for (let i = 0; i < 400; i++) {
      const b = batch(i, 1 + (i % 7));
      sent.push(b);
      spool.append(i % 5 === 0 ? 'critical' : 'bulk', b);
    }
    await spool.flush();
    const pump = new HistoryPump({ spool, maxBodyBytes: 2048, maxInFlightBytes: 8192, ackTimeoutMs: 500 });
    const rx = new HistoryReceiver();
    const tlog: HistoryFrame[] = [];
    let now = 0;
    let dropped = 0;
    let k = 0;
    for (let round = 0; round < 2000 && spool.stats().ackedSeq < spool.lastAppendedSeq; round++) {
      now += 50;
      const bodies = await pump.pump(now, 3000);
      for (const b of bodies) {
        if (++k % 9 === 0) {
          dropped++; // lost on the way (broker restart, QoS 1 not enough across a reconnect)
          continue;
        }
        const r = rx.accept(b, BigInt(now) * 1000n);
        if (r.ok) tlog.push(...r.frames);
        if (r.ackUpto !== null) await pump.onAck(r.ackUpto, now);
      }
      if (round % 37 === 36) pump.restart(); // reconnect / new session
      pump.tick(now);
    }
    assert.ok(dropped > 0 && pump.stats().rewinds > 0);
    assert.equal(spool.stats().ackedSeq, spool.lastAppendedSeq, 'everything acknowledged');
    const expected = Buffer.concat(sent);
    assert.ok(Buffer.concat(tlog.map((f) => f.frame)).equals(expected), 'the tlog has every frame exactly once, in order');
    for (let i = 1; i < tlog.length; i++) assert.ok((tlog[i] as HistoryFrame).timestampUs >= (tlog[i - 1] as HistoryFrame).timestampUs);
    await spool.close();
    await rm(dir, { recursive: true });
  });
});
