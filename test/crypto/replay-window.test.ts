import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ReplayWindow, REPLAY_WINDOW_BITS, type WindowVerdict } from '../../src/crypto/index.js';

/** The obviously-correct (and memory-hungry) specification the ring bitmap must match. */
class ModelWindow {
  readonly seen = new Set<bigint>();
  top = -1n;
  constructor(readonly size: bigint) {}
  check(c: bigint): WindowVerdict {
    if (c > this.top) return 'ok';
    if (this.top - c >= this.size) return 'too-old';
    return this.seen.has(c) ? 'replay' : 'ok';
  }
  commit(c: bigint): void {
    this.seen.add(c);
    if (c > this.top) this.top = c;
  }
}

const MAX_U64 = (1n << 64n) - 1n;

void describe('ReplayWindow', () => {
  void test('default width is 2048 and the edges are exact', () => {
    const w = new ReplayWindow();
    assert.equal(w.sizeBits, REPLAY_WINDOW_BITS);
    assert.equal(REPLAY_WINDOW_BITS, 2048);
    assert.equal(w.highest, null);
    assert.equal(w.check(0n), 'ok');
    w.commit(5000n);
    assert.equal(w.highest, 5000n);
    assert.equal(w.check(5000n), 'replay');
    assert.equal(w.check(5000n - 2047n), 'ok'); // oldest counter still inside
    assert.equal(w.check(5000n - 2048n), 'too-old'); // first one outside
    assert.equal(w.check(0n), 'too-old');
    assert.equal(w.check(5001n), 'ok');
    assert.equal(w.check(MAX_U64), 'ok');
    assert.equal(w.check(MAX_U64 + 1n), 'too-old');
    assert.equal(w.check(-1n), 'too-old');
  });

  void test('the full 64-bit range works, including 2^64-1', () => {
    const w = new ReplayWindow();
    w.commit(MAX_U64 - 1n);
    w.commit(MAX_U64);
    assert.equal(w.check(MAX_U64), 'replay');
    assert.equal(w.check(MAX_U64 - 1n), 'replay');
    assert.equal(w.check(MAX_U64 - 2n), 'ok');
  });

  void test('commit refuses what check refuses (a caller bug must be loud)', () => {
    const w = new ReplayWindow();
    w.commit(10n);
    assert.throws(() => w.commit(10n), /replay/);
    w.commit(5000n);
    assert.throws(() => w.commit(10n), /too-old/);
  });

  void test('rejects bad sizes', () => {
    for (const s of [0, 31, 33, 1.5, -32]) assert.throws(() => new ReplayWindow(s), RangeError);
  });

  void test('property: matches the set-based model for any sequence (check-then-commit-if-ok)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(32, 64, 2048),
        fc.array(
          fc.oneof(
            fc.bigInt({ min: 0n, max: 300n }),
            fc.bigInt({ min: 0n, max: 10_000n }),
            fc.bigInt({ min: MAX_U64 - 5000n, max: MAX_U64 }),
          ),
          { maxLength: 400 },
        ),
        (size, counters) => {
          const w = new ReplayWindow(size);
          const m = new ModelWindow(BigInt(size));
          for (const c of counters) {
            const verdict = w.check(c);
            assert.equal(verdict, m.check(c), `counter ${c}`);
            if (verdict === 'ok') {
              w.commit(c);
              m.commit(c);
            }
            assert.equal(w.highest, m.top < 0n ? null : m.top);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  void test('property: any permutation of counters within the window is accepted exactly once', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 1n << 40n }),
        fc.shuffledSubarray(Array.from({ length: REPLAY_WINDOW_BITS }, (_, i) => BigInt(i)), { minLength: 1 }),
        (base, offsets) => {
          const w = new ReplayWindow();
          for (const o of offsets) {
            assert.equal(w.check(base + o), 'ok');
            w.commit(base + o);
          }
          for (const o of offsets) assert.equal(w.check(base + o), 'replay');
        },
      ),
      { numRuns: 50 },
    );
  });

  void test('property: check never changes state (the window moves only on commit, i.e. after auth)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.bigInt({ min: 0n, max: 5000n }), { maxLength: 100 }),
        fc.array(fc.bigInt({ min: 0n, max: MAX_U64 }), { maxLength: 100 }),
        (committed, probes) => {
          const a = new ReplayWindow();
          const b = new ReplayWindow();
          for (const c of committed) {
            if (a.check(c) === 'ok') {
              a.commit(c);
              b.commit(c);
            }
          }
          // Forged envelopes: checked (maybe 'ok', e.g. a huge counter), then rejected by the tag.
          for (const p of probes) a.check(p);
          assert.equal(a.highest, b.highest);
          for (let c = 0n; c <= 5100n; c += 7n) assert.equal(a.check(c), b.check(c));
        },
      ),
      { numRuns: 100 },
    );
  });
});
