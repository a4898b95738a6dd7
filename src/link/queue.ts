/**
 * Bounded FIFO of byte chunks with a drop-oldest policy, bounded by total bytes.
 *
 * Used per peer while the OS (socket or serial port) applies backpressure. For telemetry the
 * newest data matters most, so when the cap is reached the oldest chunks are discarded (and
 * counted) rather than blocking the writer or growing without bound. Chunks are never split:
 * a half MAVLink frame is worse than a missing one.
 */
export const DEFAULT_MAX_QUEUE_BYTES = 256 * 1024;

export class DropOldestQueue {
  readonly maxBytes: number;
  /** Chunks dropped since creation (oldest evicted, or a single chunk larger than the cap). */
  droppedChunks = 0;
  droppedBytes = 0;
  // Array plus head index: O(1) amortised shift without a linked list; compacted lazily.
  private chunks: Uint8Array[] = [];
  private head = 0;
  private queuedBytes = 0;

  constructor(maxBytes: number = DEFAULT_MAX_QUEUE_BYTES) {
    if (!Number.isInteger(maxBytes) || maxBytes <= 0) throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
    this.maxBytes = maxBytes;
  }

  /** Bytes currently queued; never exceeds maxBytes. */
  get bytes(): number {
    return this.queuedBytes;
  }

  /** Chunks currently queued. */
  get length(): number {
    return this.chunks.length - this.head;
  }

  /**
   * Appends a chunk, evicting the oldest chunks until it fits. A chunk larger than the whole cap
   * is dropped itself. Returns how many chunks were dropped by this call (0 in the common case).
   * The queue keeps a reference to `chunk`: callers must not mutate it afterwards.
   */
  push(chunk: Uint8Array): number {
    if (chunk.byteLength === 0) return 0;
    if (chunk.byteLength > this.maxBytes) {
      this.countDrop(chunk.byteLength);
      return 1;
    }
    let dropped = 0;
    while (this.queuedBytes + chunk.byteLength > this.maxBytes) {
      const oldest = this.shift();
      if (oldest === undefined) break;
      this.countDrop(oldest.byteLength);
      dropped++;
    }
    this.chunks.push(chunk);
    this.queuedBytes += chunk.byteLength;
    return dropped;
  }

  /** Removes and returns the oldest chunk. */
  shift(): Uint8Array | undefined {
    if (this.head >= this.chunks.length) return undefined;
    const chunk = this.chunks[this.head];
    this.chunks[this.head] = EMPTY; // release the reference for GC
    this.head++;
    if (chunk === undefined) return undefined;
    this.queuedBytes -= chunk.byteLength;
    this.compact();
    return chunk;
  }

  /**
   * Removes the oldest chunks whose total stays within maxBatchBytes (always at least one chunk
   * when non-empty), so a writer can coalesce many small frames into one system call.
   */
  shiftBatch(maxBatchBytes: number): Uint8Array[] {
    const batch: Uint8Array[] = [];
    let batchBytes = 0;
    while (this.head < this.chunks.length) {
      const next = this.chunks[this.head];
      if (next === undefined) break;
      if (batch.length > 0 && batchBytes + next.byteLength > maxBatchBytes) break;
      const chunk = this.shift();
      if (chunk === undefined) break;
      batch.push(chunk);
      batchBytes += chunk.byteLength;
    }
    return batch;
  }

  /** Discards everything queued (not counted as drops: used when the link itself goes away). */
  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.queuedBytes = 0;
  }

  private countDrop(byteLength: number): void {
    this.droppedChunks++;
    this.droppedBytes += byteLength;
  }

  private compact(): void {
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}

const EMPTY = new Uint8Array(0);
