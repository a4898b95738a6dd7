import { common } from 'node-mavlink';
import { AutoExecutor, type AutoHost } from './mission-exec.js';
import type { MissionStore } from './mission.js';
import {
  CopterMode, isSupportedMode, modeAllowsArming, modeName, modeRequiresPosition, type CopterModeNumber,
} from './modes.js';
import { guidanceFor, isLanding, startRtl, updateNav, type Home, type Nav, type NavContext, reached } from './navigation.js';
import { initialKinematics, MAX_STEP_S, stepPhysics, type Kinematics, type Limits } from './physics.js';
import type { ParamTable } from './params.js';

const R = common.MavResult;
const S = common.MavSeverity;
/** MAV_CMD_COMPONENT_ARM_DISARM param2 magic that skips checks. */
export const FORCE_ARM_MAGIC = 21196;
const CELLS = 3;
/** Touchdown → disarm delay in LAND/RTL/AUTO landings (ArduPilot's land detector ~1 s). */
const LAND_DISARM_MS = 1000;

export interface VehicleEvents {
  text(severity: common.MavSeverity, text: string): void;
  itemReached(seq: number): void;
  missionCurrentChanged(): void;
  homeChanged(): void;
}

export interface BatteryState {
  voltage: number;
  currentA: number;
  consumedMah: number;
  energyJ: number;
  remainingPct: number;
  /** Seconds left at the present current (0 when unknown). */
  timeRemainingS: number;
}

/**
 * The simulated copter: mode logic, arming, navigation, battery and GPS on top of the kinematic
 * model. Knows nothing of links or encoding: commands come in as method calls, news goes out
 * through VehicleEvents. All times here are sim time (already scaled by speedup).
 */
export class SimVehicle implements AutoHost {
  readonly k: Kinematics;
  readonly auto: AutoExecutor;
  armed = false;
  mode: CopterModeNumber = CopterMode.STABILIZE;
  timeBootMs = 0;
  gpsFix = false;
  homeSet = false;
  home: Home;
  nav: Nav = { kind: 'hold' };
  readonly battery: BatteryState = { voltage: CELLS * 4.2, currentA: 0, consumedMah: 0, energyJ: 0, remainingPct: 100, timeRemainingS: 0 };
  private speed: number | undefined;
  private groundIdleMs = 0;
  private touchdownMs = 0;
  private lowBatteryMs = 0;
  private batteryFailsafe = false;
  private readonly groundAlt: number;

  constructor(
    private readonly params: ParamTable,
    missions: MissionStore,
    private readonly events: VehicleEvents,
    private readonly opts: { home: Home; gpsDelayMs: number },
  ) {
    this.k = initialKinematics(opts.home.lat, opts.home.lon, opts.home.alt);
    this.groundAlt = opts.home.alt;
    this.home = { ...opts.home };
    this.auto = new AutoExecutor(missions);
  }

  // ---- AutoHost ----
  get navDone(): boolean {
    const n = this.nav;
    if (n.kind === 'goto') return reached(this.navContext(), n.lat, n.lon, n.alt);
    if (n.kind === 'takeoff') return n.done;
    return n.kind === 'hold';
  }
  setNav(nav: Nav): void {
    this.nav = nav;
  }
  startRtlNav(): void {
    this.nav = this.k.onGround ? { kind: 'land', descending: true } : startRtl(this.navContext());
  }
  setSpeed(mps: number | undefined): void {
    this.speed = mps;
  }
  setHome(lat: number, lon: number, alt: number): void {
    this.home = { lat, lon, alt };
    this.homeSet = true;
    this.events.homeChanged();
  }
  itemReached(seq: number): void {
    this.events.itemReached(seq);
    this.text(S.INFO, `Reached command #${seq}`);
  }
  currentChanged(): void {
    this.events.missionCurrentChanged();
  }
  text(severity: common.MavSeverity, text: string): void {
    this.events.text(severity, text);
  }

