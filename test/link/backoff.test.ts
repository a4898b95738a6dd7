import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, sleepMs } from '../../src/link/backoff.js';

void describe('Backoff', () => {
  void it('doubles from the initial delay up to the cap, without jitter', () => {
    const b = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, jitterRatio: 0 });
    assert.deepEqual(Array.from({ length: 7 }, () => b.nextDelayMs()), [100, 200, 400, 800, 1000, 1000, 1000]);
    b.reset();
    assert.equal(b.nextDelayMs(), 100);
  });

  void it('jitter only shortens the delay, within the ratio', () => {
    const low = new Backoff({ initialDelayMs: 1000, maxDelayMs: 1000, jitterRatio: 0.2, random: () => 0.999 });
    const high = new Backoff({ initialDelayMs: 1000, maxDelayMs: 1000, jitterRatio: 0.2, random: () => 0 });
    assert.equal(low.nextDelayMs(), 800);
    assert.equal(high.nextDelayMs(), 1000);
    const real = new Backoff({ initialDelayMs: 100, maxDelayMs: 250 });
    for (let i = 0; i < 100; i++) {
      const d = real.nextDelayMs();
      assert.ok(d >= 80 && d <= 250, `delay ${d} in range`);
    }
  });

  void it('stays finite after very many attempts', () => {
    const b = new Backoff({ initialDelayMs: 100, maxDelayMs: 5000, jitterRatio: 0 });
    for (let i = 0; i < 10_000; i++) b.nextDelayMs();
    assert.equal(b.nextDelayMs(), 5000);
  });

  void it('rejects nonsense options', () => {
    assert.throws(() => new Backoff({ initialDelayMs: 500, maxDelayMs: 100 }), RangeError);
    assert.throws(() => new Backoff({ factor: 0.5 }), RangeError);
  });
});

void describe('sleepMs', () => {
  void it('resolves true after the delay', async () => {
    const t0 = performance.now();
    assert.equal(await sleepMs(30), true);
    assert.ok(performance.now() - t0 >= 25);
  });

  void it('resolves false promptly when aborted, and at once when already aborted', async () => {
    const ac = new AbortController();
    const t0 = performance.now();
    setTimeout(() => ac.abort(), 10);
    assert.equal(await sleepMs(10_000, ac.signal), false);
    assert.ok(performance.now() - t0 < 1_000);
    assert.equal(await sleepMs(10_000, ac.signal), false);
  });
});
