/**
 * Reconnect backoff: the delay starts small (a flapping USB cable or a restarting SITL comes back
 * fast), doubles per failed attempt up to a cap, and carries jitter so that several links (or
 * several drones behind one NAT) do not retry in lock-step.
 */
export interface BackoffOptions {
  initialDelayMs?: number;
  maxDelayMs?: number;
  factor?: number;
  /** Fraction of the delay removed at random: 0.2 gives a delay in [0.8·d, d]. Never exceeds the cap. */
  jitterRatio?: number;
  /** Injectable for tests; must return a number in [0, 1). */
  random?: () => number;
}

export class Backoff {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  private readonly factor: number;
  private readonly jitterRatio: number;
  private readonly random: () => number;
  private attempt = 0;

  constructor(opts: BackoffOptions = {}) {
    this.initialDelayMs = opts.initialDelayMs ?? 100;
    this.maxDelayMs = opts.maxDelayMs ?? 5_000;
    this.factor = opts.factor ?? 2;
    this.jitterRatio = Math.min(Math.max(opts.jitterRatio ?? 0.2, 0), 1);
    this.random = opts.random ?? Math.random;
    if (!(this.initialDelayMs >= 0) || !(this.maxDelayMs >= this.initialDelayMs) || !(this.factor >= 1)) {
      throw new RangeError('backoff needs 0 <= initialDelayMs <= maxDelayMs and factor >= 1');
    }
  }

  /** Failed attempts since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The delay to wait before the next attempt; advances the schedule. */
  nextDelayMs(): number {
    // The exponent is clamped so a link down for days never overflows to Infinity.
    const baseMs = Math.min(this.maxDelayMs, this.initialDelayMs * this.factor ** Math.min(this.attempt, 64));
    this.attempt++;
    return Math.round(baseMs * (1 - this.jitterRatio * this.random()));
  }

  /** Call after a successful connection. */
  reset(): void {
    this.attempt = 0;
  }
}

/**
 * Sleeps for delayMs unless the signal aborts first. Never rejects: resolves true when the full
 * delay elapsed, false when aborted, so retry loops can simply `if (!(await sleepMs(...))) break`.
 */
export function sleepMs(delayMs: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, delayMs);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