  // ---- state for telemetry ----
  get landedState(): common.MavLandedState {
    if (this.k.onGround) return common.MavLandedState.ON_GROUND;
    if (this.nav.kind === 'takeoff' && !this.nav.done) return common.MavLandedState.TAKEOFF;
    if (isLanding(this.nav)) return common.MavLandedState.LANDING;
    return common.MavLandedState.IN_AIR;
  }
  /** A failsafe has triggered (HEARTBEAT reports MAV_STATE_CRITICAL). */
  get failsafe(): boolean {
    return this.batteryFailsafe;
  }
  get relativeAlt(): number {
    return this.k.alt - this.home.alt;
  }
  /** Throttle 0..1 as a multirotor would need it (hover around MOT_THST_HOVER). */
  get throttle(): number {
    if (!this.armed) return 0;
    if (this.k.onGround && this.k.vd >= 0) return this.params.get('MOT_SPIN_ARM');
    const hover = this.params.get('MOT_THST_HOVER');
    return Math.min(1, Math.max(0, hover - this.k.vd * 0.05 + Math.hypot(this.k.vn, this.k.ve) * 0.01));
  }
  /** Pre-arm problems (without the "PreArm: " prefix); empty when the vehicle may arm. */
  prearmFailures(): string[] {
    if (this.params.get('ARMING_CHECK') === 0) return [];
    const out: string[] = [];
    if (!this.gpsFix) {
      out.push('GPS 1: Bad fix');
      if (modeRequiresPosition(this.mode)) out.push('Need Position Estimate');
    }
    const armVolt = this.params.get('BATT_ARM_VOLT');
    if (armVolt > 0 && this.battery.voltage < armVolt) out.push('Battery 1 below minimum arming voltage');
    const lowVolt = this.params.get('BATT_LOW_VOLT');
    if (lowVolt > 0 && this.battery.voltage < lowVolt) out.push('Battery 1 low voltage failsafe');
    return out;
  }

  /** Where the current nav is heading (NAV_CONTROLLER_OUTPUT), if anywhere. */
  navTarget(): { lat: number; lon: number; alt: number } | undefined {
    const n = this.nav;
    switch (n.kind) {
      case 'goto':
      case 'takeoff':
        return n;
      case 'rtl':
        return n.phase === 'climb' ? n : { lat: this.home.lat, lon: this.home.lon, alt: n.phase === 'land' ? this.home.alt : n.alt };
      case 'land':
        return n.lat !== undefined && n.lon !== undefined && !n.descending ? { lat: n.lat, lon: n.lon, alt: n.alt ?? this.k.alt } : undefined;
      default:
        return undefined;
    }
  }

  // ---- commands ----
  arm(force: boolean): common.MavResult {
    if (this.armed) return R.ACCEPTED;
    if (!modeAllowsArming(this.mode, this.params.get('AUTO_OPTIONS'))) {
      this.text(S.CRITICAL, 'Arm: Mode not armable');
      return R.FAILED;
    }
    if (!force) {
      const failures = this.prearmFailures();
      if (failures.length > 0) {
        for (const f of failures) this.text(S.CRITICAL, `PreArm: ${f}`);
        return R.FAILED;
      }
    }
    this.armed = true;
    this.text(S.INFO, 'Arming motors');
    this.groundIdleMs = 0;
    this.touchdownMs = 0;
    this.batteryFailsafe = false;
    if (this.gpsFix) this.setHome(this.k.lat, this.k.lon, this.k.alt);
    if (this.mode === CopterMode.AUTO) this.auto.start(this);
    else this.nav = { kind: 'hold' };
    return R.ACCEPTED;
  }

  disarm(force: boolean): common.MavResult {
    if (!this.armed) return R.ACCEPTED;
    if (!this.k.onGround && !force) return R.FAILED;
    this.armed = false;
    this.text(S.INFO, 'Disarming motors');
    this.auto.pause();
    this.nav = { kind: 'hold' };
    return R.ACCEPTED;
  }

