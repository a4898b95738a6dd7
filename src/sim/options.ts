import { z } from 'zod';
import { MavmqError, ErrorCodes } from '../errors.js';

/** ArduPilot stream groups (the SRn_* parameters and REQUEST_DATA_STREAM ids). */
export const STREAM_GROUPS = ['RAW_SENS', 'EXT_STAT', 'RC_CHAN', 'RAW_CTRL', 'POSITION', 'EXTRA1', 'EXTRA2', 'EXTRA3', 'PARAMS', 'ADSB'] as const;
export type StreamGroup = (typeof STREAM_GROUPS)[number];

export interface SimFaults {
  /** Fraction (0..1) of outgoing bytes silently dropped. */
  dropRate: number;
  /** Fraction (0..1) of outgoing bytes with one bit flipped. */
  corruptRate: number;
  /** Every this many real ms (0 = never), a link blackout of stallMs: nothing in or out. */
  stallEveryMs: number;
  stallMs: number;
  /** Every this many real ms (0 = never), an unannounced reboot (armed or not: a crash). */
  rebootEveryMs: number;
}

/**
 * Everything the simulator can be told. Every field has a default (see SIM_DEFAULTS); pass a
 * Partial to resolveSimOptions(). Durations marked "sim" are vehicle time and shrink with speedup;
 * "real" durations are protocol timing toward the GCS and do not.
 */
export interface SimOptions {
  /** Our MAVLink system id. When set it overrides SYSID_THISMAV (also one loaded from paramsFile). */
  sysid: number | undefined;
  compid: number;
  /** Vehicle-time speed-up: physics and vehicle timers run this many times faster than wall time. */
  speedup: number;
  /** Sim ms from boot until the GPS reports a 3D fix. */
  gpsDelayMs: number;
  /** Sim ms the link stays silent during a reboot. */
  rebootMs: number;
  /** Start location (also the ground altitude, metres AMSL). Default: ArduPilot SITL's CMAC field. */
  home: { lat: number; lon: number; alt: number };
  /** Parameter persistence (JSON file of the values that differ from defaults); the runner reads/writes it. */
  paramsFile: string | undefined;
  /** Parameter defaults to replace, by name (unknown names are an error). */
  paramDefaults: Record<string, number>;
  /** Default stream rates (Hz) for every SRn_* group; REQUEST_DATA_STREAM changes them at run time. */
  streamRates: Partial<Record<StreamGroup, number>>;
  /** Per-message default rate overrides in Hz, by MAVLink message name (0 = not streamed by default). */
  messageRates: Record<string, number>;
  /** PARAM_VALUE messages per real second while streaming PARAM_REQUEST_LIST (per link). */
  paramRatePerSec: number;
  /** Real ms before an upload item is re-requested, and how many re-requests before giving up. */
  missionRetryMs: number;
  missionMaxRetries: number;
  /** Stored items per mission type (a mission of more is refused with MAV_MISSION_NO_SPACE). */
  maxMissionItems: number;
  /** At most this many links (GCS connections) are served; more are ignored. */
  maxLinks: number;
  /** Real-time tick of the runner, ms. */
  tickMs: number;
  faults: SimFaults;
  /** Seed of the fault-injection PRNG (deterministic faults for tests). */
  seed: number;
}

export const SIM_DEFAULTS: Readonly<SimOptions> = Object.freeze({
  sysid: undefined,
  compid: 1,
  speedup: 1,
  gpsDelayMs: 3000,
  rebootMs: 2000,
  home: { lat: -35.363261, lon: 149.16523, alt: 584 },
  paramsFile: undefined,
  paramDefaults: {},
  streamRates: {},
  messageRates: {},
  paramRatePerSec: 400,
  missionRetryMs: 1500,
  missionMaxRetries: 5,
  maxMissionItems: 700,
  maxLinks: 16,
  tickMs: 20,
  faults: { dropRate: 0, corruptRate: 0, stallEveryMs: 0, stallMs: 0, rebootEveryMs: 0 },
  seed: 1,
});

const rate = z.number().min(0).max(50);
const schema = z.object({
  sysid: z.number().int().min(1).max(255).optional(),
  compid: z.number().int().min(1).max(255),
  speedup: z.number().min(0.1).max(100),
  gpsDelayMs: z.number().min(0).max(3_600_000),
  rebootMs: z.number().min(0).max(60_000),
  home: z.object({ lat: z.number().min(-89).max(89), lon: z.number().min(-180).max(180), alt: z.number().min(-500).max(9000) }),
  paramsFile: z.string().min(1).optional(),
  paramDefaults: z.record(z.string().max(16), z.number()),
  streamRates: z.partialRecord(z.enum(STREAM_GROUPS), rate),
  messageRates: z.record(z.string(), rate),
  paramRatePerSec: z.number().min(1).max(100_000),
  missionRetryMs: z.number().min(50).max(60_000),
  missionMaxRetries: z.number().int().min(0).max(100),
  maxMissionItems: z.number().int().min(1).max(65_535),
  maxLinks: z.number().int().min(1).max(256),
  tickMs: z.number().min(1).max(1000),
  faults: z.object({
    dropRate: z.number().min(0).max(1),
    corruptRate: z.number().min(0).max(1),
    stallEveryMs: z.number().min(0).max(86_400_000),
    stallMs: z.number().min(0).max(3_600_000),
    rebootEveryMs: z.number().min(0).max(86_400_000),
  }),
  seed: z.number().int(),
});

export type SimOptionsInput = Partial<Omit<SimOptions, 'faults' | 'home'>> & {
  faults?: Partial<SimFaults>;
  home?: Partial<SimOptions['home']>;
};

/** Applies defaults and validates; throws MavmqError(E_USAGE) listing every problem. */
export function resolveSimOptions(input: SimOptionsInput = {}): SimOptions {
  const merged = {
    ...SIM_DEFAULTS,
    ...stripUndefined(input),
    home: { ...SIM_DEFAULTS.home, ...stripUndefined(input.home ?? {}) },
    faults: { ...SIM_DEFAULTS.faults, ...stripUndefined(input.faults ?? {}) },
  };
  const parsed = schema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => ({ path: `sim.${i.path.map(String).join('.')}`, message: i.message }));
    throw new MavmqError(ErrorCodes.USAGE, `invalid simulator options: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, { problems });
  }
  const v = parsed.data;
  return {
    sysid: v.sysid,
    compid: v.compid,
    speedup: v.speedup,
    gpsDelayMs: v.gpsDelayMs,
    rebootMs: v.rebootMs,
    home: v.home,
    paramsFile: v.paramsFile,
    paramDefaults: v.paramDefaults,
    streamRates: v.streamRates,
    messageRates: v.messageRates,
    paramRatePerSec: v.paramRatePerSec,
    missionRetryMs: v.missionRetryMs,
    missionMaxRetries: v.missionMaxRetries,
    maxMissionItems: v.maxMissionItems,
    maxLinks: v.maxLinks,
    tickMs: v.tickMs,
    faults: v.faults,
    seed: v.seed,
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
