import { z } from 'zod';
import { MAX_FRAME_LENGTH, payloadByte, type Frame } from '../mavlink/framer.js';
import { ardupilotmegaDialect, type Dialect } from '../mavlink/dialect.js';
import { isUrgent } from './classes.js';
import { DEFAULT_CLASS_BY_NAME, INSTANCE_FIELDS } from './budget-classes.js';
import { requestedMsgids } from './budget-requests.js';

/**
 * Link budget scheduler for the air uplink (frames from the router, before the Batcher).
 *
 * Three classes, strict priority:
 *   critical  HEARTBEAT, COMMAND_ACK, STATUSTEXT, the mission protocol, TIMESYNC, and any msgid the
 *             ground asked for recently (`markRequested`). Never dropped, never coalesced, never
 *             rate-capped. Latency-critical ones (classes.ts) go ahead of the other critical ones.
 *   normal    event-like messages where every instance matters (PARAM_VALUE, FTP, LOG_DATA, ...):
 *             FIFO, delayed when over budget, oldest dropped only beyond a bounded backlog.
 *   bulk      periodic telemetry: rate-capped per (msgid, sysid, compid[, instance]) and, when over
 *             budget, coalesced (only the latest value per key is kept) and dropped first.
 *
 * Bandwidth: an optional token bucket. Capacity `burstBytes` (B); critical frames may overdraw to
 * −`criticalOverdraftBytes` (D), other classes only spend tokens they have; the refill rate is
 *     ρ = bytesPerSecond − (B + D) / window
 * so that over ANY window of `windowMs` the bytes let through (frames + `charge`d overhead) are at
 * most B + D + ρ·window = bytesPerSecond·window. The one exception, counted in `overBudgetBytes`:
 * critical frames that waited `criticalMaxDelayMs`, or a critical backlog beyond
 * `criticalMaxBacklogBytes`, go out anyway (critical is never dropped). That only happens when
 * critical traffic alone exceeds the budget. Non-critical traffic then repays the debt (down to −D).
 *
 * Pure and clock-injected (`nowMs` must not decrease). No budget configured: `offer` is one branch
 * and returns true. Memory is bounded: queues by bytes, coalescing and rate state by key count.
 */

// ---------------------------------------------------------------------------------------------
// Config (the `budget:` section of the air config; the lead imports budgetSchema into schema.ts)

const messageName = z.string().regex(/^[A-Z0-9_]+$/, 'a MAVLink message name such as ATTITUDE');

