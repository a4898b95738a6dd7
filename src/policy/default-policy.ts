import type { PolicyInput } from './schema.js';

/**
 * The built-in policy, used when no policy file is given. config/policy.yaml is the same policy
 * with comments, the file technicians copy and edit; a test keeps the two equal.
 */
export const DEFAULT_POLICY: PolicyInput = {
  version: 1,
  dryRun: false,
  messages: {
    allow: [
      'HEARTBEAT',
      'PARAM_REQUEST_LIST', 'PARAM_REQUEST_READ', 'PARAM_SET',
      'MISSION_COUNT', 'MISSION_ITEM', 'MISSION_ITEM_INT', 'MISSION_REQUEST', 'MISSION_REQUEST_INT',
      'MISSION_REQUEST_LIST', 'MISSION_REQUEST_PARTIAL_LIST', 'MISSION_WRITE_PARTIAL_LIST',
      'MISSION_ACK', 'MISSION_CLEAR_ALL', 'MISSION_SET_CURRENT',
      'COMMAND_LONG', 'COMMAND_INT', 'COMMAND_ACK',
      'SET_MODE', 'REQUEST_DATA_STREAM',
      'SET_POSITION_TARGET_GLOBAL_INT', 'SET_POSITION_TARGET_LOCAL_NED',
      'MANUAL_CONTROL', 'RC_CHANNELS_OVERRIDE',
      'TIMESYNC', 'SYSTEM_TIME', 'PING',
      'LOG_REQUEST_LIST', 'LOG_REQUEST_DATA', 'LOG_REQUEST_END',
      'FILE_TRANSFER_PROTOCOL',
    ],
    deny: ['SERIAL_CONTROL', 'SETUP_SIGNING', 'LOG_ERASE'],
  },
  commands: {
    default: 'allow',
    rateLimit: {
      perSecond: 5,
      burst: 10,
      perCommand: {
        REQUEST_MESSAGE: { perSecond: 10, burst: 40 },
        SET_MESSAGE_INTERVAL: { perSecond: 10, burst: 40 },
      },
    },
  },
  streamRates: { maxHz: 10, action: 'clamp' },
  fileTransfer: {
    allowOpcodes: ['TerminateSession', 'ResetSessions', 'ListDirectory', 'OpenFileRO', 'ReadFile', 'CalcFileCRC32', 'BurstReadFile'],
  },
  state: { staleAfterMs: 5000 },
  replies: { answerAs: 'target', statustext: true, statustextMinIntervalMs: 1000 },
  rules: [
    { name: 'reboot-while-armed', command: 'PREFLIGHT_REBOOT_SHUTDOWN', when: { armed: true }, action: 'deny', reason: 'reboot while armed' },
    { name: 'termination-while-armed', command: 'DO_FLIGHTTERMINATION', when: { armed: true }, action: 'deny', reason: 'flight termination while armed' },
    { name: 'force-disarm-in-air', command: 'COMPONENT_ARM_DISARM', params: { param1: 0, param2: 21196 }, when: { inAir: true }, action: 'deny', reason: 'forced disarm in the air' },
    { name: 'force-arm', command: 'COMPONENT_ARM_DISARM', params: { param1: 1, param2: [2989, 21196] }, action: 'confirm', confirmWithinS: 5, reason: 'force arm' },
    { name: 'set-parameter-by-number', command: 'DO_SET_PARAMETER', action: 'deny', reason: 'DO_SET_PARAMETER: use PARAM_SET' },
    { name: 'storage-while-armed', command: 'PREFLIGHT_STORAGE', when: { armed: true }, action: 'deny', reason: 'parameter storage while armed' },
    {
      name: 'protected-params-while-armed', message: 'PARAM_SET', param: ['ARMING_*', 'FS_*', 'FENCE_*', 'SYSID_*', 'SERIAL*', 'BRD_*'],
      when: { armed: true }, action: 'deny', reason: 'protected parameter while armed',
    },
  ],
};
