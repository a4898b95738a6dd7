import { common } from 'node-mavlink';
import { isGlobalFrame, type MissionItem, type MissionStore } from './mission.js';
import { MAV_CMD, MAV_FRAME, MISSION_TYPE } from './mav.js';
import type { Nav } from './navigation.js';
import type { Kinematics } from './physics.js';

const C = MAV_CMD;

/** What the AUTO executor needs from the vehicle. */
export interface AutoHost {
  readonly k: Kinematics;
  readonly home: { lat: number; lon: number; alt: number };
  readonly timeBootMs: number;
  readonly nav: Nav;
  readonly navDone: boolean;
  setNav(nav: Nav): void;
  startRtlNav(): void;
  setSpeed(mps: number | undefined): void;
  setHome(lat: number, lon: number, alt: number): void;
  itemReached(seq: number): void;
  currentChanged(): void;
  text(severity: common.MavSeverity, text: string): void;
}

const NAV_NAMES: Record<number, string> = {
  16: 'WP', 17: 'LoitUnlim', 18: 'LoitTurns', 19: 'LoitTime', 20: 'RTL', 21: 'Land', 22: 'Takeoff', 82: 'SplineWP', 93: 'Delay',
};
/** Bound on items processed per tick (DO commands and jumps run instantly; a jump loop must not hang). */
const MAX_ITEMS_PER_TICK = 64;

type Active = { seq: number; waitUntilMs: number | undefined; arrived: boolean } | null;

/**
 * Runs a stored mission in AUTO: one nav command at a time, DO commands as they are passed,
 * MISSION_ITEM_REACHED on every completed nav command. Item 0 is home and never flown.
 */
export class AutoExecutor {
  current = 0;
  state: 'stopped' | 'running' | 'complete' = 'stopped';
  private active: Active = null;
  private readonly jumps = new Map<number, number>();

  constructor(private readonly store: MissionStore) {}

  items(): readonly MissionItem[] {
    return this.store.items(MISSION_TYPE.MISSION);
  }

  /** MISSION_CURRENT.total: items excluding home, or UINT16_MAX without a mission. */
  total(): number {
    const n = this.items().length;
    return n === 0 ? 0xffff : n - 1;
  }

  /** True when the first nav command after home is a takeoff (ArduPilot's "Missing Takeoff Cmd" check). */
  startsWithTakeoff(): boolean {
    for (const it of this.items().slice(1)) {
      if (NAV_NAMES[it.command] !== undefined) return it.command === C.NAV_TAKEOFF;
    }
    return false;
  }

  missionState(inAuto: boolean): common.MissionState {
    if (this.items().length <= 1) return common.MissionState.NO_MISSION;
    if (this.state === 'complete') return common.MissionState.COMPLETE;
    if (this.state === 'running') return inAuto ? common.MissionState.ACTIVE : common.MissionState.PAUSED;
    return common.MissionState.NOT_STARTED;
  }

  start(host: AutoHost): void {
    if (this.state !== 'running') {
      if (this.state === 'complete' || this.current < 1) this.current = 1;
      this.jumps.clear();
    }
    this.state = 'running';
    this.active = null;
    host.currentChanged();
  }

  /** Leaving AUTO pauses the mission where it is (resumed on re-entry, like ArduPilot). */
  pause(): void {
    if (this.state === 'running') this.state = 'stopped';
    this.active = null;
  }

  /** MISSION_SET_CURRENT / DO_SET_MISSION_CURRENT. */
  setCurrent(seq: number, host: AutoHost, resetJumps = false): boolean {
    const n = this.items().length;
    if (seq < 0 || seq >= n) return false;
    this.current = Math.max(seq, n > 1 ? 1 : 0);
    this.active = null;
    if (resetJumps) this.jumps.clear();
    if (this.state === 'complete') this.state = 'stopped';
    host.currentChanged();
    return true;
  }

  /** The stored mission changed: keep the current index if it still exists. */
  missionChanged(host: AutoHost): void {
    this.active = null;
    this.jumps.clear();
    if (this.current >= this.items().length) {
      this.current = 0;
      if (this.state === 'running') this.finish(host);
    }
  }

  /** One tick in AUTO while armed. */
  update(host: AutoHost): void {
    if (this.state !== 'running') return;
    for (let guard = 0; guard < MAX_ITEMS_PER_TICK; guard++) {
      const item = this.items()[this.current];
      if (item === undefined) return this.finish(host);
      if (this.active?.seq !== item.seq) {
        if (this.begin(item, host)) continue; // instantaneous command: next one
        return;
      }
      if (!this.isDone(item, host)) return;
      host.itemReached(item.seq);
      this.advance(host);
    }
  }

