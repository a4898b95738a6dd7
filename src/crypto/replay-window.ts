/**
 * Sliding anti-replay window over 64-bit envelope counters (docs/PROTOCOL.md §8), in the style of
 * RFC 6479: a ring bitmap indexed by counter mod size, valid for counters in (highest - size, highest].
 *
 * check() is pure; commit() is separate so that the caller can update the window ONLY after the
 * AEAD tag has verified. Otherwise a forged envelope with a huge counter would slide the window
 * and make every genuine envelope "too old".
 */
export const REPLAY_WINDOW_BITS = 2048;

export type WindowVerdict = 'ok' | 'replay' | 'too-old';

const MAX_U64 = (1n << 64n) - 1n;

export class ReplayWindow {
  readonly sizeBits: number;
  readonly #sizeBig: bigint;
  readonly #words: Uint32Array;
  /** Highest committed counter; -1 before the first commit. */
  #top = -1n;

  constructor(sizeBits: number = REPLAY_WINDOW_BITS) {
    if (!Number.isInteger(sizeBits) || sizeBits < 32 || sizeBits % 32 !== 0) {
      throw new RangeError(`replay window size must be a positive multiple of 32 bits, got ${sizeBits}`);
    }
    this.sizeBits = sizeBits;
    this.#sizeBig = BigInt(sizeBits);
    this.#words = new Uint32Array(sizeBits / 32);
  }

  /** Highest counter accepted so far, or null if none. */
  get highest(): bigint | null {
    return this.#top < 0n ? null : this.#top;
  }

  check(counter: bigint): WindowVerdict {
    if (counter < 0n || counter > MAX_U64) return 'too-old';
    if (counter > this.#top) return 'ok';
    if (this.#top - counter >= this.#sizeBig) return 'too-old';
    return this.#get(counter) ? 'replay' : 'ok';
  }

  /** Marks counter as seen. Call only after authentication, and only when check() said 'ok'. */
  commit(counter: bigint): void {
    const verdict = this.check(counter);
    if (verdict !== 'ok') throw new Error(`ReplayWindow.commit(${counter}) after check said ${verdict}`);
    if (counter > this.#top) {
      const advance = this.#top < 0n ? this.#sizeBig : counter - this.#top;
      if (advance >= this.#sizeBig) {
        this.#words.fill(0);
      } else {
        // Bits for the counters we are sliding over belong to counters that left the window.
        for (let c = this.#top + 1n; c <= counter; c++) this.#clear(c);
      }
      this.#top = counter;
    }
    this.#set(counter);
  }

  #index(counter: bigint): [word: number, mask: number] {
    const bit = Number(counter % this.#sizeBig);
    return [bit >>> 5, 1 << (bit & 31)];
  }

  #get(counter: bigint): boolean {
    const [w, m] = this.#index(counter);
    return ((this.#words[w] ?? 0) & m) !== 0;
  }

  #set(counter: bigint): void {
    const [w, m] = this.#index(counter);
    this.#words[w] = (this.#words[w] ?? 0) | m;
  }

  #clear(counter: bigint): void {
    const [w, m] = this.#index(counter);
    this.#words[w] = (this.#words[w] ?? 0) & ~m;
  }
}