export const budgetSchema = z.strictObject({
  /** Link budget in bytes/s of MAVLink frames (+ charged envelope overhead). Absent: no bandwidth limit. */
  bytesPerSecond: z.number().positive().max(1e9).optional(),
  /** The window over which bytesPerSecond is a hard cap (see above). */
  windowMs: z.number().int().min(1000).max(600_000).default(10_000),
  /** Token bucket capacity. Default max(MAX_FRAME_LENGTH, 0.1 s of budget). At least one maximum frame. */
  burstBytes: z.number().int().min(MAX_FRAME_LENGTH).optional(),
  /** How far critical frames may overdraw the bucket before they wait. Default = burstBytes. */
  criticalOverdraftBytes: z.number().int().min(0).optional(),
  /** A critical frame that waited this long goes out even over budget. */
  criticalMaxDelayMs: z.number().int().min(0).max(600_000).default(2000),
  /** Critical backlog beyond this goes out even over budget (bounded memory; critical is never dropped). */
  criticalMaxBacklogBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(64 * 1024),
  /** Normal backlog bound: beyond it the oldest normal frames are dropped (counted). */
  normalMaxBacklogBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(64 * 1024),
  /** A coalesced bulk value not refreshed for this long is dropped instead of sent late. */
  bulkMaxAgeMs: z.number().int().min(100).max(600_000).default(5000),
  /** Bound on coalescing keys (msgid, sysid, compid, instance); new keys beyond it are dropped. */
  maxBulkKeys: z.number().int().min(16).max(65_536).default(1024),
  /** Per-message rate caps for bulk messages, Hz per key. 0 blocks the message on the uplink. */
  messageRatesHz: z.record(messageName, z.number().min(0).max(1000)).default({}),
  /** Cap for every bulk message not in messageRatesHz. Absent: uncapped (only the bandwidth applies). */
  defaultRateHz: z.number().min(0).max(1000).optional(),
  /** Class overrides by message name (defaults: see budget-classes.ts). */
  classes: z.strictObject({
    critical: z.array(messageName).optional(),
    normal: z.array(messageName).optional(),
    bulk: z.array(messageName).optional(),
  }).optional(),
  /** `markRequested`: a requested msgid is critical for this long after the request or its last answer... */
  requestTtlMs: z.number().int().min(100).max(600_000).default(5000),
  /** ...but never longer than this after the request itself. */
  requestMaxMs: z.number().int().min(100).max(3_600_000).default(120_000),
}).superRefine((c, ctx) => {
  if (c.bytesPerSecond === undefined) return;
  const burst = c.burstBytes ?? defaultBurst(c.bytesPerSecond);
  const overdraft = c.criticalOverdraftBytes ?? burst;
  const windowBytes = (c.bytesPerSecond * c.windowMs) / 1000;
  if (burst + overdraft >= windowBytes / 2) {
    ctx.addIssue({
      code: 'custom', path: ['bytesPerSecond'],
      message: `budget too small for its window: burst ${burst} + overdraft ${overdraft} must stay under half of bytesPerSecond × windowMs (${Math.floor(windowBytes)} bytes); raise windowMs or bytesPerSecond`,
    });
  }
});

export type BudgetConfig = z.infer<typeof budgetSchema>;
export type BudgetConfigInput = z.input<typeof budgetSchema>;

function defaultBurst(bytesPerSecond: number): number {
  return Math.max(MAX_FRAME_LENGTH, Math.round(bytesPerSecond * 0.1));
}

// ---------------------------------------------------------------------------------------------

export const CRITICAL = 0;
export const NORMAL = 1;
export const BULK = 2;
export type BudgetClass = typeof CRITICAL | typeof NORMAL | typeof BULK;
export const BUDGET_CLASS_NAMES = ['critical', 'normal', 'bulk'] as const;
export type BudgetClassName = (typeof BUDGET_CLASS_NAMES)[number];

export interface BudgetStats {
  enabled: boolean;
  bytesPerSecond: number | null;
  /** Effective refill of the bucket, bytes/s (bytesPerSecond − (burst + overdraft) / window). */
  refillBytesPerSecond: number | null;
  offered: number;
  /** Frames let through by offer() at once. */
  passed: number;
  /** Frames let out later by drain(). */
  drained: number;
  /** Bytes of frames let through (passed + drained), and overhead given to charge(). */
  bytesSent: number;
  bytesCharged: number;
  /** Bytes that went out beyond the budget (overdue or overflowing critical; see the module comment). */
  overBudgetBytes: number;
  /** Older bulk values replaced by a newer one of the same key. */
  coalesced: number;
  /** Never anything under critical. */
  dropped: { normal: number; bulk: number };
  droppedBy: { rateZero: number; stale: number; normalOverflow: number; bulkKeys: number };
  backlog: { criticalFrames: number; criticalBytes: number; normalFrames: number; normalBytes: number; bulkReady: number; bulkHeld: number };
  tokens: number | null;
  requested: number[];
  /** Config problems found at construction (unknown names, rates given for non-bulk messages). */
  warnings: string[];
}

interface Queued {
  frame: Frame;
  atMs: number;
}

interface Slot {
  frame: Frame;
  /** When the value was last refreshed. */
  updatedMs: number;
  /** Held by a rate cap until this time; −Infinity when it was queued by the bucket alone. */
  dueMs: number;
}

interface Mark {
  untilMs: number;
  hardUntilMs: number;
}