  setMode(mode: number): common.MavResult {
    if (!isSupportedMode(mode)) {
      this.text(S.WARNING, `Mode change to ${modeName(mode)} failed: unsupported`);
      return R.FAILED;
    }
    if (mode === this.mode) return R.ACCEPTED;
    if (this.armed && modeRequiresPosition(mode) && !this.gpsFix) {
      this.text(S.WARNING, `Mode change to ${modeName(mode)} failed: requires position`);
      return R.FAILED;
    }
    if (mode === CopterMode.AUTO && this.armed && this.k.onGround && !this.auto.startsWithTakeoff()) {
      this.text(S.CRITICAL, 'Auto: Missing Takeoff Cmd');
      this.text(S.WARNING, 'Mode change to AUTO failed: init failed');
      return R.FAILED;
    }
    if (this.mode === CopterMode.AUTO) this.auto.pause();
    this.mode = mode;
    this.speed = undefined;
    this.enterMode();
    return R.ACCEPTED;
  }

  takeoff(altRel: number): common.MavResult {
    if (this.mode !== CopterMode.GUIDED || !this.armed || !this.k.onGround || !(altRel > 0)) return R.FAILED;
    this.nav = { kind: 'takeoff', lat: this.k.lat, lon: this.k.lon, alt: this.home.alt + altRel, done: false };
    return R.ACCEPTED;
  }

  /** GUIDED position target (alt AMSL). Refused outside GUIDED or on the ground. */
  guidedGoto(lat: number, lon: number, alt: number, yaw?: number): common.MavResult {
    if (this.mode !== CopterMode.GUIDED || !this.armed || this.k.onGround) return R.FAILED;
    this.nav = yaw === undefined ? { kind: 'goto', lat, lon, alt } : { kind: 'goto', lat, lon, alt, yaw };
    return R.ACCEPTED;
  }

  guidedVelocity(vn: number, ve: number, vd: number): common.MavResult {
    if (this.mode !== CopterMode.GUIDED || !this.armed || this.k.onGround) return R.FAILED;
    this.nav = { kind: 'velocity', vn, ve, vd, untilMs: this.timeBootMs + this.params.get('GUID_TIMEOUT') * 1000 };
    return R.ACCEPTED;
  }

  changeSpeed(mps: number): common.MavResult {
    if (!(mps > 0)) return R.FAILED;
    this.speed = mps;
    return R.ACCEPTED;
  }

  // ---- time ----
  /** Advances the vehicle by dtMs of sim time. */
  tick(dtMs: number): void {
    if (dtMs <= 0) return;
    this.timeBootMs += dtMs;
    this.updateGps();
    if (this.armed && this.mode === CopterMode.AUTO) this.auto.update(this);
    this.nav = updateNav(this.nav, this.navContext());
    const steps = Math.max(1, Math.ceil(dtMs / 1000 / MAX_STEP_S));
    const dt = dtMs / 1000 / steps;
    const lim = this.limits();
    for (let i = 0; i < steps; i++) {
      const g = this.armed ? guidanceFor(this.nav, this.navContext()) : ({ kind: 'idle' } as const);
      stepPhysics(this.k, this.armed && this.k.onGround && !this.climbing() ? { kind: 'idle' } : g, lim, this.groundAlt, dt);
    }
    this.updateLanding(dtMs);
    this.updateBattery(dtMs);
  }

  private enterMode(): void {
    switch (this.mode) {
      case CopterMode.LAND:
        this.nav = { kind: 'land', descending: true };
        break;
      case CopterMode.RTL:
        this.startRtlNav();
        break;
      case CopterMode.AUTO:
        this.nav = { kind: 'hold' };
        if (this.armed) this.auto.start(this);
        break;
      default:
        this.nav = { kind: 'hold' };
    }
  }

  /** On the ground, only a climb command gets the vehicle moving. */
  private climbing(): boolean {
    const n = this.nav;
    return (n.kind === 'takeoff' && n.alt > this.k.alt) || (n.kind === 'goto' && n.alt > this.k.alt + 0.05)
      || (n.kind === 'velocity' && n.vd < 0);
  }

