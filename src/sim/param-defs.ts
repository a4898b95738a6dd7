import { common } from 'node-mavlink';
import { STREAM_GROUPS } from './options.js';

const T = common.MavParamType;
/** The parameter storage types ArduPilot uses (AP_Int8/16/32, AP_Float). */
export type ParamType = common.MavParamType.INT8 | common.MavParamType.INT16 | common.MavParamType.INT32 | common.MavParamType.REAL32;

export interface ParamDef {
  readonly name: string;
  readonly type: ParamType;
  readonly defaultValue: number;
}

/** Default stream rates (Hz) per SRn group, chosen so a GCS that requests nothing still sees telemetry. */
export const DEFAULT_STREAM_RATES: Readonly<Record<(typeof STREAM_GROUPS)[number], number>> = {
  RAW_SENS: 2, EXT_STAT: 2, RC_CHAN: 2, RAW_CTRL: 0, POSITION: 4, EXTRA1: 4, EXTRA2: 4, EXTRA3: 2, PARAMS: 10, ADSB: 0,
};

/** Number of SRn_* parameter groups (SR0..SR6), i.e. of telemetry channels with their own rates. */
export const STREAM_CHANNELS = 7;

class Builder {
  readonly defs: ParamDef[] = [];
  private readonly names = new Set<string>();
  add(name: string, type: ParamType, value: number): void {
    if (name.length > 16) throw new Error(`param name too long: ${name}`);
    if (this.names.has(name)) throw new Error(`duplicate param: ${name}`);
    this.names.add(name);
    this.defs.push({ name, type, defaultValue: value });
  }
  i8(name: string, v: number): void {
    this.add(name, T.INT8, v);
  }
  i16(name: string, v: number): void {
    this.add(name, T.INT16, v);
  }
  i32(name: string, v: number): void {
    this.add(name, T.INT32, v);
  }
  f(name: string, v: number): void {
    this.add(name, T.REAL32, v);
  }
  /** A family of float params: prefix + each suffix. */
  floats(prefix: string, entries: Record<string, number>): void {
    for (const [k, v] of Object.entries(entries)) this.f(prefix + k, v);
  }
  xyz(prefix: string, v = 0, type: ParamType = T.REAL32): void {
    for (const axis of ['X', 'Y', 'Z']) this.add(`${prefix}${axis}`, type, v);
  }
}

/**
 * A realistic ArduCopter 4.5-like parameter set (about 900 names), built deterministically: the
 * same input always gives the same names, order (= param_index) and defaults.
 */