/** A FIFO of frames with an amortized O(1) shift and a byte count. */
class FrameQueue {
  private items: Queued[] = [];
  private head = 0;
  bytes = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  peek(): Queued | undefined {
    return this.items[this.head];
  }
  push(frame: Frame, atMs: number): void {
    this.items.push({ frame, atMs });
    this.bytes += frame.bytes.length;
  }
  shift(): Queued | undefined {
    const q = this.items[this.head];
    if (q === undefined) return undefined;
    this.items[this.head] = undefined as unknown as Queued;
    this.head++;
    this.bytes -= q.frame.bytes.length;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return q;
  }
}

const DENSE = 1 << 16;
const NO_FRAMES: readonly Frame[] = Object.freeze([]);

export interface LinkBudgetOptions {
  /** Resolves message names and instance fields. Default: ardupilotmega. */
  dialect?: Dialect;
}

export class LinkBudget {
  /** False when nothing is configured: offer() is then a single branch returning true. */
  readonly active: boolean;
  private readonly bucket: boolean;
  private readonly classOf = new Uint8Array(DENSE).fill(BULK);
  /** Min interval per msgid in ms: 0 none, Infinity blocked. */
  private readonly intervalOf = new Float64Array(DENSE);
  private readonly defaultIntervalMs: number;
  private readonly instanceOf = new Map<number, { offset: number; length: number }>();
  private readonly cfg: BudgetConfig;
  private readonly warnings: string[] = [];

  // Bucket
  private readonly capacity: number;
  private readonly overdraft: number;
  private readonly ratePerMs: number;
  private tokens: number;
  private lastRefillMs = Number.NEGATIVE_INFINITY;

  // Queues
  private readonly urgent = new FrameQueue();
  private readonly critical = new FrameQueue();
  private readonly normal = new FrameQueue();
  /** Coalesced bulk values ready to go when tokens allow, oldest key first (Map insertion order). */
  private readonly ready = new Map<number | string, Slot>();
  /** Bulk values held by a rate cap until their due time. */
  private readonly held = new Map<number | string, Slot>();
  /** Last send time per key for rate-capped messages. */
  private readonly lastSent = new Map<number | string, number>();
  private readonly marks = new Map<number, Mark>();
  private lastSweepMs = Number.NEGATIVE_INFINITY;

  private readonly counters = {
    offered: 0, passed: 0, drained: 0, bytesSent: 0, bytesCharged: 0, overBudgetBytes: 0, coalesced: 0,
    rateZero: 0, stale: 0, normalOverflow: 0, bulkKeys: 0,
  };

