/**
 * Default budget classes by message name (budget.ts). Everything not listed is bulk: periodic
 * telemetry, where the latest value replaces older ones.
 *
 *  critical: never dropped, coalesced or rate-capped. The link-alive signal, command and mission
 *            protocol answers, and STATUSTEXT (the pilot's only text channel).
 *  normal:   every instance matters (coalescing by msgid would merge different parameters, log
 *            chunks, files, camera events), so FIFO and delayed when over budget, never coalesced.
 *
 * MISSION_CURRENT is deliberately bulk: ArduPilot and PX4 stream it periodically (latest value is
 * all that matters). PARAM_VALUE, AUTOPILOT_VERSION & co. become critical while requested
 * (LinkBudget.markRequested / noteDownlink).
 */
export const DEFAULT_CLASS_BY_NAME: Readonly<Record<string, 0 | 1 | 2>> = {
  // critical (0)
  HEARTBEAT: 0,
  COMMAND_ACK: 0,
  COMMAND_LONG: 0,
  COMMAND_INT: 0,
  STATUSTEXT: 0,
  TIMESYNC: 0,
  MISSION_ITEM: 0,
  MISSION_REQUEST: 0,
  MISSION_SET_CURRENT: 0,
  MISSION_REQUEST_LIST: 0,
  MISSION_COUNT: 0,
  MISSION_CLEAR_ALL: 0,
  MISSION_ITEM_REACHED: 0,
  MISSION_ACK: 0,
  MISSION_REQUEST_INT: 0,
  MISSION_ITEM_INT: 0,
  MISSION_REQUEST_PARTIAL_LIST: 0,
  MISSION_WRITE_PARTIAL_LIST: 0,
  // normal (1)
  PARAM_VALUE: 1,
  PARAM_EXT_VALUE: 1,
  PARAM_EXT_ACK: 1,
  FILE_TRANSFER_PROTOCOL: 1,
  LOG_ENTRY: 1,
  LOG_DATA: 1,
  SERIAL_CONTROL: 1,
  AUTOPILOT_VERSION: 1,
  HOME_POSITION: 1,
  GPS_GLOBAL_ORIGIN: 1,
  CAMERA_FEEDBACK: 1,
  CAMERA_IMAGE_CAPTURED: 1,
  CAMERA_INFORMATION: 1,
  CAMERA_SETTINGS: 1,
  STORAGE_INFORMATION: 1,
  CAMERA_CAPTURE_STATUS: 1,
  FLIGHT_INFORMATION: 1,
  VIDEO_STREAM_INFORMATION: 1,
  GIMBAL_MANAGER_INFORMATION: 1,
  GIMBAL_DEVICE_INFORMATION: 1,
  COMPONENT_INFORMATION: 1,
  MAG_CAL_REPORT: 1,
  ENCAPSULATED_DATA: 1,
  DATA_TRANSMISSION_HANDSHAKE: 1,
  FENCE_POINT: 1,
  RALLY_POINT: 1,
  AVAILABLE_MODES: 1,
};

/**
 * Multiplexed bulk messages: one msgid carries several instances (batteries, rangefinders, ADS-B
 * aircraft, named values), so the coalescing/rate key includes this payload field. Without it,
 * coalescing would keep only the last battery and drop the others forever.
 */
export const INSTANCE_FIELDS: Readonly<Record<string, string>> = {
  BATTERY_STATUS: 'id',
  DISTANCE_SENSOR: 'id',
  RAW_IMU: 'id',
  ADSB_VEHICLE: 'ICAO_address',
  NAMED_VALUE_FLOAT: 'name',
  NAMED_VALUE_INT: 'name',
  DEBUG_VECT: 'name',
  SERVO_OUTPUT_RAW: 'port',
  RC_CHANNELS_RAW: 'port',
  GIMBAL_DEVICE_ATTITUDE_STATUS: 'gimbal_device_id',
  MAG_CAL_PROGRESS: 'compass_id',
};
