/** ArduCopter custom_mode numbers the simulator flies. */
export const CopterMode = {
  STABILIZE: 0,
  ALT_HOLD: 2,
  AUTO: 3,
  GUIDED: 4,
  LOITER: 5,
  RTL: 6,
  LAND: 9,
  POSHOLD: 16,
  BRAKE: 17,
} as const;
export type CopterModeNumber = (typeof CopterMode)[keyof typeof CopterMode];

const NAMES: Record<number, string> = {
  0: 'STABILIZE', 2: 'ALT_HOLD', 3: 'AUTO', 4: 'GUIDED', 5: 'LOITER', 6: 'RTL', 9: 'LAND', 16: 'POSHOLD', 17: 'BRAKE',
};

export function isSupportedMode(n: number): n is CopterModeNumber {
  return NAMES[n] !== undefined;
}

export function modeName(n: number): string {
  return NAMES[n] ?? `Mode(${n})`;
}

/** Modes that need a position estimate (ArduPilot refuses them when armed without one). */
export function modeRequiresPosition(n: CopterModeNumber): boolean {
  return n === CopterMode.AUTO || n === CopterMode.GUIDED || n === CopterMode.LOITER || n === CopterMode.RTL
    || n === CopterMode.POSHOLD || n === CopterMode.BRAKE;
}

/** Modes the copter may be armed in (AUTO only with AUTO_OPTIONS bit 0; RTL/LAND/BRAKE never). */
export function modeAllowsArming(n: CopterModeNumber, autoOptions: number): boolean {
  if (n === CopterMode.AUTO) return (autoOptions & 1) !== 0;
  return n !== CopterMode.RTL && n !== CopterMode.LAND && n !== CopterMode.BRAKE;
}

/** Modes ArduPilot reports with MAV_MODE_FLAG_GUIDED_ENABLED. */
export function modeIsGuidedFlag(n: CopterModeNumber): boolean {
  return n === CopterMode.AUTO || n === CopterMode.GUIDED || n === CopterMode.LOITER || n === CopterMode.RTL
    || n === CopterMode.POSHOLD || n === CopterMode.BRAKE;
}