  /** `config` undefined (no `budget:` section): everything passes untouched. */
  constructor(config?: BudgetConfigInput, opts: LinkBudgetOptions = {}) {
    this.cfg = budgetSchema.parse(config ?? {});
    const c = this.cfg;
    const hasRates = Object.keys(c.messageRatesHz).length > 0 || c.defaultRateHz !== undefined;
    this.bucket = c.bytesPerSecond !== undefined;
    this.active = config !== undefined && (this.bucket || hasRates);
    this.defaultIntervalMs = c.defaultRateHz === undefined ? 0 : hzToIntervalMs(c.defaultRateHz);
    this.capacity = c.burstBytes ?? (c.bytesPerSecond === undefined ? 0 : defaultBurst(c.bytesPerSecond));
    this.overdraft = c.criticalOverdraftBytes ?? this.capacity;
    this.ratePerMs = c.bytesPerSecond === undefined ? 0 : (c.bytesPerSecond * c.windowMs / 1000 - this.capacity - this.overdraft) / c.windowMs;
    this.tokens = this.capacity;
    if (!this.active) return;

    const dialect = opts.dialect ?? ardupilotmegaDialect();
    const resolve = (name: string, where: string): number | undefined => {
      const id = dialect.msgidByName(name);
      if (id === undefined) this.warnings.push(`${where}: unknown message ${name} (ignored)`);
      return id;
    };
    for (const [name, cls] of Object.entries(DEFAULT_CLASS_BY_NAME)) {
      const id = dialect.msgidByName(name);
      if (id !== undefined && id < DENSE) this.classOf[id] = cls;
    }
    const overrides: [BudgetClass, string[] | undefined][] = [[CRITICAL, c.classes?.critical], [NORMAL, c.classes?.normal], [BULK, c.classes?.bulk]];
    for (const [cls, names] of overrides) {
      for (const name of names ?? []) {
        const id = resolve(name, `budget.classes.${BUDGET_CLASS_NAMES[cls]}`);
        if (id !== undefined && id < DENSE) this.classOf[id] = cls;
      }
    }
    for (const [name, hz] of Object.entries(c.messageRatesHz)) {
      const id = resolve(name, 'budget.messageRatesHz');
      if (id === undefined || id >= DENSE) continue;
      if (this.classOf[id] !== BULK) {
        this.warnings.push(`budget.messageRatesHz.${name}: ${BUDGET_CLASS_NAMES[this.classOf[id] as BudgetClass]} messages are never rate-capped (ignored)`);
        continue;
      }
      this.intervalOf[id] = hzToIntervalMs(hz);
    }
    for (const [name, field] of Object.entries(INSTANCE_FIELDS)) {
      const id = dialect.msgidByName(name);
      const f = id === undefined ? undefined : dialect.messageClass(id)?.FIELDS.find((x) => x.source === field);
      if (id !== undefined && f !== undefined) this.instanceOf.set(id, { offset: f.offset, length: Math.min(16, f.size * Math.max(1, f.length ?? 1)) });
    }
  }

  /**
   * A frame for the uplink. True: send it now. False: the scheduler took it (queued, held by a
   * rate cap, coalesced into a newer value, or dropped — see stats()); queued frames come out of drain().
   */
  offer(frame: Frame, nowMs: number): boolean {
    if (!this.active) return true;
    this.counters.offered++;
    const cls = this.classify(frame.msgid, nowMs);
    if (cls === CRITICAL) return this.offerCritical(frame, nowMs);
    if (cls === NORMAL) return this.offerNormal(frame, nowMs);
    return this.offerBulk(frame, nowMs);
  }

  /** Frames that may go now, in priority order. Call when nextDrainMs() is due (or on a short tick). */
  drain(nowMs: number): readonly Frame[] {
    if (!this.active) return NO_FRAMES;
    this.refill(nowMs);
    let out: Frame[] | null = null;
    const emit = (f: Frame): void => {
      (out ??= []).push(f);
      this.counters.drained++;
      this.counters.bytesSent += f.bytes.length;
    };
    // Rate-held values whose time has come: straight out without a bucket, else into the ready set.
    if (this.held.size > 0) {
      for (const [key, slot] of this.held) {
        if (slot.dueMs > nowMs) continue;
        this.held.delete(key);
        if (!this.bucket) {
          this.lastSent.set(key, this.paced(slot.dueMs, nowMs, slot.frame.msgid));
          emit(slot.frame);
        } else {
          this.ready.set(key, slot);
        }
      }
    }
    if (!this.bucket) return out ?? NO_FRAMES;
    // Critical: latency-critical first, then the rest; overdraft allowed; overdue or overflowing goes anyway.
    for (const q of [this.urgent, this.critical]) {
      for (let head = q.peek(); head !== undefined; head = q.peek()) {
        const size = head.frame.bytes.length;
        const forced = nowMs - head.atMs >= this.cfg.criticalMaxDelayMs || this.urgent.bytes + this.critical.bytes > this.cfg.criticalMaxBacklogBytes;
        if (this.tokens - size < -this.overdraft && !forced) break;
        q.shift();
        this.spendCritical(size);
        emit(head.frame);
      }
    }
    if (this.urgent.length > 0 || this.critical.length > 0) return out ?? NO_FRAMES;
    for (let head = this.normal.peek(); head !== undefined && this.tokens >= head.frame.bytes.length; head = this.normal.peek()) {
      this.normal.shift();
      this.tokens -= head.frame.bytes.length;
      emit(head.frame);
    }
    if (this.normal.length > 0) return out ?? NO_FRAMES;
    if (this.ready.size > 0) {
      const sweep = nowMs - this.lastSweepMs >= 500;
      if (sweep) this.lastSweepMs = nowMs;
      let blocked = false;
      for (const [key, slot] of this.ready) {
        if (nowMs - slot.updatedMs > this.cfg.bulkMaxAgeMs) {
          this.ready.delete(key);
          this.counters.stale++;
          continue;
        }
        if (blocked) {
          if (!sweep) break;
          continue;
        }
        const size = slot.frame.bytes.length;
        if (this.tokens < size) {
          blocked = true;
          if (!sweep) break;
          continue;
        }
        this.ready.delete(key);
        this.tokens -= size;
        if (this.intervalFor(slot.frame.msgid) > 0) this.lastSent.set(key, this.paced(slot.dueMs, nowMs, slot.frame.msgid));
        emit(slot.frame);
      }
    }
    return out ?? NO_FRAMES;
  }

