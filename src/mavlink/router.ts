import type { Dialect } from './dialect.js';
import { payloadByte, type Frame } from './framer.js';

/**
 * mavlink-router style routing among ports (autopilot link, local endpoints, the companion itself,
 * later the MQTT uplink). Rules:
 *  - learn which (sysid, compid) speaks behind which port, from the source of every frame;
 *  - a frame with a target goes to the ports that hold the target (compid 0 = any component of the
 *    system); a target nobody has been heard from is broadcast, so early commands are not lost;
 *  - frames without a target (telemetry) and target sysid 0 are broadcast;
 *  - never echo a frame back to the port it came from;
 *  - nodes silent for `forgetAfterMs` are forgotten.
 * Frames are forwarded byte-exact (signed and unknown-msgid frames included).
 */
export interface RouterPort {
  readonly id: string;
  /** Non-blocking: a slow port drops on its own bounded queue. */
  deliver(frame: Frame): void;
  readonly filter?: PortFilter | undefined;
}

export interface FilterRule {
  allowMsgids?: readonly number[] | undefined;
  blockMsgids?: readonly number[] | undefined;
  allowSysids?: readonly number[] | undefined;
  blockSysids?: readonly number[] | undefined;
  allowCompids?: readonly number[] | undefined;
  blockCompids?: readonly number[] | undefined;
}

/** `in` applies to frames the port sends us; `out` to frames we deliver to it. */
export interface PortFilter {
  in?: FilterRule | undefined;
  out?: FilterRule | undefined;
}

export interface PortStats {
  id: string;
  framesIn: number;
  framesOut: number;
  filteredIn: number;
  filteredOut: number;
  systems: string[];
}

export interface RouterStats {
  routed: number;
  broadcast: number;
  targeted: number;
  /** Targeted frames whose target nobody had been heard from (broadcast instead). */
  unknownTarget: number;
  /** Targeted frames that had no port to go to (target lives only behind the origin). */
  noRoute: number;
  ports: PortStats[];
}

interface CompiledRule {
  test(frame: Frame): boolean;
}

interface PortEntry {
  port: RouterPort;
  inRule: CompiledRule | null;
  outRule: CompiledRule | null;
  /** (sysid<<8|compid) -> last heard (coarse ms). */
  components: Map<number, number>;
  /** sysid -> last heard. */
  systems: Map<number, number>;
  framesIn: number;
  framesOut: number;
  filteredIn: number;
  filteredOut: number;
}

function compileRule(rule: FilterRule | undefined): CompiledRule | null {
  if (rule === undefined) return null;
  const set = (a: readonly number[] | undefined): Set<number> | null => (a === undefined || a.length === 0 ? null : new Set(a));
  const am = set(rule.allowMsgids), bm = set(rule.blockMsgids);
  const as = set(rule.allowSysids), bs = set(rule.blockSysids);
  const ac = set(rule.allowCompids), bc = set(rule.blockCompids);
  if (!am && !bm && !as && !bs && !ac && !bc) return null;
  return {
    test: (f) =>
      (am === null || am.has(f.msgid)) && (bm === null || !bm.has(f.msgid)) &&
      (as === null || as.has(f.sysid)) && (bs === null || !bs.has(f.sysid)) &&
      (ac === null || ac.has(f.compid)) && (bc === null || !bc.has(f.compid)),
  };
}

export interface RouterOptions {
  forgetAfterMs?: number;
  /** Injected clock (ms); the router samples it once per frame batch, not per frame. */
  nowMs?: () => number;
}

export class Router {
  private readonly entries: PortEntry[] = [];
  private readonly forgetAfterMs: number;
  private readonly nowMs: () => number;
  private coarseNowMs = 0;
  private counters = { routed: 0, broadcast: 0, targeted: 0, unknownTarget: 0, noRoute: 0 };

  constructor(private readonly dialect: Dialect, opts: RouterOptions = {}) {
    this.forgetAfterMs = opts.forgetAfterMs ?? 15_000;
    this.nowMs = opts.nowMs ?? (() => performance.now());
  }

  addPort(port: RouterPort): void {
    this.removePort(port.id);
    this.entries.push({
      port, inRule: compileRule(port.filter?.in), outRule: compileRule(port.filter?.out),
      components: new Map(), systems: new Map(), framesIn: 0, framesOut: 0, filteredIn: 0, filteredOut: 0,
    });
  }

  removePort(id: string): void {
    const i = this.entries.findIndex((e) => e.port.id === id);
    if (i >= 0) this.entries.splice(i, 1);
  }

  /** Advance the coarse clock and forget silent nodes. Call about once a second. */
  tick(): void {
    this.coarseNowMs = this.nowMs();
    const cutoff = this.coarseNowMs - this.forgetAfterMs;
    for (const e of this.entries) {
      for (const [k, t] of e.components) if (t < cutoff) e.components.delete(k);
      for (const [k, t] of e.systems) if (t < cutoff) e.systems.delete(k);
    }
  }

  /** Does any port other than `exceptId` hold this system? */
  knows(sysid: number): boolean {
    return this.entries.some((e) => e.systems.has(sysid));
  }

  route(fromId: string, frame: Frame): void {
    let from: PortEntry | undefined;
    for (const e of this.entries) if (e.port.id === fromId) { from = e; break; }
    if (from !== undefined) {
      from.framesIn++;
      if (from.inRule !== null && !from.inRule.test(frame)) {
        from.filteredIn++;
        return;
      }
      const key = (frame.sysid << 8) | frame.compid;
      from.components.set(key, this.coarseNowMs);
      from.systems.set(frame.sysid, this.coarseNowMs);
    }
    this.counters.routed++;
    const tsOff = this.dialect.targetSystemOffset(frame.msgid);
    const ts = tsOff < 0 || !frame.checked ? 0 : payloadByte(frame, tsOff);
    if (ts === 0) {
      this.counters.broadcast++;
      for (const e of this.entries) if (e !== from) this.send(e, frame);
      return;
    }
    this.counters.targeted++;
    const tcOff = this.dialect.targetComponentOffset(frame.msgid);
    const tc = tcOff < 0 ? 0 : payloadByte(frame, tcOff);
    const tkey = (ts << 8) | tc;
    let holders = 0;
    let delivered = 0;
    for (const e of this.entries) {
      if (!e.systems.has(ts)) continue;
      if (tc !== 0 && !e.components.has(tkey)) continue;
      holders++;
      if (e === from) continue;
      this.send(e, frame);
      delivered++;
    }
    if (holders === 0) {
      // Nobody heard from the target yet: broadcast rather than lose e.g. a GCS's first command.
      this.counters.unknownTarget++;
      for (const e of this.entries) if (e !== from) this.send(e, frame);
    } else if (delivered === 0) {
      this.counters.noRoute++;
    }
  }

  stats(): RouterStats {
    return {
      ...this.counters,
      ports: this.entries.map((e) => ({
        id: e.port.id, framesIn: e.framesIn, framesOut: e.framesOut, filteredIn: e.filteredIn, filteredOut: e.filteredOut,
        systems: [...e.components.keys()].map((k) => `${k >> 8}/${k & 0xff}`),
      })),
    };
  }

  private send(e: PortEntry, frame: Frame): void {
    if (e.outRule !== null && !e.outRule.test(frame)) {
      e.filteredOut++;
      return;
    }
    e.framesOut++;
    e.port.deliver(frame);
  }
}
