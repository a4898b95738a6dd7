/** Flat-earth helpers, accurate to well under a metre over the few km a simulated flight covers. */
const EARTH_RADIUS_M = 6_378_137;
const DEG = Math.PI / 180;

export interface LatLon {
  lat: number;
  lon: number;
}

/** North/east offset in metres from `from` to `to`. */
export function offsetNE(from: LatLon, to: LatLon): { north: number; east: number } {
  return {
    north: (to.lat - from.lat) * DEG * EARTH_RADIUS_M,
    east: (to.lon - from.lon) * DEG * EARTH_RADIUS_M * Math.cos(from.lat * DEG),
  };
}

export function moveNE(p: LatLon, north: number, east: number): LatLon {
  return {
    lat: p.lat + north / EARTH_RADIUS_M / DEG,
    lon: p.lon + east / (EARTH_RADIUS_M * Math.cos(p.lat * DEG)) / DEG,
  };
}

export function distanceM(a: LatLon, b: LatLon): number {
  const { north, east } = offsetNE(a, b);
  return Math.hypot(north, east);
}

/** Bearing from a to b, radians in [0, 2π). */
export function bearingRad(a: LatLon, b: LatLon): number {
  const { north, east } = offsetNE(a, b);
  return wrap2Pi(Math.atan2(east, north));
}

export function wrap2Pi(a: number): number {
  const t = a % (2 * Math.PI);
  return t < 0 ? t + 2 * Math.PI : t;
}

export function wrapPi(a: number): number {
  const t = wrap2Pi(a);
  return t > Math.PI ? t - 2 * Math.PI : t;
}

export function toE7(deg: number): number {
  return Math.round(deg * 1e7);
}

export function fromE7(e7: number): number {
  return e7 / 1e7;
}

export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/** Integer clamped into a MAVLink field's range (node-mavlink's serializers throw outside it). */
export function intField(v: number, lo: number, hi: number): number {
  if (!Number.isFinite(v)) return 0;
  return clamp(Math.round(v), lo, hi);
}

export const U8 = [0, 0xff] as const;
export const U16 = [0, 0xffff] as const;
export const I16 = [-0x8000, 0x7fff] as const;
export const I32 = [-0x80000000, 0x7fffffff] as const;
export const U32 = [0, 0xffffffff] as const;