export function buildParamDefs(opts: { sysid: number; streamRates: Partial<Record<(typeof STREAM_GROUPS)[number], number>> }): ParamDef[] {
  const b = new Builder();
  b.i16('FORMAT_VERSION', 120);
  b.i16('SYSID_THISMAV', opts.sysid);
  b.i16('SYSID_MYGCS', 255);
  b.i8('SYSID_ENFORCE', 0);
  b.f('PILOT_THR_FILT', 0);
  b.f('PILOT_TKOFF_ALT', 0);
  b.i16('PILOT_THR_BHV', 0);
  b.i8('TELEM_DELAY', 0);
  b.i16('GCS_PID_MASK', 0);
  b.i32('RTL_ALT', 1500);
  b.f('RTL_CONE_SLOPE', 3);
  b.i16('RTL_SPEED', 0);
  b.i32('RTL_ALT_FINAL', 0);
  b.i16('RTL_CLIMB_MIN', 0);
  b.i32('RTL_LOIT_TIME', 5000);
  b.i8('RTL_ALT_TYPE', 0);
  b.i32('RTL_OPTIONS', 0);
  b.i8('FS_GCS_ENABLE', 0);
  b.f('FS_GCS_TIMEOUT', 5);
  b.i8('FS_THR_ENABLE', 0);
  b.i16('FS_THR_VALUE', 975);
  b.i32('FS_OPTIONS', 16);
  b.i8('FS_EKF_ACTION', 1);
  b.f('FS_EKF_THRESH', 0.8);
  b.i8('FS_CRASH_CHECK', 1);
  b.i8('FS_VIBE_ENABLE', 1);
  b.i8('FS_DR_ENABLE', 2);
  b.i16('FS_DR_TIMEOUT', 30);
  b.i16('GPS_HDOP_GOOD', 140);
  b.i8('SUPER_SIMPLE', 0);
  b.i8('WP_YAW_BEHAVIOR', 2);
  b.i16('LAND_SPEED', 50);
  b.i16('LAND_SPEED_HIGH', 0);
  b.i16('LAND_ALT_LOW', 1000);
  b.i8('LAND_REPOSITION', 1);
  b.i16('PILOT_SPEED_UP', 250);
  b.i16('PILOT_SPEED_DN', 0);
  b.i16('PILOT_ACCEL_Z', 250);
  b.f('PILOT_Y_RATE', 202.5);
  b.f('PILOT_Y_EXPO', 0);
  b.i8('FLTMODE_CH', 5);
  const fltmodes = [0, 2, 5, 6, 3, 9];
  fltmodes.forEach((m, i) => b.i8(`FLTMODE${i + 1}`, m));
  b.i8('INITIAL_MODE', 0);
  b.i8('SIMPLE', 0);
  b.i32('LOG_BITMASK', 176126);
  b.i8('ESC_CALIBRATION', 0);
  b.i8('TUNE', 0);
  b.i8('FRAME_CLASS', 1);
  b.i8('FRAME_TYPE', 1);
  b.i8('DISARM_DELAY', 10);
  b.i16('ANGLE_MAX', 3000);
  b.i16('PHLD_BRAKE_RATE', 8);
  b.i16('PHLD_BRAKE_ANGLE', 3000);
  b.i16('RC_SPEED', 490);
  b.i32('AUTO_OPTIONS', 0);
  b.i32('GUID_OPTIONS', 0);
  b.f('GUID_TIMEOUT', 3);
  b.f('TKOFF_SLEW_TIME', 2);
  b.f('TKOFF_RPM_MIN', 0);
  b.i8('ACRO_TRAINER', 2);
  b.f('ACRO_RP_EXPO', 0.3);
  b.f('ACRO_Y_EXPO', 0);
  b.f('ACRO_BAL_ROLL', 1);
  b.f('ACRO_BAL_PITCH', 1);
  b.i16('THROW_MOT_START', 0);
  b.i16('THROW_TYPE', 0);
  b.i8('THROW_NEXTMODE', 18);
  b.i16('DEV_OPTIONS', 0);
  b.i8('FS_GCS_LOST_ACT', 0);
  b.i32('STAT_BOOTCNT', 0);
  b.i32('STAT_FLTTIME', 0);
  b.i32('STAT_RUNTIME', 0);
  b.i32('STAT_RESET', 0);

  b.i32('ARMING_CHECK', 1);
  b.i8('ARMING_REQUIRE', 1);
  b.f('ARMING_ACCTHRESH', 0.75);
  b.i8('ARMING_RUDDER', 2);
  b.i32('ARMING_MIS_ITEMS', 0);
  b.i32('ARMING_OPTIONS', 0);
  b.i16('ARMING_MAGTHRESH', 100);
  b.i8('ARMING_CRSDP_IGN', 0);

  for (const [p, monitor] of [['BATT', 4], ['BATT2', 0]] as const) {
    b.i8(`${p}_MONITOR`, monitor);
    b.i32(`${p}_CAPACITY`, 3300);
    b.i32(`${p}_SERIAL_NUM`, -1);
    b.i8(`${p}_LOW_TIMER`, 10);
    b.i8(`${p}_FS_VOLTSRC`, 0);
    b.f(`${p}_LOW_VOLT`, 10.5);
    b.f(`${p}_LOW_MAH`, 0);
    b.f(`${p}_CRT_VOLT`, 0);
    b.f(`${p}_CRT_MAH`, 0);
    b.i8(`${p}_FS_LOW_ACT`, 0);
    b.i8(`${p}_FS_CRT_ACT`, 0);
    b.f(`${p}_ARM_VOLT`, 0);
    b.i32(`${p}_ARM_MAH`, 0);
    b.i8(`${p}_VOLT_PIN`, 13);
    b.i8(`${p}_CURR_PIN`, 12);
    b.f(`${p}_VOLT_MULT`, 10.1);
    b.f(`${p}_AMP_PERVLT`, 17);
    b.f(`${p}_AMP_OFFSET`, 0);
    b.i32(`${p}_OPTIONS`, 0);
  }

  b.i8('FENCE_ENABLE', 0);
  b.i8('FENCE_TYPE', 7);
  b.i8('FENCE_ACTION', 1);
  b.f('FENCE_ALT_MAX', 100);
  b.f('FENCE_RADIUS', 300);
  b.f('FENCE_MARGIN', 2);
  b.i8('FENCE_TOTAL', 0);
  b.f('FENCE_ALT_MIN', -10);
  b.i8('FENCE_AUTOENABLE', 0);
  b.i16('FENCE_OPTIONS', 0);

  const bauds = [115, 57, 57, 38, 38, 57, 57, 57];
  const protocols = [2, 2, 2, 5, 5, -1, -1, -1];
  for (let i = 0; i < 8; i++) {
    b.i32(`SERIAL${i}_BAUD`, bauds[i] ?? 57);
    b.i8(`SERIAL${i}_PROTOCOL`, protocols[i] ?? -1);
    if (i > 0) b.i16(`SERIAL${i}_OPTIONS`, 0);
  }
  b.i8('SERIAL_PASS1', 0);
  b.i8('SERIAL_PASS2', -1);
  b.i8('SERIAL_PASSTIMO', 15);

  for (let ch = 0; ch < STREAM_CHANNELS; ch++) {
    for (const g of STREAM_GROUPS) b.i16(`SR${ch}_${g}`, opts.streamRates[g] ?? DEFAULT_STREAM_RATES[g]);
  }

  b.floats('WPNAV_', { SPEED: 1000, RADIUS: 200, SPEED_UP: 250, SPEED_DN: 150, ACCEL: 250, ACCEL_Z: 100, JERK: 1, TER_MARGIN: 10 });
  b.i8('WPNAV_RFND_USE', 1);
  b.floats('LOIT_', { SPEED: 1250, ACC_MAX: 500, BRK_ACCEL: 250, BRK_JERK: 500, BRK_DELAY: 1, ANG_MAX: 0 });
  b.f('CIRCLE_RADIUS', 1000);
  b.f('CIRCLE_RATE', 20);
  b.i16('CIRCLE_OPTIONS', 1);

  b.floats('ATC_', {
    ANG_RLL_P: 4.5, ANG_PIT_P: 4.5, ANG_YAW_P: 4.5, ACCEL_R_MAX: 110000, ACCEL_P_MAX: 110000, ACCEL_Y_MAX: 27000,
    ANG_LIM_TC: 1, INPUT_TC: 0.15, THR_MIX_MIN: 0.1, THR_MIX_MAX: 0.5, THR_MIX_MAN: 0.1, RATE_R_MAX: 0, RATE_P_MAX: 0,
    RATE_Y_MAX: 0, SLEW_YAW: 6000, THR_G_BOOST: 0,
  });
  b.i8('ATC_RATE_FF_ENAB', 1);
  b.i8('ATC_ANGLE_BOOST', 1);
  const rate = { P: 0.135, I: 0.135, D: 0.0036, IMAX: 0.5, FF: 0, FLTT: 20, FLTE: 0, FLTD: 20, SMAX: 0, PDMX: 0, D_FF: 0 };
  b.floats('ATC_RAT_RLL_', rate);
  b.floats('ATC_RAT_PIT_', rate);
  b.floats('ATC_RAT_YAW_', { ...rate, P: 0.18, I: 0.018, D: 0, FLTE: 2.5, FLTD: 0 });
  for (const axis of ['RLL', 'PIT', 'YAW']) {
    b.i8(`ATC_RAT_${axis}_NTF`, 0);
    b.i8(`ATC_RAT_${axis}_NEF`, 0);
  }

  b.floats('PSC_', {
    POSZ_P: 1, VELZ_P: 5, VELZ_I: 0, VELZ_IMAX: 1000, VELZ_D: 0, VELZ_FF: 0, VELZ_FLTE: 5, VELZ_FLTD: 5,
    ACCZ_P: 0.5, ACCZ_I: 1, ACCZ_D: 0, ACCZ_IMAX: 800, ACCZ_FF: 0, ACCZ_FLTT: 0, ACCZ_FLTE: 20, ACCZ_FLTD: 0,
    ACCZ_SMAX: 0, ACCZ_PDMX: 0, ACCZ_D_FF: 0, POSXY_P: 1, VELXY_P: 2, VELXY_I: 1, VELXY_D: 0.5, VELXY_IMAX: 1000,
    VELXY_FF: 0, VELXY_FLTE: 5, VELXY_FLTD: 5, ANGLE_MAX: 0, JERK_XY: 5, JERK_Z: 5,
  });
  b.i8('PSC_ACCZ_NTF', 0);
  b.i8('PSC_ACCZ_NEF', 0);

  for (const p of ['INS_GYROFFS_', 'INS_ACCOFFS_', 'INS_GYR2OFFS_', 'INS_ACC2OFFS_', 'INS_GYR3OFFS_', 'INS_ACC3OFFS_']) b.xyz(p);
  for (const p of ['INS_ACCSCAL_', 'INS_ACC2SCAL_', 'INS_ACC3SCAL_']) b.xyz(p, 1);
  for (const p of ['INS_POS1_', 'INS_POS2_', 'INS_POS3_']) b.xyz(p);
  b.i16('INS_GYRO_FILTER', 20);
  b.i16('INS_ACCEL_FILTER', 20);
  b.i8('INS_USE', 1);
  b.i8('INS_USE2', 1);
  b.i8('INS_USE3', 0);
  b.f('INS_STILL_THRESH', 2.5);
  b.i8('INS_GYR_CAL', 1);
  b.i8('INS_TRIM_OPTION', 1);
  b.i8('INS_ACC_BODYFIX', 2);
  b.i8('INS_FAST_SAMPLE', 1);
  b.i8('INS_ENABLE_MASK', 127);
  b.i8('INS_GYRO_RATE', 0);
  b.i32('INS_ACC_ID', 2753028);
  b.i32('INS_ACC2_ID', 2753036);
  b.i32('INS_ACC3_ID', 0);
  b.i32('INS_GYR_ID', 2752772);
  b.i32('INS_GYR2_ID', 2752780);
  b.i32('INS_GYR3_ID', 0);
  b.f('INS_ACC1_CALTEMP', -300);
  b.f('INS_GYR1_CALTEMP', -300);
  b.i8('INS_HNTCH_ENABLE', 0);
  b.floats('INS_HNTCH_', { FREQ: 80, BW: 40, ATT: 40, REF: 0, FM_RAT: 1 });
  b.i8('INS_HNTCH_MODE', 1);
  b.i16('INS_HNTCH_OPTS', 0);
  b.i8('INS_LOG_BAT_CNT', 1);
  b.i8('INS_LOG_BAT_MASK', 0);
  b.i8('INS_LOG_BAT_OPT', 0);
  b.i16('INS_LOG_BAT_LGIN', 20);
  b.i16('INS_LOG_BAT_LGCT', 32);

  for (const suffix of ['', '2', '3']) {
    b.xyz(`COMPASS_OFS${suffix}_`);
    b.xyz(`COMPASS_MOT${suffix}_`);
    b.xyz(`COMPASS_DIA${suffix}_`, 1);
    b.xyz(`COMPASS_ODI${suffix}_`);
    b.f(`COMPASS_SCALE${suffix}`, 0);
  }
  b.f('COMPASS_DEC', 0);
  b.i8('COMPASS_LEARN', 0);
  b.i8('COMPASS_USE', 1);
  b.i8('COMPASS_USE2', 1);
  b.i8('COMPASS_USE3', 1);
  b.i8('COMPASS_AUTODEC', 1);
  b.i8('COMPASS_MOTCT', 0);
  b.i8('COMPASS_ORIENT', 0);
  b.i8('COMPASS_ORIENT2', 0);
  b.i8('COMPASS_ORIENT3', 0);
  b.i8('COMPASS_EXTERNAL', 1);
  b.i8('COMPASS_EXTERN2', 0);
  b.i8('COMPASS_EXTERN3', 0);
  b.i32('COMPASS_DEV_ID', 97539);
  b.i32('COMPASS_DEV_ID2', 131874);
  b.i32('COMPASS_DEV_ID3', 0);
  b.i32('COMPASS_PRIO1_ID', 97539);
  b.i32('COMPASS_PRIO2_ID', 131874);
  b.i32('COMPASS_PRIO3_ID', 0);
  b.i8('COMPASS_ENABLE', 1);
  b.i16('COMPASS_OFFS_MAX', 1800);
  b.i32('COMPASS_TYPEMASK', 0);
  b.i8('COMPASS_FLTR_RNG', 0);
  b.i8('COMPASS_AUTO_ROT', 2);
  b.i16('COMPASS_OPTIONS', 0);
  b.f('COMPASS_CAL_FIT', 16);

  b.i8('EK3_ENABLE', 1);
  b.floats('EK3_', {
    VELNE_M_NSE: 0.3, VELD_M_NSE: 0.5, POSNE_M_NSE: 0.5, GLITCH_RAD: 25, ALT_M_NSE: 2, MAG_M_NSE: 0.05,
    EAS_M_NSE: 1.4, RNG_M_NSE: 0.5, MAX_FLOW: 2.5, FLOW_M_NSE: 0.25, GYRO_P_NSE: 0.015, ACC_P_NSE: 0.35,
    GBIAS_P_NSE: 0.001, ABIAS_P_NSE: 0.003, WIND_P_NSE: 0.2, WIND_PSCALE: 1, NOAID_M_NSE: 10, YAW_M_NSE: 0.5,
    MAGE_P_NSE: 0.001, MAGB_P_NSE: 0.0001, TERR_GRAD: 0.1, BCN_M_NSE: 1, ACC_BIAS_LIM: 1, VIS_VERR_MIN: 0.1,
    VIS_VERR_MAX: 0.9, WENC_VERR: 0.1, HRT_FILT: 2, ERR_THRESH: 0.2, AFFINITY: 0, DRAG_BCOEF_X: 0, DRAG_BCOEF_Y: 0,
    DRAG_M_NSE: 0.5, DRAG_MCOEF: 0, OGNM_TEST_SF: 2, GND_EFF_DZ: 4, GPS_VACC_MAX: 0, MAG_EF_LIM: 50, FLOW_USE: 1,
  });
  for (const [k, v] of Object.entries({
    VEL_I_GATE: 500, POS_I_GATE: 500, HGT_I_GATE: 500, HGT_DELAY: 60, MAG_I_GATE: 300, EAS_I_GATE: 400,
    RNG_I_GATE: 500, FLOW_I_GATE: 300, FLOW_DELAY: 10, CHECK_SCALE: 100, YAW_I_GATE: 300, TAU_OUTPUT: 25,
    BCN_I_GTE: 500, BCN_DELAY: 50, OPTIONS: 0,
  })) b.i16(`EK3_${k}`, v);
  for (const [k, v] of Object.entries({
    MAG_CAL: 3, GPS_CHECK: 31, IMU_MASK: 3, BETA_MASK: 0, RNG_USE_HGT: -1, RNG_USE_SPD: 2, MAG_MASK: 0,
    OGN_HGT_MASK: 0, GSF_RUN_MASK: 3, GSF_USE_MASK: 3, GSF_RST_MAX: 2, PRIMARY: 0, LOG_LEVEL: 0, SRC_OPTIONS: 1,
  })) b.i8(`EK3_${k}`, v);
  const sources = { POSXY: 3, VELXY: 3, POSZ: 1, VELZ: 3, YAW: 1 };
  for (const set of [1, 2, 3]) {
    for (const [k, v] of Object.entries(sources)) b.i8(`EK3_SRC${set}_${k}`, set === 1 ? v : 0);
  }

  for (const [k, v] of Object.entries({
    SER1_RTSCTS: 2, SER2_RTSCTS: 2, SAFETY_DEFLT: 1, SBUS_OUT: 0, SAFETY_MASK: 0, IMU_TARGTEMP: -1, TYPE: 0,
    IO_ENABLE: 1, SAFETYOPTION: 3, SD_SLOWDOWN: 0, PWM_VOLT_SEL: 0, BOOT_DELAY: 0, HEAT_TARG: -1, ALT_CONFIG: 0,
    RTC_TYPES: 1, RTC_TZ_MIN: 0, HEAT_LOWMGN: 0,
  })) b.i8(`BRD_${k}`, v);
  b.i32('BRD_SERIAL_NUM', 0);
  b.i32('BRD_OPTIONS', 1);
  b.f('BRD_VBUS_MIN', 4.3);
  b.f('BRD_VSERVO_MIN', 0);
  b.f('BRD_HEAT_P', 200);
  b.f('BRD_HEAT_I', 0.3);
  b.f('BRD_HEAT_IMAX', 70);

  for (const [k, v] of Object.entries({ BACKEND_TYPE: 1, DISARMED: 0, REPLAY: 0, FILE_DSRMROT: 0, MAV_BUFSIZE: 8, FILE_TIMEOUT: 5 })) b.i8(`LOG_${k}`, v);
  b.i16('LOG_FILE_BUFSIZE', 200);
  b.i16('LOG_FILE_MB_FREE', 500);
  b.i16('LOG_MAX_FILES', 500);
  b.floats('LOG_', { FILE_RATEMAX: 0, MAV_RATEMAX: 0, BLK_RATEMAX: 0, DARM_RATEMAX: 0 });

  b.floats('MOT_', {
    SPIN_ARM: 0.1, SPIN_MIN: 0.15, SPIN_MAX: 0.95, BAT_VOLT_MAX: 0, BAT_VOLT_MIN: 0, BAT_CURR_MAX: 0, THST_EXPO: 0.65,
    THST_HOVER: 0.35, SPOOL_TIME: 0.5, BOOST_SCALE: 0, BAT_CURR_TC: 5, SLEW_UP_TIME: 0, SLEW_DN_TIME: 0, SAFE_TIME: 1,
    SPOOL_TIM_DN: 0,
  });
  b.i8('MOT_PWM_TYPE', 0);
  b.i16('MOT_PWM_MIN', 1000);
  b.i16('MOT_PWM_MAX', 2000);
  b.i8('MOT_BAT_IDX', 0);
  b.i8('MOT_HOVER_LEARN', 2);
  b.i8('MOT_SAFE_DISARM', 0);
  b.i16('MOT_YAW_HEADROOM', 200);
  b.i16('MOT_OPTIONS', 0);

  for (let i = 1; i <= 16; i++) {
    b.i16(`RC${i}_MIN`, 1100);
    b.i16(`RC${i}_TRIM`, i === 3 ? 1100 : 1500);
    b.i16(`RC${i}_MAX`, 1900);
    b.i8(`RC${i}_REVERSED`, 0);
    b.i16(`RC${i}_DZ`, i <= 4 ? (i === 3 ? 30 : 20) : 0);
    b.i16(`RC${i}_OPTION`, 0);
  }
  b.f('RC_OVERRIDE_TIME', 3);
  b.i32('RC_OPTIONS', 32);
  b.i32('RC_PROTOCOLS', 1);
  b.f('RC_FS_TIMEOUT', 1);

  for (let i = 1; i <= 16; i++) {
    b.i16(`SERVO${i}_MIN`, 1100);
    b.i16(`SERVO${i}_MAX`, 1900);
    b.i16(`SERVO${i}_TRIM`, 1500);
    b.i8(`SERVO${i}_REVERSED`, 0);
    b.i16(`SERVO${i}_FUNCTION`, i <= 4 ? 32 + i : 0);
  }
  b.i16('SERVO_RATE', 50);
  b.i8('SERVO_DSHOT_RATE', 0);
  b.i8('SERVO_DSHOT_ESC', 0);
  b.i32('SERVO_RC_FS_MSK', 0);
  b.i8('SERVO_32_ENABLE', 0);
  b.i32('SERVO_GPIO_MASK', 0);

  for (const [k, v] of Object.entries({
    TYPE: 1, TYPE2: 0, NAVFILTER: 8, AUTO_SWITCH: 1, MIN_DGPS: 100, SBAS_MODE: 2, MIN_ELEV: -100, INJECT_TO: 127,
    RAW_DATA: 0, GNSS_MODE: 0, SAVE_CFG: 2, GNSS_MODE2: 0, AUTO_CONFIG: 1, BLEND_MASK: 5, COM_PORT: 1, COM_PORT2: 1,
    PRIMARY: 0,
  })) b.i8(`GPS_${k}`, v);
  b.i32('GPS_SBP_LOGMASK', -256);
  b.i16('GPS_RATE_MS', 200);
  b.i16('GPS_RATE_MS2', 200);
  b.i16('GPS_DELAY_MS', 0);
  b.i16('GPS_DELAY_MS2', 0);
  b.i16('GPS_DRV_OPTIONS', 0);
  b.xyz('GPS_POS1_');
  b.xyz('GPS_POS2_');

  b.floats('AHRS_', { GPS_GAIN: 1, YAW_P: 0.2, RP_P: 0.2, COMP_BETA: 0.1 });
  b.i16('AHRS_WIND_MAX', 0);
  b.xyz('AHRS_TRIM_');
  b.i8('AHRS_GPS_USE', 1);
  b.i8('AHRS_ORIENTATION', 0);
  b.i8('AHRS_GPS_MINSATS', 6);
  b.i8('AHRS_EKF_TYPE', 3);
  b.i16('AHRS_OPTIONS', 0);

  b.i8('SCHED_DEBUG', 0);
  b.i16('SCHED_LOOP_RATE', 400);
  b.i8('SCHED_OPTIONS', 0);
  b.i8('AVD_ENABLE', 0);
  b.i8('PRX1_TYPE', 0);
  b.i8('RNGFND1_TYPE', 0);
  b.i8('FLOW_TYPE', 0);
  b.i8('MNT1_TYPE', 0);
  b.i8('CAM1_TYPE', 0);
  b.i8('TERRAIN_ENABLE', 1);
  b.i16('TERRAIN_SPACING', 100);
  b.i16('TERRAIN_OPTIONS', 0);
  b.i8('SCR_ENABLE', 0);
  b.i8('CAN_P1_DRIVER', 0);
  b.i8('CAN_P2_DRIVER', 0);
  b.i8('CAN_D1_PROTOCOL', 1);
  b.i8('CAN_D2_PROTOCOL', 1);
  b.i8('NTF_LED_TYPES', 123);
  b.i8('NTF_BUZZ_TYPES', 1);
  b.i8('NTF_LED_BRIGHT', 3);
  b.i8('NTF_LED_OVERRIDE', 0);
  b.i8('NTF_DISPLAY_TYPE', 0);
  b.i8('NTF_BUZZ_VOLUME', 100);
  b.i8('NTF_LED_LEN', 1);
  b.i8('RELAY1_FUNCTION', 0);
  b.i8('RELAY1_PIN', -1);
  b.i8('RSSI_TYPE', 0);
  b.i8('RCMAP_ROLL', 1);
  b.i8('RCMAP_PITCH', 2);
  b.i8('RCMAP_THROTTLE', 3);
  b.i8('RCMAP_YAW', 4);
  b.i8('BCN_TYPE', 0);
  b.i8('PRK_ENABLE', 0);
  b.i8('VISO_TYPE', 0);
  b.i8('OSD_TYPE', 0);
  b.i8('ADSB_TYPE', 0);
  b.i8('FOLL_ENABLE', 0);
  b.i8('SRTL_OPTIONS', 0);
  b.f('SRTL_ACCURACY', 2);
  b.i16('SRTL_POINTS', 300);
  b.i8('GRIP_ENABLE', 0);
  b.i8('WINCH_TYPE', 0);
  b.i8('ESC_TLM_MAV_OFS', 0);
  b.i8('TMODE_ENABLE', 0);
  b.i8('VTX_ENABLE', 0);
  b.i8('FRSKY_UPLINK_ID', 13);
  return b.defs;
}
