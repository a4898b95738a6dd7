import type { SimFaults } from './options.js';

/** mulberry32: tiny, fast, deterministic PRNG in [0, 1). */
export function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FaultStats {
  bytesDropped: number;
  bytesCorrupted: number;
}

/** Byte-level damage on the way out: drop or bit-flip a fraction of bytes. */
export class FaultInjector {
  readonly stats: FaultStats = { bytesDropped: 0, bytesCorrupted: 0 };
  private faults: SimFaults;
  private readonly rng: () => number;

  constructor(faults: SimFaults, seed: number) {
    this.faults = { ...faults };
    this.rng = makeRng(seed);
  }

  set(faults: Partial<SimFaults>): void {
    const next = { ...this.faults, ...faults };
    for (const k of ['dropRate', 'corruptRate'] as const) {
      if (!(next[k] >= 0 && next[k] <= 1)) throw new RangeError(`fault ${k} must be within 0..1, got ${next[k]}`);
    }
    for (const k of ['stallEveryMs', 'stallMs', 'rebootEveryMs'] as const) {
      if (!(next[k] >= 0)) throw new RangeError(`fault ${k} must be >= 0, got ${next[k]}`);
    }
    this.faults = next;
  }

  get current(): Readonly<SimFaults> {
    return this.faults;
  }

  /** Returns the chunk as it should go on the wire (the same buffer when no fault is active). */
  apply(chunk: Buffer): Buffer {
    const { dropRate, corruptRate } = this.faults;
    if (dropRate === 0 && corruptRate === 0) return chunk;
    const out = Buffer.allocUnsafe(chunk.length);
    let n = 0;
    for (const byte of chunk) {
      if (dropRate > 0 && this.rng() < dropRate) {
        this.stats.bytesDropped++;
        continue;
      }
      let b = byte;
      if (corruptRate > 0 && this.rng() < corruptRate) {
        b ^= 1 << Math.floor(this.rng() * 8);
        this.stats.bytesCorrupted++;
      }
      out[n++] = b;
    }
    return out.subarray(0, n);
  }
}
