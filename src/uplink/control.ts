/**
 * Daemon-to-daemon control messages inside sealed envelopes (kind "control"). Small JSON, parsed
 * defensively: an authentic but malformed message is ignored, never thrown.
 */
export type ControlMessage =
  | { type: 'ping'; id: number; sentAtMs: number }
  | { type: 'pong'; id: number; sentAtMs: number }
  /** The gateway has every spooled record up to `upto` of spool `spoolId` durable in its tlog. */
  | { type: 'history-ack'; upto: number; spoolId: string };

export function encodeControl(msg: ControlMessage): Buffer {
  return Buffer.from(JSON.stringify(msg));
}

export function decodeControl(body: Buffer): ControlMessage | null {
  try {
    const v = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    if ((v['type'] === 'ping' || v['type'] === 'pong') && typeof v['id'] === 'number' && typeof v['sentAtMs'] === 'number') {
      return { type: v['type'], id: v['id'], sentAtMs: v['sentAtMs'] };
    }
    if (v['type'] === 'history-ack' && Number.isSafeInteger(v['upto']) && typeof v['spoolId'] === 'string') {
      return { type: 'history-ack', upto: v['upto'] as number, spoolId: v['spoolId'] };
    }
  } catch {
    // fall through
  }
  return null;
}
