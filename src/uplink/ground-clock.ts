/**
 * How late a stamped batch from the gateway is, without a shared clock. Pings carry the gateway's
 * monotonic time; (our receive time - their send time) = clock offset + one-way delay. Its minimum
 * over recent pings is offset + the link's best delay, so for a batch stamped `sentAtMs`,
 * now - sentAtMs - minimum = how much longer than the best case it travelled. Only durations on
 * each side are compared; a sliding window of minima follows slow clock drift. Reset per session.
 */
const WINDOW = 60;

export class GroundClock {
  private samples: number[] = [];

  reset(): void {
    this.samples = [];
  }

  observe(groundSentMs: number, localNowMs: number): void {
    if (!Number.isFinite(groundSentMs)) return;
    this.samples.push(localNowMs - groundSentMs);
    if (this.samples.length > WINDOW) this.samples.shift();
  }

  /** Delay beyond the best seen, in ms; null before the first ping of the session (no basis yet). */
  excessDelayMs(groundSentMs: number, localNowMs: number): number | null {
    if (this.samples.length === 0 || !Number.isFinite(groundSentMs)) return null;
    let min = Infinity;
    for (const s of this.samples) if (s < min) min = s;
    return Math.max(0, localNowMs - groundSentMs - min);
  }
}
