import { distanceM } from './geo.js';
import type { Guidance, Kinematics } from './physics.js';
import type { ParamTable } from './params.js';

export interface Home {
  lat: number;
  lon: number;
  /** metres AMSL */
  alt: number;
}

/** What the vehicle is doing within its mode. Altitudes are AMSL metres. */
export type Nav =
  | { kind: 'hold' }
  | { kind: 'takeoff'; lat: number; lon: number; alt: number; done: boolean }
  | { kind: 'goto'; lat: number; lon: number; alt: number; yaw?: number }
  | { kind: 'velocity'; vn: number; ve: number; vd: number; untilMs: number }
  /** Land: optionally fly to lat/lon first (at the current altitude), then descend. */
  | { kind: 'land'; lat?: number; lon?: number; alt?: number; descending: boolean }
  | { kind: 'rtl'; phase: 'climb' | 'return' | 'loiter' | 'final' | 'land'; alt: number; lat: number; lon: number; untilMs: number };

export interface NavContext {
  k: Kinematics;
  home: Home;
  params: ParamTable;
  timeBootMs: number;
  /** DO_CHANGE_SPEED override, m/s. */
  speed: number | undefined;
}

/** Ground level: the home altitude (flat terrain). */
export function reached(ctx: NavContext, lat: number, lon: number, alt: number): boolean {
  const radius = Math.max(ctx.params.get('WPNAV_RADIUS') / 100, 0.5);
  return distanceM(ctx.k, { lat, lon }) <= radius && Math.abs(ctx.k.alt - alt) <= 0.5;
}

function landSpeed(ctx: NavContext): number {
  const p = ctx.params;
  const rel = ctx.k.alt - ctx.home.alt;
  const high = p.get('LAND_SPEED_HIGH') > 0 ? p.get('LAND_SPEED_HIGH') : p.get('WPNAV_SPEED_DN');
  const low = p.get('LAND_SPEED');
  return Math.max(rel > p.get('LAND_ALT_LOW') / 100 ? high : low, 10) / 100;
}

/** Advances phase transitions (RTL climb → return → loiter → final/land; land approach → descent). */
export function updateNav(nav: Nav, ctx: NavContext): Nav {
  switch (nav.kind) {
    case 'takeoff':
      if (!nav.done && Math.abs(ctx.k.alt - nav.alt) <= 0.3) return { ...nav, done: true };
      return nav;
    case 'velocity':
      return ctx.timeBootMs >= nav.untilMs ? { kind: 'hold' } : nav;
    case 'land':
      if (!nav.descending && nav.lat !== undefined && nav.lon !== undefined && reached(ctx, nav.lat, nav.lon, nav.alt ?? ctx.k.alt)) {
        return { ...nav, descending: true };
      }
      return nav;
    case 'rtl':
      return updateRtl(nav, ctx);
    default:
      return nav;
  }
}

function updateRtl(nav: Extract<Nav, { kind: 'rtl' }>, ctx: NavContext): Nav {
  const p = ctx.params;
  switch (nav.phase) {
    case 'climb':
      return Math.abs(ctx.k.alt - nav.alt) <= 0.5 || ctx.k.alt > nav.alt ? { ...nav, phase: 'return' } : nav;
    case 'return':
      return reached(ctx, ctx.home.lat, ctx.home.lon, nav.alt)
        ? { ...nav, phase: 'loiter', untilMs: ctx.timeBootMs + Math.max(0, p.get('RTL_LOIT_TIME')) }
        : nav;
    case 'loiter':
      return ctx.timeBootMs >= nav.untilMs ? { ...nav, phase: p.get('RTL_ALT_FINAL') > 0 ? 'final' : 'land' } : nav;
    default:
      return nav;
  }
}

/** Entering RTL: the return altitude is RTL_ALT above home, or the current altitude if higher. */
export function startRtl(ctx: NavContext): Nav {
  const rtlAlt = ctx.params.get('RTL_ALT') / 100;
  const alt = Math.max(rtlAlt > 0 ? ctx.home.alt + rtlAlt : ctx.k.alt, ctx.k.alt);
  return { kind: 'rtl', phase: 'climb', alt, lat: ctx.k.lat, lon: ctx.k.lon, untilMs: 0 };
}

/** True while the nav is descending to touch down (EXTENDED_SYS_STATE LANDING, and disarm-on-touchdown). */
export function isLanding(nav: Nav): boolean {
  return (nav.kind === 'land' && (nav.descending || nav.lat === undefined)) || (nav.kind === 'rtl' && nav.phase === 'land');
}

/** What to ask of the airframe for this nav. */
export function guidanceFor(nav: Nav, ctx: NavContext): Guidance {
  const p = ctx.params;
  const wpSpeed = ctx.speed ?? p.get('WPNAV_SPEED') / 100;
  switch (nav.kind) {
    case 'hold':
      return { kind: 'hold' };
    case 'takeoff':
      return { kind: 'goto', lat: nav.lat, lon: nav.lon, alt: nav.alt, yaw: ctx.k.yaw };
    case 'goto':
      return nav.yaw === undefined
        ? { kind: 'goto', lat: nav.lat, lon: nav.lon, alt: nav.alt, speed: wpSpeed }
        : { kind: 'goto', lat: nav.lat, lon: nav.lon, alt: nav.alt, speed: wpSpeed, yaw: nav.yaw };
    case 'velocity':
      return { kind: 'velocity', vn: nav.vn, ve: nav.ve, vd: nav.vd };
    case 'land':
      if (!nav.descending && nav.lat !== undefined && nav.lon !== undefined) {
        return { kind: 'goto', lat: nav.lat, lon: nav.lon, alt: nav.alt ?? ctx.k.alt, speed: wpSpeed };
      }
      return { kind: 'land', speedDn: landSpeed(ctx) };
    case 'rtl': {
      const rtlSpeed = p.get('RTL_SPEED') > 0 ? p.get('RTL_SPEED') / 100 : wpSpeed;
      switch (nav.phase) {
        case 'climb':
          return { kind: 'goto', lat: nav.lat, lon: nav.lon, alt: nav.alt, yaw: ctx.k.yaw };
        case 'return':
          return { kind: 'goto', lat: ctx.home.lat, lon: ctx.home.lon, alt: nav.alt, speed: rtlSpeed };
        case 'loiter':
          return { kind: 'goto', lat: ctx.home.lat, lon: ctx.home.lon, alt: nav.alt, yaw: ctx.k.yaw };
        case 'final':
          return { kind: 'goto', lat: ctx.home.lat, lon: ctx.home.lon, alt: ctx.home.alt + p.get('RTL_ALT_FINAL') / 100, yaw: ctx.k.yaw };
        case 'land':
          return { kind: 'land', speedDn: landSpeed(ctx) };
      }
    }
  }
}
