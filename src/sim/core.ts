import { ardupilotmega, common, minimal, standard, type MavLinkData, type MavLinkDataConstructor } from 'node-mavlink';
import { MavmqError, ErrorCodes } from '../errors.js';
import { Codec } from '../mavlink/codec.js';
import { dialectFromRegistry, type Dialect } from '../mavlink/dialect.js';
import type { Frame } from '../mavlink/framer.js';
import { SimChannel } from './channel.js';
import { FaultInjector, type FaultStats } from './faults.js';
import { dispatch, paramValue, type HandlerHost } from './handlers.js';
import { MISSION_TYPE } from './mav.js';
import { MissionProtocol, MissionStore, type MissionItem } from './mission.js';
import type { SimFaults, SimOptions } from './options.js';
import { STREAM_CHANNELS } from './param-defs.js';
import { buildParamDefs, ParamTable, type ParamEntry, type ParamStore } from './params.js';
import { homePosition, missionCurrent, statusText, MESSAGE_BY_NAME, type MessageSpec, type TelemetryContext } from './telemetry.js';
import { SimVehicle, type VehicleEvents } from './vehicle.js';

/**
 * The dialect the simulator speaks: ardupilotmega + common + minimal, plus `standard` for
 * AUTOPILOT_VERSION (148), which node-mavlink keeps in a registry of its own.
 */
export function simDialect(): Dialect {
  return dialectFromRegistry('ardupilotmega+standard', {
    ...(minimal.REGISTRY as Record<number, MavLinkDataConstructor<MavLinkData>>),
    ...(standard.REGISTRY as Record<number, MavLinkDataConstructor<MavLinkData>>),
    ...(common.REGISTRY as Record<number, MavLinkDataConstructor<MavLinkData>>),
    ...(ardupilotmega.REGISTRY as Record<number, MavLinkDataConstructor<MavLinkData>>),
  });
}

export interface SimCoreDeps {
  /** Parameter persistence; none by default (values live only in memory, across sim reboots). */
  paramStore?: ParamStore;
  /** Wall clock for SYSTEM_TIME; defaults to Date.now. */
  wallClock?: () => number;
  dialect?: Dialect;
  /** Told about exceptions thrown while handling a frame (they never escape receive()). */
  onError?: (err: unknown) => void;
}

export interface SimStats {
  links: number;
  framesIn: number;
  framesIgnored: number;
  framesOut: number;
  bytesOut: number;
  boots: number;
  handlerErrors: number;
  faults: FaultStats;
}

/**
 * The simulated autopilot with no I/O: feed it bytes per link with receive(), advance it with
 * tick(nowMs) (a monotonic real-time clock), and it writes frames to each attached link. Timers
 * do not exist here: everything happens inside tick(), so tests can run a virtual clock.
 */
export class SimCore implements HandlerHost {
  readonly params: ParamTable;
  readonly missions: MissionStore;
  readonly missionProto: MissionProtocol;
  readonly faults: FaultInjector;
  readonly codec: Codec;
  vehicle: SimVehicle;
  sysid: number;
  readonly compid: number;
  private readonly channels = new Map<string, SimChannel>();
  private lastNowMs: number | undefined;
  private rebootRemainingMs: number | null = null;
  private stallUntilMs = -Infinity;
  /** Real-time due dates of the periodic faults (set on the first tick). */
  private nextStallMs: number | undefined;
  private nextRebootMs: number | undefined;
  private readonly counters = { framesIn: 0, framesIgnored: 0, boots: 1, handlerErrors: 0 };
  private readonly wallClock: () => number;
  private readonly events: VehicleEvents;

  constructor(
    readonly opts: SimOptions,
    private readonly deps: SimCoreDeps = {},
  ) {
    this.codec = new Codec(deps.dialect ?? simDialect());
    this.wallClock = deps.wallClock ?? Date.now;
    this.compid = opts.compid;
    this.params = this.loadParams();
    this.sysid = validSysid(this.params.get('SYSID_THISMAV'));
    this.missions = new MissionStore(opts.maxMissionItems);
    this.faults = new FaultInjector(opts.faults, opts.seed);
    this.events = {
      text: (sev, text) => this.sendAll(statusText(sev, text)),
      itemReached: (seq) => {
        const m = new common.MissionItemReached();
        m.seq = seq;
        this.sendAll(m);
      },
      missionCurrentChanged: () => this.sendAll(missionCurrent(this.vehicle)),
      homeChanged: () => this.sendAll(homePosition(this.vehicle)),
    };
    this.missionProto = new MissionProtocol(this.missions, {
      send: (id, msg) => {
        const ch = this.channels.get(id);
        if (ch !== undefined) this.sendTo(ch, msg);
      },
      text: (sev, text) => this.events.text(sev, text),
      homeItem: () => this.homeItem(),
      changed: (type) => {
        if (type === MISSION_TYPE.MISSION) this.vehicle.auto.missionChanged(this.vehicle);
      },
    }, { retryMs: opts.missionRetryMs, maxRetries: opts.missionMaxRetries });
    this.vehicle = this.newVehicle();
  }

