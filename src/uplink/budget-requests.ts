import { payloadByte, type Frame } from '../mavlink/framer.js';

/**
 * Which uplink msgids a frame from the ground asks for, so the budget can treat the answers as
 * critical for a while (LinkBudget.noteDownlink). Pure; reads a few payload bytes, never throws.
 */
const PARAM_VALUE = 22;
const PARAM_EXT_VALUE = 322;
const PARAM_EXT_ACK = 324;

const BY_REQUEST: ReadonlyMap<number, readonly number[]> = new Map<number, readonly number[]>([
  [20, [PARAM_VALUE]], // PARAM_REQUEST_READ
  [21, [PARAM_VALUE]], // PARAM_REQUEST_LIST
  [23, [PARAM_VALUE]], // PARAM_SET (answered by PARAM_VALUE)
  [320, [PARAM_EXT_VALUE]], // PARAM_EXT_REQUEST_READ
  [321, [PARAM_EXT_VALUE]], // PARAM_EXT_REQUEST_LIST
  [323, [PARAM_EXT_ACK, PARAM_EXT_VALUE]], // PARAM_EXT_SET
  [117, [118]], // LOG_REQUEST_LIST -> LOG_ENTRY
  [119, [120]], // LOG_REQUEST_DATA -> LOG_DATA
  [110, [110]], // FILE_TRANSFER_PROTOCOL
  [126, [126]], // SERIAL_CONTROL
  [183, [148]], // AUTOPILOT_VERSION_REQUEST (ArduPilot) -> AUTOPILOT_VERSION
]);

/** MAV_CMD -> the message it makes the vehicle send. */
const BY_COMMAND: ReadonlyMap<number, number> = new Map([
  [410, 242], // MAV_CMD_GET_HOME_POSITION -> HOME_POSITION
  [510, 244], // MAV_CMD_GET_MESSAGE_INTERVAL -> MESSAGE_INTERVAL
  [520, 148], // MAV_CMD_REQUEST_AUTOPILOT_CAPABILITIES -> AUTOPILOT_VERSION
  [521, 259], // MAV_CMD_REQUEST_CAMERA_INFORMATION
  [522, 260], // MAV_CMD_REQUEST_CAMERA_SETTINGS
  [525, 261], // MAV_CMD_REQUEST_STORAGE_INFORMATION
  [527, 262], // MAV_CMD_REQUEST_CAMERA_CAPTURE_STATUS
  [528, 264], // MAV_CMD_REQUEST_FLIGHT_INFORMATION
  [2504, 269], // MAV_CMD_REQUEST_VIDEO_STREAM_INFORMATION
]);
const MAV_CMD_REQUEST_MESSAGE = 512;
const COMMAND_INT = 75;
const COMMAND_LONG = 76;
/** COMMAND_LONG and COMMAND_INT both have param1 (float) at 0 and command (u16) at 28. */
const PARAM1_OFFSET = 0;
const COMMAND_OFFSET = 28;

const NONE: readonly number[] = Object.freeze([]);

export function requestedMsgids(frame: Frame): readonly number[] {
  const direct = BY_REQUEST.get(frame.msgid);
  if (direct !== undefined) return direct;
  if (frame.msgid !== COMMAND_LONG && frame.msgid !== COMMAND_INT) return NONE;
  const command = payloadByte(frame, COMMAND_OFFSET) | (payloadByte(frame, COMMAND_OFFSET + 1) << 8);
  if (command === MAV_CMD_REQUEST_MESSAGE) {
    const b = Buffer.of(payloadByte(frame, PARAM1_OFFSET), payloadByte(frame, PARAM1_OFFSET + 1), payloadByte(frame, PARAM1_OFFSET + 2), payloadByte(frame, PARAM1_OFFSET + 3));
    const id = b.readFloatLE(0);
    return Number.isInteger(id) && id >= 0 && id < 1 << 24 ? [id] : NONE;
  }
  const answer = BY_COMMAND.get(command);
  return answer === undefined ? NONE : [answer];
}