  /** Starts an item; returns true when it completed at once (DO/condition commands). */
  private begin(item: MissionItem, host: AutoHost): boolean {
    const name = NAV_NAMES[item.command];
    if (name === undefined) {
      this.doCommand(item, host);
      return true;
    }
    this.active = { seq: item.seq, waitUntilMs: undefined, arrived: false };
    host.text(common.MavSeverity.INFO, `Mission: ${item.seq} ${name}`);
    const { lat, lon, alt } = this.target(item, host);
    switch (item.command) {
      case C.NAV_TAKEOFF:
        host.setNav({ kind: 'takeoff', lat: host.k.lat, lon: host.k.lon, alt: Math.max(alt, host.k.alt), done: false });
        break;
      case C.NAV_LAND:
        host.setNav(item.x === 0 && item.y === 0 ? { kind: 'land', descending: true } : { kind: 'land', lat, lon, alt: host.k.alt, descending: false });
        break;
      case C.NAV_RETURN_TO_LAUNCH:
        host.startRtlNav();
        break;
      case C.NAV_DELAY:
        host.setNav({ kind: 'hold' });
        this.active.waitUntilMs = host.timeBootMs + Math.max(0, item.param1) * 1000;
        break;
      default:
        host.setNav({ kind: 'goto', lat, lon, alt });
    }
    return false;
  }

  private isDone(item: MissionItem, host: AutoHost): boolean {
    const a = this.active;
    if (a === null) return false;
    switch (item.command) {
      case C.NAV_TAKEOFF:
        return host.nav.kind === 'takeoff' && host.nav.done;
      case C.NAV_LAND:
      case C.NAV_RETURN_TO_LAUNCH:
        return host.k.onGround;
      case C.NAV_DELAY:
        return host.timeBootMs >= (a.waitUntilMs ?? 0);
      case C.NAV_LOITER_UNLIM:
        return false;
      default: {
        if (!a.arrived) {
          if (!host.navDone) return false;
          a.arrived = true;
          const holdS = item.command === C.NAV_LOITER_TURNS ? Math.max(0, item.param1) * 10 : Math.max(0, item.param1);
          a.waitUntilMs = host.timeBootMs + holdS * 1000;
        }
        return host.timeBootMs >= (a.waitUntilMs ?? 0);
      }
    }
  }

  private advance(host: AutoHost): void {
    this.current++;
    this.active = null;
    host.currentChanged();
  }

  private doCommand(item: MissionItem, host: AutoHost): void {
    switch (item.command) {
      case C.DO_JUMP: {
        const target = Math.round(item.param1);
        const repeat = Math.round(item.param2);
        const done = this.jumps.get(item.seq) ?? 0;
        if (target >= 1 && target < this.items().length && (repeat < 0 || done < repeat)) {
          this.jumps.set(item.seq, done + 1);
          this.current = target;
          this.active = null;
          host.currentChanged();
          return;
        }
        break;
      }
      case C.DO_CHANGE_SPEED:
        if (item.param2 > 0) host.setSpeed(item.param2);
        break;
      case C.DO_SET_HOME:
        if (item.param1 === 1) host.setHome(host.k.lat, host.k.lon, host.k.alt);
        else {
          const t = this.target(item, host);
          host.setHome(t.lat, t.lon, t.alt);
        }
        break;
      default:
        break; // conditions, camera, servo...: nothing to simulate
    }
    this.advance(host);
  }

  private finish(host: AutoHost): void {
    this.state = 'complete';
    this.active = null;
    if (!host.k.onGround) host.setNav({ kind: 'hold' });
  }

  /** An item's position; 0/0 means "here", relative frames are above home. */
  private target(item: MissionItem, host: AutoHost): { lat: number; lon: number; alt: number } {
    const here = item.x === 0 && item.y === 0;
    const global = isGlobalFrame(item.frame);
    const lat = here || !global ? host.k.lat : item.x / 1e7;
    const lon = here || !global ? host.k.lon : item.y / 1e7;
    const absolute = item.frame === MAV_FRAME.GLOBAL || item.frame === MAV_FRAME.GLOBAL_INT;
    // ArduPilot: an altitude of 0 means "keep the current altitude".
    const alt = item.z === 0 ? host.k.alt : absolute ? item.z : host.home.alt + item.z;
    return { lat, lon, alt };
  }
}