  // ---- links ----
  /** Serves a new link; returns false when maxLinks are already attached (or the id is taken). */
  attach(id: string, write: (bytes: Buffer) => void): boolean {
    if (this.channels.has(id) || this.channels.size >= this.opts.maxLinks) return false;
    const used = new Set([...this.channels.values()].map((c) => c.slot));
    let slot = 0;
    while (used.has(slot) && slot < STREAM_CHANNELS - 1) slot++;
    this.channels.set(id, new SimChannel(id, slot, {
      codec: this.codec, sysid: this.sysid, compid: this.compid, write, defaultHz: (s, spec) => this.defaultHz(s, spec),
    }));
    return true;
  }

  detach(id: string): void {
    this.channels.delete(id);
    this.missionProto.reset(id);
  }

  get links(): number {
    return this.channels.size;
  }

  /** Bytes from a link's peer. Never throws. */
  receive(id: string, chunk: Buffer): void {
    const ch = this.channels.get(id);
    if (ch === undefined || this.silent) return;
    ch.framer.push(chunk, (frame) => this.handleFrame(ch, frame));
  }

  // ---- time ----
  tick(nowMs: number): void {
    const dtReal = Math.min(Math.max(nowMs - (this.lastNowMs ?? nowMs), 0), 1000);
    this.lastNowMs = nowMs;
    const dtSim = dtReal * this.opts.speedup;
    this.periodicFaults(nowMs);
    if (this.rebootRemainingMs !== null) {
      this.rebootRemainingMs -= dtSim;
      if (this.rebootRemainingMs <= 0) this.boot();
      return;
    }
    this.vehicle.tick(dtSim);
    this.missionProto.tick(nowMs);
    const ctx = this.telemetryContext();
    for (const ch of this.channels.values()) {
      for (const spec of ch.streams.due(nowMs)) {
        const m = spec.build(ctx);
        if (m !== undefined) this.sendTo(ch, m);
      }
      this.streamParams(ch, dtReal);
    }
  }

  // ---- faults ----
  /** Reboot as MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN does: silent for rebootMs (sim), then a fresh boot. */
  startReboot(): void {
    this.rebootRemainingMs = this.opts.rebootMs;
    this.missionProto.reset();
  }

  get rebooting(): boolean {
    return this.rebootRemainingMs !== null;
  }

  /** Link blackout for ms of real time: nothing goes out, everything coming in is lost. */
  stall(ms: number): void {
    this.stallUntilMs = (this.lastNowMs ?? 0) + ms;
  }

  setFaults(f: Partial<SimFaults>): void {
    this.faults.set(f);
  }

  get silent(): boolean {
    return this.rebootRemainingMs !== null || (this.lastNowMs ?? 0) < this.stallUntilMs;
  }

  stats(): SimStats {
    let framesOut = 0;
    let bytesOut = 0;
    for (const ch of this.channels.values()) {
      framesOut += ch.framesOut;
      bytesOut += ch.bytesOut;
    }
    return { links: this.channels.size, ...this.counters, framesOut, bytesOut, faults: { ...this.faults.stats } };
  }

  // ---- HandlerHost ----
  sendTo(ch: SimChannel, msg: MavLinkData): void {
    if (this.silent) return;
    const bytes = this.faults.apply(ch.writer.encode(msg));
    if (bytes.length > 0) ch.write(bytes);
  }

  sendAll(msg: MavLinkData): void {
    for (const ch of this.channels.values()) this.sendTo(ch, msg);
  }

  setParam(name: string, value: number): ParamEntry | undefined {
    const entry = this.params.set(name, value);
    if (entry !== undefined) this.persistParams();
    return entry;
  }

  sendBanner(): void {
    this.events.text(common.MavSeverity.INFO, 'ArduCopter V4.5.7 (6d6d7173)');
    this.events.text(common.MavSeverity.INFO, 'mavmq simulated autopilot');
    this.events.text(common.MavSeverity.INFO, 'Frame: QUAD/X');
  }

  telemetryContext(): TelemetryContext {
    return { vehicle: this.vehicle, wallClockMs: this.wallClock(), sysid: this.sysid };
  }

