/**
 * Traffic classes of the uplink. Reliable frames (answers a ground station waits for) travel at
 * QoS 1; the rest is telemetry at QoS 0, where a newer sample replaces a lost one. Latency-critical
 * frames flush their batch at once instead of waiting for the batching window.
 */
const RELIABLE = new Set<number>([
  22, // PARAM_VALUE
  39, // MISSION_ITEM
  40, // MISSION_REQUEST
  44, // MISSION_COUNT
  46, // MISSION_ITEM_REACHED
  47, // MISSION_ACK
  51, // MISSION_REQUEST_INT
  73, // MISSION_ITEM_INT
  77, // COMMAND_ACK
  110, // FILE_TRANSFER_PROTOCOL
  111, // TIMESYNC
  148, // AUTOPILOT_VERSION
  242, // HOME_POSITION
  253, // STATUSTEXT
  322, // PARAM_EXT_VALUE
  324, // PARAM_EXT_ACK
]);

// Not HEARTBEAT: a 1 Hz link-alive signal gains nothing from skipping the batching window (GCS
// link-loss timeouts are seconds), and every component's heartbeat would cost an envelope.
const LATENCY_CRITICAL = new Set<number>([
  77, // COMMAND_ACK
  47, // MISSION_ACK
  40, // MISSION_REQUEST
  51, // MISSION_REQUEST_INT
  111, // TIMESYNC: its whole point is latency
]);

export function isReliable(msgid: number): boolean {
  return RELIABLE.has(msgid);
}

export function isLatencyCritical(msgid: number): boolean {
  return LATENCY_CRITICAL.has(msgid);
}

/**
 * What the link budget sends ahead of other critical traffic: the latency-critical frames and
 * HEARTBEAT (it need not flush a batch, but a GCS declares the link lost after a few seconds without
 * one, so it must never queue behind a parameter download on a slow link).
 */
export function isUrgent(msgid: number): boolean {
  return msgid === 0 || LATENCY_CRITICAL.has(msgid);
}
