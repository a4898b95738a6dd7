import type { Transport, ByteLink } from '../link/transport.js';
import { Framer, type Frame, type FramerStats, type SeqState } from '../mavlink/framer.js';
import type { Dialect } from '../mavlink/dialect.js';
import type { Router, PortFilter } from '../mavlink/router.js';
import type { Logger } from '../obs/logger.js';

/**
 * Binds one transport to the router: each peer ByteLink becomes a router port with its own framer
 * (stream state is per peer). Shared by the air side and the ground gateway.
 */
export interface LinkBindingOptions {
  name: string;
  transport: Transport;
  router: Router;
  dialect: Dialect;
  logger: Logger;
  filter?: PortFilter;
  /** Called for every valid frame from this transport, after routing (recorder, state trackers). */
  onFrame?: (frame: Frame, from: string) => void;
}

export interface LinkBindingStats extends FramerStats {
  name: string;
  url: string;
  connected: boolean;
  peers: number;
  bytesOut: number;
  dropsOut: number;
  reconnects: number;
  lastError: string | null;
  /** Sequence-derived loss in percent over the life of the binding. */
  lossPercent: number;
  sources: SeqState[];
}

const ZERO_FRAMER: FramerStats = { frames: 0, bytes: 0, garbageBytes: 0, crcErrors: 0, badLengths: 0, resyncs: 0, unknownMsgids: 0, seqLost: 0 };

export class LinkBinding {
  private readonly framers = new Map<string, Framer>();
  /** Counters of peers that have gone, so totals survive reconnects. */
  private readonly retired: FramerStats = { ...ZERO_FRAMER };
  private lastFrameAtMs = 0;

  constructor(private readonly opts: LinkBindingOptions) {}

  start(signal: AbortSignal): Promise<void> {
    const { transport, router, dialect, logger, filter, onFrame } = this.opts;
    transport.on('open', (link: ByteLink) => {
      this.framers.get(link.id)?.reset();
      if (!this.framers.has(link.id)) this.framers.set(link.id, new Framer(dialect));
      router.addPort({ id: link.id, deliver: (f) => link.write(f.bytes), ...(filter ? { filter } : {}) });
      logger.info({ peer: link.id }, 'peer connected');
    });
    transport.on('data', (link: ByteLink, chunk: Buffer) => {
      const framer = this.framers.get(link.id);
      if (framer === undefined) return;
      framer.push(chunk, (frame) => {
        this.lastFrameAtMs = performance.now();
        router.route(link.id, frame);
        onFrame?.(frame, link.id);
      });
    });
    transport.on('close', (link: ByteLink) => {
      router.removePort(link.id);
      const framer = this.framers.get(link.id);
      if (framer !== undefined) {
        for (const k of Object.keys(this.retired) as (keyof FramerStats)[]) this.retired[k] += framer.stats[k];
        this.framers.delete(link.id);
      }
      logger.info({ peer: link.id }, 'peer disconnected');
    });
    transport.on('error', (err: Error) => logger.warn({ err: err.message }, 'link error'));
    return transport.start(signal);
  }

  stop(): Promise<void> {
    return this.opts.transport.stop();
  }

  /** ms since the last valid frame, or Infinity. */
  silenceMs(): number {
    return this.lastFrameAtMs === 0 ? Infinity : performance.now() - this.lastFrameAtMs;
  }

  stats(): LinkBindingStats {
    const t = this.opts.transport.stats();
    const sum: FramerStats = { ...this.retired };
    const sources: SeqState[] = [];
    for (const f of this.framers.values()) {
      for (const k of Object.keys(sum) as (keyof FramerStats)[]) sum[k] += f.stats[k];
      sources.push(...f.sources());
    }
    const expected = sum.frames + sum.seqLost;
    return {
      name: this.opts.name, url: t.url, connected: t.connected, peers: t.peers, bytesOut: t.bytesOut, dropsOut: t.dropsOut,
      reconnects: t.reconnects, lastError: t.lastError, ...sum,
      lossPercent: expected === 0 ? 0 : Math.round((sum.seqLost / expected) * 10_000) / 100,
      sources,
    };
  }
}