  // ---- internals ----
  private handleFrame(ch: SimChannel, frame: Frame): void {
    this.counters.framesIn++;
    const msg = this.codec.decode(frame);
    if (msg === undefined || (frame.sysid === this.sysid && frame.compid === this.compid)) {
      this.counters.framesIgnored++;
      return;
    }
    try {
      dispatch(this, ch, frame, msg, this.lastNowMs ?? 0);
    } catch (err) {
      this.counters.handlerErrors++;
      this.deps.onError?.(err);
    }
  }

  private periodicFaults(nowMs: number): void {
    const f = this.faults.current;
    if (f.stallEveryMs > 0 && f.stallMs > 0) {
      this.nextStallMs ??= nowMs + f.stallEveryMs;
      if (nowMs >= this.nextStallMs) {
        this.stallUntilMs = nowMs + f.stallMs;
        this.nextStallMs = nowMs + f.stallEveryMs;
      }
    } else {
      this.nextStallMs = undefined;
    }
    if (f.rebootEveryMs > 0) {
      this.nextRebootMs ??= nowMs + f.rebootEveryMs;
      if (nowMs >= this.nextRebootMs) {
        this.nextRebootMs = nowMs + f.rebootEveryMs;
        if (this.rebootRemainingMs === null) this.startReboot();
      }
    } else {
      this.nextRebootMs = undefined;
    }
  }

  private streamParams(ch: SimChannel, dtReal: number): void {
    const n = ch.paramBudget(dtReal, this.opts.paramRatePerSec);
    for (let i = 0; i < n && ch.paramCursor !== null; i++) {
      const entry = this.params.byIndex(ch.paramCursor);
      if (entry === undefined) {
        ch.paramCursor = null;
        break;
      }
      this.sendTo(ch, paramValue(entry, this.params.count));
      ch.paramCursor = entry.index + 1 < this.params.count ? entry.index + 1 : null;
    }
  }

  private defaultHz(slot: number, spec: MessageSpec): number {
    const configured = this.opts.messageRates[spec.name];
    if (configured !== undefined) return configured;
    if (spec.group !== null) return this.params.get(`SR${slot}_${spec.group}`);
    return spec.defaultHz ?? 0;
  }

  private boot(): void {
    this.rebootRemainingMs = null;
    this.counters.boots++;
    this.setParam('STAT_BOOTCNT', this.params.get('STAT_BOOTCNT') + 1);
    this.sysid = validSysid(this.params.get('SYSID_THISMAV'));
    this.vehicle = this.newVehicle();
    for (const ch of this.channels.values()) ch.reboot(this.sysid);
    this.sendBanner();
  }

  private newVehicle(): SimVehicle {
    return new SimVehicle(this.params, this.missions, this.events, { home: this.opts.home, gpsDelayMs: this.opts.gpsDelayMs });
  }

  private homeItem(): MissionItem | undefined {
    const v = this.vehicle;
    if (!v.homeSet) return undefined;
    return {
      seq: 0, frame: common.MavFrame.GLOBAL, command: common.MavCmd.NAV_WAYPOINT, current: 0, autocontinue: 1,
      param1: 0, param2: 0, param3: 0, param4: 0,
      x: Math.round(v.home.lat * 1e7), y: Math.round(v.home.lon * 1e7), z: v.home.alt, missionType: 0,
    };
  }

  private loadParams(): ParamTable {
    const o = this.opts;
    const base = buildParamDefs({ sysid: o.sysid ?? 1, streamRates: o.streamRates });
    const names = new Set(base.map((d) => d.name));
    const unknown = Object.keys(o.paramDefaults).filter((n) => !names.has(n));
    if (unknown.length > 0) {
      throw new MavmqError(ErrorCodes.USAGE, `unknown simulator parameter(s): ${unknown.join(', ')}`, {
        problems: unknown.map((n) => ({ path: `sim.paramDefaults.${n}`, message: 'no such parameter' })),
      });
    }
    const defs = base.map((d) => {
      const v = o.paramDefaults[d.name];
      return v === undefined ? d : { ...d, defaultValue: v };
    });
    const table = new ParamTable(defs);
    if (this.deps.paramStore !== undefined) table.load(this.deps.paramStore.load());
    if (o.sysid !== undefined) table.set('SYSID_THISMAV', o.sysid);
    return table;
  }

  private persistParams(): void {
    this.deps.paramStore?.save(this.params.changed());
  }
}

function validSysid(v: number): number {
  return Number.isInteger(v) && v >= 1 && v <= 255 ? v : 1;
}

/** Names of every message the sim can stream (for option validation / CLI help). */
export function streamableMessages(): string[] {
  return [...MESSAGE_BY_NAME.keys()];
}
