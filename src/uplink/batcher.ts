/**
 * Packs raw MAVLink frames into one envelope body by size and time, so per-envelope overhead
 * (MQTT header, AEAD header and tag: ~40-60 bytes) stays small. Frames are self-delimiting, so the
 * body is just their concatenation. `flushNow` sends at once (latency-critical frames).
 */
export interface BatcherOptions {
  maxBytes: number;
  maxDelayMs: number;
  onBatch: (body: Buffer, frames: number) => void;
}

export class Batcher {
  private parts: Uint8Array[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: BatcherOptions) {}

  add(frame: Uint8Array, flushNow = false): void {
    if (this.bytes + frame.length > this.opts.maxBytes && this.parts.length > 0) this.flush();
    this.parts.push(frame);
    this.bytes += frame.length;
    if (flushNow || this.bytes >= this.opts.maxBytes || this.opts.maxDelayMs === 0) {
      this.flush();
    } else if (this.timer === null) {
      this.timer = setTimeout(() => this.flush(), this.opts.maxDelayMs);
    }
  }

  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.parts.length === 0) return;
    const body = Buffer.concat(this.parts, this.bytes);
    const frames = this.parts.length;
    this.parts = [];
    this.bytes = 0;
    this.opts.onBatch(body, frames);
  }

  /** Drop what is pending (e.g. the session ended: never resend into a new session). */
  clear(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.parts = [];
    this.bytes = 0;
  }
}
