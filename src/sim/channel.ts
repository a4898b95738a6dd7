import { Framer } from '../mavlink/framer.js';
import { FrameWriter, type Codec } from '../mavlink/codec.js';
import { MESSAGES, MESSAGE_BY_ID, type MessageSpec } from './telemetry.js';

/** Shortest interval a GCS may ask for (100 Hz), in µs. */
const MIN_INTERVAL_US = 10_000;
/** At most this many PARAM_VALUEs per link per tick, whatever the rate (keeps a tick bounded). */
const MAX_PARAMS_PER_TICK = 200;

/**
 * Per-message send schedule of one link (real time). A message's interval is, in order: a
 * SET_MESSAGE_INTERVAL override, else its default rate (per-message option, SRn stream group
 * rate, or its own default).
 */
export class StreamScheduler {
  private readonly overrides = new Map<number, number>();
  private readonly slots = new Map<number, { next: number; interval: number }>();

  constructor(private readonly defaultHz: (spec: MessageSpec) => number) {}

  /** Current interval in ms; 0 = not sent. */
  intervalMs(spec: MessageSpec): number {
    const o = this.overrides.get(spec.id);
    if (o !== undefined) return o < 0 ? 0 : o / 1000;
    const hz = this.defaultHz(spec);
    return hz > 0 ? 1000 / hz : 0;
  }

  /** MAV_CMD_SET_MESSAGE_INTERVAL semantics: -1 disable, 0 back to default, >0 interval in µs. */
  setInterval(msgid: number, intervalUs: number): boolean {
    if (!MESSAGE_BY_ID.has(msgid) || !Number.isFinite(intervalUs) || intervalUs < -1) return false;
    if (intervalUs === 0) this.overrides.delete(msgid);
    else if (intervalUs < 0) this.overrides.set(msgid, -1);
    else this.overrides.set(msgid, Math.max(MIN_INTERVAL_US, Math.round(intervalUs)));
    return true;
  }

  /** Messages due at nowMs, each at most once per call. A changed interval takes effect at once. */
  due(nowMs: number): MessageSpec[] {
    const out: MessageSpec[] = [];
    for (const spec of MESSAGES) {
      const interval = this.intervalMs(spec);
      if (interval <= 0) {
        this.slots.delete(spec.id);
        continue;
      }
      let slot = this.slots.get(spec.id);
      if (slot === undefined || slot.interval !== interval) {
        slot = { next: nowMs, interval };
        this.slots.set(spec.id, slot);
      }
      if (nowMs < slot.next) continue;
      out.push(spec);
      slot.next += interval;
      if (slot.next <= nowMs) slot.next = nowMs + interval; // fell behind (slow ticks): do not burst
    }
    return out;
  }

  reset(): void {
    this.overrides.clear();
    this.slots.clear();
  }
}

export interface ChannelDeps {
  codec: Codec;
  sysid: number;
  compid: number;
  write: (bytes: Buffer) => void;
  defaultHz: (slot: number, spec: MessageSpec) => number;
}

/** One GCS link: its own framer, sequence numbers, stream rates and parameter download cursor. */
export class SimChannel {
  readonly framer: Framer;
  readonly streams: StreamScheduler;
  writer: FrameWriter;
  /** Next param_index to stream after PARAM_REQUEST_LIST, or null when not streaming. */
  paramCursor: number | null = null;
  paramCredit = 0;
  framesOut = 0;
  bytesOut = 0;

  constructor(
    readonly id: string,
    /** Which SRn_* parameter set governs this link's stream rates. */
    readonly slot: number,
    private readonly deps: ChannelDeps,
  ) {
    this.framer = new Framer(deps.codec.dialect);
    this.streams = new StreamScheduler((spec) => deps.defaultHz(slot, spec));
    this.writer = new FrameWriter(deps.codec, deps.sysid, deps.compid);
  }

  write(bytes: Buffer): void {
    this.framesOut++;
    this.bytesOut += bytes.length;
    this.deps.write(bytes);
  }

  /** After a reboot: sequence numbers restart at 0, rates and transfers are forgotten. */
  reboot(sysid: number): void {
    this.writer = new FrameWriter(this.deps.codec, sysid, this.deps.compid);
    this.streams.reset();
    this.framer.reset();
    this.paramCursor = null;
    this.paramCredit = 0;
  }

  /** PARAM_VALUEs to send this tick given dtMs of real time at ratePerSec (bounded burst). */
  paramBudget(dtMs: number, ratePerSec: number): number {
    if (this.paramCursor === null) return 0;
    this.paramCredit = Math.min(this.paramCredit + (dtMs * ratePerSec) / 1000, MAX_PARAMS_PER_TICK);
    const n = Math.floor(this.paramCredit);
    this.paramCredit -= n;
    return n;
  }
}