  /** When drain() may next have something (ms, same clock as nowMs), or null when nothing waits. */
  nextDrainMs(nowMs: number): number | null {
    if (!this.active) return null;
    let next = Number.POSITIVE_INFINITY;
    for (const slot of this.held.values()) if (slot.dueMs < next) next = slot.dueMs;
    if (this.bucket) {
      this.refill(nowMs);
      const wait = (need: number): number => nowMs + Math.max(0, need) / this.ratePerMs;
      const crit = this.urgent.peek() ?? this.critical.peek();
      if (crit !== undefined) {
        next = Math.min(next, wait(crit.frame.bytes.length - this.overdraft - this.tokens), crit.atMs + this.cfg.criticalMaxDelayMs);
      } else {
        const head = this.normal.peek()?.frame ?? this.ready.values().next().value?.frame;
        if (head !== undefined) next = Math.min(next, wait(head.bytes.length - this.tokens));
      }
    }
    return next === Number.POSITIVE_INFINITY ? null : Math.max(nowMs, next);
  }

  /**
   * Bytes other traffic sent on the link (envelope overhead, health, history batches): spent from
   * the bucket like critical frames (overdraft allowed, the excess beyond it counted as over budget).
   */
  charge(bytes: number, nowMs: number): void {
    if (!this.bucket || bytes <= 0) return;
    this.refill(nowMs);
    this.counters.bytesCharged += bytes;
    this.spendCritical(bytes);
  }

  /**
   * Tokens nobody queued wants now: what background traffic (spool drain) may send and then charge().
   * Infinity without a bandwidth budget.
   */
  spare(nowMs: number): number {
    if (!this.bucket) return Number.POSITIVE_INFINITY;
    if (this.urgent.length > 0 || this.critical.length > 0 || this.normal.length > 0 || this.ready.size > 0) return 0;
    this.refill(nowMs);
    return Math.max(0, Math.floor(this.tokens));
  }

  /**
   * The ground asked for `msgid` (PARAM_REQUEST_LIST -> PARAM_VALUE, REQUEST_MESSAGE -> its msgid):
   * frames of it are critical for `ttlMs` (default requestTtlMs), extended by each answer up to requestMaxMs.
   */
  markRequested(msgid: number, nowMs: number, ttlMs = this.cfg.requestTtlMs): void {
    if (!this.active) return;
    const m = this.marks.get(msgid);
    const hard = nowMs + this.cfg.requestMaxMs;
    if (m !== undefined) {
      m.untilMs = Math.max(m.untilMs, nowMs + ttlMs);
      m.hardUntilMs = hard;
    } else if (this.marks.size < 256) {
      this.marks.set(msgid, { untilMs: nowMs + ttlMs, hardUntilMs: hard });
    }
  }

