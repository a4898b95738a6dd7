import type { Logger } from './logger.js';

/**
 * Counters are logged once per interval, never per frame (mavlink-router's lesson). The latest
 * snapshot is kept for the health endpoint and `mavmq status`.
 */
export interface StatsReporterOptions<T> {
  intervalMs: number;
  logger: Logger;
  collect: () => T;
  /** The compact fields worth a log line (the full snapshot is too big for every interval). */
  summarize: (snapshot: T) => Record<string, unknown>;
}

export class StatsReporter<T> {
  private timer: NodeJS.Timeout | null = null;
  private last: T | null = null;

  constructor(private readonly opts: StatsReporterOptions<T>) {}

  start(signal: AbortSignal): void {
    this.timer = setInterval(() => this.report(), this.opts.intervalMs);
    this.timer.unref();
    signal.addEventListener('abort', () => this.stop(), { once: true });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Fresh snapshot (also what the interval logs). */
  snapshot(): T {
    this.last = this.opts.collect();
    return this.last;
  }

  private report(): void {
    this.opts.logger.info({ stats: this.opts.summarize(this.snapshot()) }, 'stats');
  }
}
