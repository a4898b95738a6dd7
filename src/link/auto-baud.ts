import type { Logger } from '../obs/logger.js';

/**
 * Baud-rate detection for `serial://…?bauds=57600,115200,921600`: while no valid frame arrives
 * for `probeMs` at the current rate, try the next one. Once frames flow the rate is kept; a long
 * silence (autopilot rebooted into another rate, cable swapped) starts the hunt again.
 */
export interface BaudSettable {
  readonly baudRate: number;
  setBaudRate(baud: number): Promise<void>;
}

export interface AutoBaudOptions {
  port: BaudSettable;
  rates: readonly number[];
  /** Valid (CRC-checked) frames seen so far on this link. */
  validFrames: () => number;
  logger: Logger;
  probeMs?: number;
  /** Silence after which a locked rate is questioned again. */
  relockAfterMs?: number;
}

export class AutoBaud {
  private timer: NodeJS.Timeout | null = null;
  private lastFrames = 0;
  private silentMs = 0;
  private locked = false;

  constructor(private readonly opts: AutoBaudOptions) {}

  start(signal: AbortSignal): void {
    const probeMs = this.opts.probeMs ?? 1500;
    this.lastFrames = this.opts.validFrames();
    this.timer = setInterval(() => void this.step(probeMs), probeMs);
    this.timer.unref();
    signal.addEventListener('abort', () => this.stop(), { once: true });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get isLocked(): boolean {
    return this.locked;
  }

  private async step(probeMs: number): Promise<void> {
    const frames = this.opts.validFrames();
    const progressed = frames > this.lastFrames;
    this.lastFrames = frames;
    if (progressed) {
      if (!this.locked) this.opts.logger.info({ baudRate: this.opts.port.baudRate }, 'baud rate detected');
      this.locked = true;
      this.silentMs = 0;
      return;
    }
    this.silentMs += probeMs;
    if (this.locked && this.silentMs < (this.opts.relockAfterMs ?? 10_000)) return;
    this.locked = false;
    const { rates, port } = this.opts;
    const next = rates[(rates.indexOf(port.baudRate) + 1) % rates.length] ?? port.baudRate;
    try {
      await port.setBaudRate(next);
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message, baudRate: next }, 'cannot switch baud rate');
    }
  }
}