  /** Convenience for the command path: mark whatever a frame from the ground requests. */
  noteDownlink(frame: Frame, nowMs: number): void {
    if (!this.active) return;
    for (const id of requestedMsgids(frame)) this.markRequested(id, nowMs);
  }

  /** The class a msgid gets now (critical while requested). */
  classify(msgid: number, nowMs: number): BudgetClass {
    const base = msgid < DENSE ? (this.classOf[msgid] as BudgetClass) : BULK;
    if (base === CRITICAL || this.marks.size === 0) return base;
    const m = this.marks.get(msgid);
    if (m === undefined) return base;
    if (nowMs > m.untilMs) {
      this.marks.delete(msgid);
      return base;
    }
    m.untilMs = Math.min(Math.max(m.untilMs, nowMs + this.cfg.requestTtlMs), m.hardUntilMs);
    return CRITICAL;
  }

  /** Forget all queued frames (e.g. the session ended: stale telemetry is not worth sending later). */
  clear(): void {
    while (this.urgent.shift() !== undefined);
    while (this.critical.shift() !== undefined);
    while (this.normal.shift() !== undefined);
    this.ready.clear();
    this.held.clear();
  }

  stats(): BudgetStats {
    const k = this.counters;
    return {
      enabled: this.active,
      bytesPerSecond: this.cfg.bytesPerSecond ?? null,
      refillBytesPerSecond: this.bucket ? Math.round(this.ratePerMs * 1000 * 10) / 10 : null,
      offered: k.offered, passed: k.passed, drained: k.drained, bytesSent: k.bytesSent, bytesCharged: k.bytesCharged,
      overBudgetBytes: k.overBudgetBytes, coalesced: k.coalesced,
      dropped: { normal: k.normalOverflow, bulk: k.rateZero + k.stale + k.bulkKeys },
      droppedBy: { rateZero: k.rateZero, stale: k.stale, normalOverflow: k.normalOverflow, bulkKeys: k.bulkKeys },
      backlog: {
        criticalFrames: this.urgent.length + this.critical.length, criticalBytes: this.urgent.bytes + this.critical.bytes,
        normalFrames: this.normal.length, normalBytes: this.normal.bytes, bulkReady: this.ready.size, bulkHeld: this.held.size,
      },
      tokens: this.bucket ? Math.floor(this.tokens) : null,
      requested: [...this.marks.keys()],
      warnings: [...this.warnings],
    };
  }

  // -------------------------------------------------------------------------------------------

  private offerCritical(frame: Frame, nowMs: number): boolean {
    const size = frame.bytes.length;
    if (!this.bucket) return this.pass(size);
    this.refill(nowMs);
    if (this.urgent.length === 0 && this.critical.length === 0 && this.tokens - size >= -this.overdraft) {
      this.spendCritical(size);
      return this.pass(size);
    }
    (isUrgent(frame.msgid) ? this.urgent : this.critical).push(frame, nowMs);
    return false;
  }

  private offerNormal(frame: Frame, nowMs: number): boolean {
    const size = frame.bytes.length;
    if (!this.bucket) return this.pass(size);
    this.refill(nowMs);
    if (this.urgent.length === 0 && this.critical.length === 0 && this.normal.length === 0 && this.tokens >= size) {
      this.tokens -= size;
      return this.pass(size);
    }
    this.normal.push(frame, nowMs);
    while (this.normal.bytes > this.cfg.normalMaxBacklogBytes && this.normal.shift() !== undefined) this.counters.normalOverflow++;
    return false;
  }

