import type { EventEmitter } from 'node:events';
import type { EndpointSpec } from './endpoint-url.js';
import type { Logger } from '../obs/logger.js';

/**
 * A transport yields byte streams; it knows nothing of MAVLink. One transport may carry several
 * peers (a TCP listener's clients, a UDP listener's senders): each peer is a ByteLink, and each
 * ByteLink becomes its own router port with its own framer.
 */
export interface ByteLink {
  /** Stable for the life of the peer, e.g. "tcp-listen://127.0.0.1:5760#127.0.0.1:40112". */
  readonly id: string;
  /**
   * Queue bytes for the peer. Never blocks: when the peer is slow, the link's bounded outbound
   * queue drops the OLDEST queued chunks (counted in stats) so the newest telemetry wins.
   * Returns false when the chunk could not be queued at all (link closed).
   */
  write(data: Uint8Array): boolean;
}

export interface TransportStats {
  url: string;
  connected: boolean;
  peers: number;
  bytesIn: number;
  bytesOut: number;
  /** Chunks dropped by the outbound queue's drop-oldest policy. */
  dropsOut: number;
  reconnects: number;
  lastError: string | null;
}

export interface TransportEvents {
  open: [link: ByteLink];
  data: [link: ByteLink, chunk: Buffer];
  close: [link: ByteLink];
  /** Non-fatal: logged by the caller; the transport keeps retrying on its own. */
  error: [err: Error];
}

export interface Transport extends EventEmitter<TransportEvents> {
  readonly spec: EndpointSpec;
  /** Begins connecting/listening and keeps reconnecting (with backoff) until the signal aborts or stop() is called. */
  start(signal: AbortSignal): Promise<void>;
  stop(): Promise<void>;
  stats(): TransportStats;
}

export interface TransportDeps {
  logger: Logger;
  /** Max bytes queued per peer before drop-oldest kicks in. */
  maxQueueBytes?: number;
}

export type TransportFactory = (spec: EndpointSpec, deps: TransportDeps) => Transport;