  private updateGps(): void {
    if (this.gpsFix || this.timeBootMs < this.opts.gpsDelayMs) return;
    this.gpsFix = true;
    this.text(S.INFO, 'EKF3 IMU0 is using GPS');
    if (!this.homeSet && !this.armed) this.setHome(this.k.lat, this.k.lon, this.k.alt);
  }

  private updateLanding(dtMs: number): void {
    if (!this.armed || !this.k.onGround) {
      this.groundIdleMs = 0;
      this.touchdownMs = 0;
      return;
    }
    if (isLanding(this.nav) || this.mode === CopterMode.LAND) {
      this.touchdownMs += dtMs;
      if (this.touchdownMs >= LAND_DISARM_MS) this.landedDisarm();
      return;
    }
    if (this.climbing()) {
      this.groundIdleMs = 0;
      return;
    }
    this.groundIdleMs += dtMs;
    const delayS = this.params.get('DISARM_DELAY');
    if (delayS > 0 && this.groundIdleMs >= delayS * 1000) this.landedDisarm();
  }

  private landedDisarm(): void {
    this.disarm(false);
  }

  private updateBattery(dtMs: number): void {
    const b = this.battery;
    const flying = this.armed && !this.k.onGround;
    b.currentA = !this.armed ? 0.3 : !flying ? 2 : 12 + 1.5 * Math.hypot(this.k.vn, this.k.ve) + 4 * Math.max(0, -this.k.vd);
    const capacity = Math.max(1, this.params.get('BATT_CAPACITY'));
    b.consumedMah += (b.currentA * dtMs) / 3600;
    const frac = Math.max(0, 1 - b.consumedMah / capacity);
    b.remainingPct = Math.round(frac * 100);
    b.voltage = CELLS * (3.3 + 0.9 * frac) - b.currentA * 0.01;
    b.energyJ += b.voltage * b.currentA * (dtMs / 1000);
    b.timeRemainingS = b.currentA > 0.5 ? ((capacity - b.consumedMah) / 1000 / b.currentA) * 3600 : 0;
    this.checkBatteryFailsafe(dtMs, capacity);
  }

  private checkBatteryFailsafe(dtMs: number, capacity: number): void {
    const b = this.battery;
    const lowVolt = this.params.get('BATT_LOW_VOLT');
    const lowMah = this.params.get('BATT_LOW_MAH');
    const low = (lowVolt > 0 && b.voltage < lowVolt) || (lowMah > 0 && capacity - b.consumedMah < lowMah);
    this.lowBatteryMs = low ? this.lowBatteryMs + dtMs : 0;
    if (this.batteryFailsafe || this.lowBatteryMs < this.params.get('BATT_LOW_TIMER') * 1000) return;
    this.batteryFailsafe = true;
    this.text(S.CRITICAL, `Battery 1 is low ${b.voltage.toFixed(2)}V used ${Math.round(b.consumedMah)} mAh`);
    if (!this.armed || this.k.onGround) return;
    const action = this.params.get('BATT_FS_LOW_ACT');
    if (action === 1) this.setMode(CopterMode.LAND);
    else if (action >= 2 && action <= 4) this.setMode(CopterMode.RTL);
    else if (action === 5) this.disarm(true);
  }

  private limits(): Limits {
    const p = this.params;
    return {
      speed: this.speed ?? Math.max(p.get('WPNAV_SPEED'), 20) / 100,
      speedUp: Math.max(p.get('WPNAV_SPEED_UP'), 10) / 100,
      speedDn: Math.max(p.get('WPNAV_SPEED_DN'), 10) / 100,
      accel: Math.max(p.get('WPNAV_ACCEL'), 50) / 100,
      accelZ: Math.max(p.get('WPNAV_ACCEL_Z'), 50) / 100,
      maxTilt: (Math.max(p.get('ANGLE_MAX'), 1000) / 100) * (Math.PI / 180),
      yawRate: Math.PI / 2,
    };
  }

  private navContext(): NavContext {
    return { k: this.k, home: this.home, params: this.params, timeBootMs: this.timeBootMs, speed: this.speed };
  }
}