  private offerBulk(frame: Frame, nowMs: number): boolean {
    const interval = this.intervalFor(frame.msgid);
    if (interval === Number.POSITIVE_INFINITY) {
      this.counters.rateZero++;
      return false;
    }
    if (interval === 0 && !this.bucket) return this.pass(frame.bytes.length);
    const key = this.keyOf(frame);
    const h = this.held.get(key);
    if (h !== undefined) {
      h.frame = frame;
      h.updatedMs = nowMs;
      this.counters.coalesced++;
      return false;
    }
    const r = this.ready.get(key);
    if (r !== undefined) {
      r.frame = frame;
      r.updatedMs = nowMs;
      this.counters.coalesced++;
      return false;
    }
    if (interval > 0) {
      const last = this.lastSent.get(key);
      if (last !== undefined && nowMs < last + interval) {
        if (this.held.size + this.ready.size >= this.cfg.maxBulkKeys) {
          this.counters.bulkKeys++;
          return false;
        }
        this.held.set(key, { frame, updatedMs: nowMs, dueMs: last + interval });
        return false;
      }
    }
    const size = frame.bytes.length;
    if (this.bucket) {
      this.refill(nowMs);
      const idle = this.urgent.length === 0 && this.critical.length === 0 && this.normal.length === 0 && this.ready.size === 0;
      if (!idle || this.tokens < size) {
        if (this.held.size + this.ready.size >= this.cfg.maxBulkKeys) {
          this.counters.bulkKeys++;
          return false;
        }
        this.ready.set(key, { frame, updatedMs: nowMs, dueMs: Number.NEGATIVE_INFINITY });
        return false;
      }
      this.tokens -= size;
    }
    if (interval > 0) this.rememberSent(key, nowMs);
    return this.pass(size);
  }

  private pass(size: number): true {
    this.counters.passed++;
    this.counters.bytesSent += size;
    return true;
  }

  private spendCritical(size: number): void {
    this.tokens -= size;
    if (this.tokens < -this.overdraft) {
      this.counters.overBudgetBytes += -this.overdraft - this.tokens;
      this.tokens = -this.overdraft;
    }
  }

  private refill(nowMs: number): void {
    if (nowMs <= this.lastRefillMs) return;
    if (this.lastRefillMs !== Number.NEGATIVE_INFINITY) this.tokens = Math.min(this.capacity, this.tokens + (nowMs - this.lastRefillMs) * this.ratePerMs);
    this.lastRefillMs = nowMs;
  }

  private intervalFor(msgid: number): number {
    const own = msgid < DENSE ? (this.intervalOf[msgid] as number) : 0;
    return own !== 0 ? own : this.defaultIntervalMs;
  }

  /** Keep the cadence of a rate cap when a held value goes out a little late (no drift). */
  private paced(dueMs: number, nowMs: number, msgid: number): number {
    return nowMs - dueMs < this.intervalFor(msgid) ? dueMs : nowMs;
  }

  private rememberSent(key: number | string, nowMs: number): void {
    if (this.lastSent.size >= 4 * this.cfg.maxBulkKeys && !this.lastSent.has(key)) {
      // Bounded: forget cadences older than any cap could care about (a few seconds).
      for (const [k, t] of this.lastSent) if (nowMs - t > 10_000) this.lastSent.delete(k);
      if (this.lastSent.size >= 4 * this.cfg.maxBulkKeys) this.lastSent.clear();
    }
    this.lastSent.set(key, nowMs);
  }

  /** (msgid, sysid, compid) as one number; multiplexed messages add their instance field. */
  private keyOf(frame: Frame): number | string {
    const base = frame.msgid * 65536 + frame.sysid * 256 + frame.compid;
    const inst = this.instanceOf.get(frame.msgid);
    if (inst === undefined) return base;
    let s = `${base}/`;
    for (let i = 0; i < inst.length; i++) s += String.fromCharCode(payloadByte(frame, inst.offset + i));
    return s;
  }
}

function hzToIntervalMs(hz: number): number {
  return hz <= 0 ? Number.POSITIVE_INFINITY : 1000 / hz;
}

/** The budget for a config section that may be absent (absent = zero-cost pass-through). */
export function createLinkBudget(config: BudgetConfigInput | undefined, opts: LinkBudgetOptions = {}): LinkBudget {
  return new LinkBudget(config, opts);
}
