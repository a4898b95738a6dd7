import { clamp, moveNE, offsetNE, wrapPi } from './geo.js';

const GRAVITY = 9.80665;
/** Largest physics step (sim seconds); longer ticks are split. */
export const MAX_STEP_S = 0.05;

/** Where the vehicle is and how it moves. Angles in radians, velocities NED in m/s, alt AMSL in m. */
export interface Kinematics {
  lat: number;
  lon: number;
  alt: number;
  vn: number;
  ve: number;
  vd: number;
  roll: number;
  pitch: number;
  yaw: number;
  rollRate: number;
  pitchRate: number;
  yawRate: number;
  onGround: boolean;
}

/** What the flight controller asks of the airframe this step. */
export type Guidance =
  /** Motors off: on the ground stay there, in the air fall. */
  | { kind: 'idle' }
  /** Brake to a stop and hold altitude. */
  | { kind: 'hold'; yaw?: number }
  /** Fly to a point (alt AMSL) along a straight line with a trapezoid speed profile. */
  | { kind: 'goto'; lat: number; lon: number; alt: number; speed?: number; yaw?: number }
  /** Descend vertically at `speedDn` m/s until touchdown. */
  | { kind: 'land'; speedDn: number }
  | { kind: 'velocity'; vn: number; ve: number; vd: number; yaw?: number };

export interface Limits {
  /** Horizontal cruise speed, m/s. */
  speed: number;
  speedUp: number;
  speedDn: number;
  /** Horizontal and vertical acceleration limits, m/s². */
  accel: number;
  accelZ: number;
  maxTilt: number;
  yawRate: number;
}

export function initialKinematics(lat: number, lon: number, alt: number): Kinematics {
  return { lat, lon, alt, vn: 0, ve: 0, vd: 0, roll: 0, pitch: 0, yaw: 0, rollRate: 0, pitchRate: 0, yawRate: 0, onGround: true };
}

/** Speed that still allows stopping within `dist` at deceleration `accel`. */
function stoppingSpeed(dist: number, accel: number): number {
  return Math.sqrt(2 * accel * Math.max(0, dist));
}

/**
 * Advances the kinematic model by dt seconds (call with dt <= MAX_STEP_S). Mutates `k`.
 * A deliberately simple point-mass: velocity slews toward the guidance's wish within acceleration
 * limits; attitude follows the acceleration and drag tilt like a real multirotor's would.
 */
export function stepPhysics(k: Kinematics, g: Guidance, lim: Limits, groundAlt: number, dt: number): void {
  let wn = 0;
  let we = 0;
  let wd = 0;
  let wantYaw: number | undefined;
  let snap: { lat: number; lon: number; alt: number } | undefined;
  switch (g.kind) {
    case 'idle':
      wd = k.onGround ? 0 : Math.min(k.vd + GRAVITY * dt, 15);
      wn = k.vn;
      we = k.ve;
      break;
    case 'hold':
      wantYaw = g.yaw;
      break;
    case 'land':
      wd = g.speedDn;
      break;
    case 'velocity':
      wn = g.vn;
      we = g.ve;
      wd = g.vd;
      wantYaw = g.yaw;
      break;
    case 'goto': {
      const { north, east } = offsetNE(k, g);
      const dH = Math.hypot(north, east);
      const dUp = g.alt - k.alt;
      const hs = Math.min(g.speed ?? lim.speed, stoppingSpeed(dH, lim.accel));
      if (dH > 1e-3) {
        wn = (north / dH) * hs;
        we = (east / dH) * hs;
      }
      wd = dUp > 0 ? -Math.min(lim.speedUp, stoppingSpeed(dUp, lim.accelZ)) : Math.min(lim.speedDn, stoppingSpeed(-dUp, lim.accelZ));
      wantYaw = g.yaw ?? (dH > 2 ? Math.atan2(east, north) : undefined);
      snap = g;
      break;
    }
  }
  if (g.kind !== 'idle') {
    // Velocity slews toward the wish within the acceleration limits.
    const dn = wn - k.vn;
    const de = we - k.ve;
    const dh = Math.hypot(dn, de);
    const maxDh = lim.accel * dt;
    const sh = dh > maxDh ? maxDh / dh : 1;
    const an = (dn * sh) / dt;
    const ae = (de * sh) / dt;
    k.vn += dn * sh;
    k.ve += de * sh;
    k.vd += clamp(wd - k.vd, -lim.accelZ * dt * 2, lim.accelZ * dt * 2);
    attitude(k, an, ae, lim, dt);
  } else {
    k.vd = wd;
    attitude(k, 0, 0, lim, dt);
  }
  if (k.onGround && k.vd >= 0) {
    k.vn = 0;
    k.ve = 0;
    k.vd = 0;
  }
  const prev = { lat: k.lat, lon: k.lon };
  const moved = moveNE(k, k.vn * dt, k.ve * dt);
  k.lat = moved.lat;
  k.lon = moved.lon;
  k.alt -= k.vd * dt;
  if (snap !== undefined) snapToTarget(k, prev, snap, dt);
  if (wantYaw !== undefined) turnToward(k, wantYaw, lim.yawRate, dt);
  else k.yawRate = 0;
  if (k.alt <= groundAlt) {
    k.alt = groundAlt;
    if (k.vd > 0) k.vd = 0;
    k.vn = 0;
    k.ve = 0;
    k.onGround = true;
    k.roll = 0;
    k.pitch = 0;
  } else if (k.alt > groundAlt + 0.05) {
    k.onGround = false;
  }
}

/** Close enough that the next step would overshoot: land exactly on the target and stop. */
function snapToTarget(k: Kinematics, prev: { lat: number; lon: number }, t: { lat: number; lon: number; alt: number }, dt: number): void {
  const before = offsetNE(prev, t);
  const dBefore = Math.hypot(before.north, before.east);
  const after = offsetNE(k, t);
  const dAfter = Math.hypot(after.north, after.east);
  const hSpeed = Math.hypot(k.vn, k.ve);
  if (dBefore < 2 && (dAfter >= dBefore || dAfter <= hSpeed * dt)) {
    k.lat = t.lat;
    k.lon = t.lon;
    k.vn = 0;
    k.ve = 0;
  }
  const dUp = t.alt - k.alt;
  if (Math.abs(dUp) < 0.5 && Math.abs(dUp) <= Math.abs(k.vd) * dt) {
    k.alt = t.alt;
    k.vd = 0;
  }
}

function attitude(k: Kinematics, an: number, ae: number, lim: Limits, dt: number): void {
  const cy = Math.cos(k.yaw);
  const sy = Math.sin(k.yaw);
  const fwdA = an * cy + ae * sy;
  const rightA = -an * sy + ae * cy;
  const fwdV = k.vn * cy + k.ve * sy;
  const rightV = -k.vn * sy + k.ve * cy;
  const pitch = k.onGround ? 0 : clamp(-Math.atan(fwdA / GRAVITY) - fwdV * 0.02, -lim.maxTilt, lim.maxTilt);
  const roll = k.onGround ? 0 : clamp(Math.atan(rightA / GRAVITY) + rightV * 0.02, -lim.maxTilt, lim.maxTilt);
  k.pitchRate = (pitch - k.pitch) / dt;
  k.rollRate = (roll - k.roll) / dt;
  k.pitch = pitch;
  k.roll = roll;
}

function turnToward(k: Kinematics, yaw: number, rate: number, dt: number): void {
  const err = wrapPi(yaw - k.yaw);
  const step = clamp(err, -rate * dt, rate * dt);
  k.yaw = wrapPi(k.yaw + step);
  k.yawRate = step / dt;
}
