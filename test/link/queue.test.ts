import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DropOldestQueue } from '../../src/link/queue.js';

const bytes = (n: number, fill = 0): Uint8Array => new Uint8Array(n).fill(fill);

void describe('DropOldestQueue', () => {
  void it('is FIFO while under the cap', () => {
    const q = new DropOldestQueue(100);
    assert.equal(q.push(bytes(10, 1)), 0);
    assert.equal(q.push(bytes(20, 2)), 0);
    assert.equal(q.bytes, 30);
    assert.equal(q.length, 2);
    assert.equal(q.shift()?.[0], 1);
    assert.equal(q.shift()?.[0], 2);
    assert.equal(q.shift(), undefined);
    assert.equal(q.bytes, 0);
    assert.equal(q.droppedChunks, 0);
  });

  void it('drops the oldest chunks to make room and counts them', () => {
    const q = new DropOldestQueue(100);
    q.push(bytes(40, 1));
    q.push(bytes(40, 2));
    assert.equal(q.push(bytes(40, 3)), 1, 'one chunk had to go');
    assert.equal(q.droppedChunks, 1);
    assert.equal(q.droppedBytes, 40);
    assert.deepEqual([q.shift()?.[0], q.shift()?.[0]], [2, 3], 'the newest survive');
  });

  void it('drops a chunk larger than the whole cap without disturbing the queue', () => {
    const q = new DropOldestQueue(100);
    q.push(bytes(50, 1));
    assert.equal(q.push(bytes(101, 9)), 1);
    assert.equal(q.length, 1);
    assert.equal(q.shift()?.[0], 1);
    assert.equal(q.droppedBytes, 101);
  });

  void it('fills exactly to the cap', () => {
    const q = new DropOldestQueue(100);
    q.push(bytes(60));
    assert.equal(q.push(bytes(40)), 0);
    assert.equal(q.bytes, 100);
    assert.equal(q.push(bytes(1)), 1);
    assert.equal(q.bytes, 41);
  });

  void it('ignores empty chunks', () => {
    const q = new DropOldestQueue(10);
    assert.equal(q.push(new Uint8Array(0)), 0);
    assert.equal(q.length, 0);
  });

  void it('shiftBatch coalesces within a byte budget but always returns at least one chunk', () => {
    const q = new DropOldestQueue(1000);
    for (let i = 0; i < 5; i++) q.push(bytes(100, i));
    assert.deepEqual(q.shiftBatch(250).map((c) => c[0]), [0, 1]);
    assert.deepEqual(q.shiftBatch(50).map((c) => c[0]), [2], 'an oversized head still comes out alone');
    assert.deepEqual(q.shiftBatch(10_000).map((c) => c[0]), [3, 4]);
    assert.deepEqual(q.shiftBatch(10_000), []);
  });

  void it('clear() empties without counting drops', () => {
    const q = new DropOldestQueue(100);
    q.push(bytes(10));
    q.clear();
    assert.equal(q.length, 0);
    assert.equal(q.bytes, 0);
    assert.equal(q.droppedChunks, 0);
  });

  void it('rejects a non-positive cap', () => {
    assert.throws(() => new DropOldestQueue(0), RangeError);
    assert.throws(() => new DropOldestQueue(1.5), RangeError);
  });

  void it('property: never exceeds its cap; keeps a newest-first suffix in order; accounts for every chunk', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('push' as const), size: fc.integer({ min: 0, max: 300 }) }),
      fc.record({ kind: fc.constant('shift' as const) }),
      fc.record({ kind: fc.constant('batch' as const), max: fc.integer({ min: 1, max: 400 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.array(op, { maxLength: 300 }), (cap, ops) => {
        const q = new DropOldestQueue(cap);
        // Model: ids of queued chunks; each chunk carries its id in the first 4 bytes.
        let model: { id: number; size: number }[] = [];
        let nextId = 0;
        let pushed = 0;
        let taken = 0;
        let dropped = 0;
        for (const o of ops) {
          if (o.kind === 'push') {
            if (o.size === 0) continue;
            const id = nextId++;
            const chunk = new Uint8Array(Math.max(o.size, 4));
            new DataView(chunk.buffer).setUint32(0, id);
            pushed++;
            const d = q.push(chunk);
            dropped += d;
            if (chunk.byteLength > cap) {
              assert.equal(d, 1);
            } else {
              model.push({ id, size: chunk.byteLength });
              let total = model.reduce((s, c) => s + c.size, 0);
              let evicted = 0;
              while (total > cap) {
                total -= model.shift()?.size ?? 0;
                evicted++;
              }
              assert.equal(d, evicted, 'drops exactly the oldest needed to fit');
            }
          } else {
            const out = o.kind === 'shift' ? [q.shift()].filter((c) => c !== undefined) : q.shiftBatch(o.max);
            for (const c of out) {
              const expected = model.shift();
              assert.equal(new DataView(c.buffer, c.byteOffset).getUint32(0), expected?.id, 'FIFO order');
              taken++;
            }
            if (o.kind === 'batch' && out.length > 1) {
              assert.ok(out.reduce((s, c) => s + c.byteLength, 0) <= o.max);
            }
          }
          assert.ok(q.bytes <= cap, 'never grows beyond its cap');
          assert.equal(q.bytes, model.reduce((s, c) => s + c.size, 0));
          assert.equal(q.length, model.length);
        }
        assert.equal(q.droppedChunks, dropped);
        assert.equal(pushed, taken + dropped + q.length, 'every chunk is taken, dropped or still queued');
        model = [];
      }),
      { numRuns: 300 },
    );
  });
});
