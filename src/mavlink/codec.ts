import { MavLinkProtocolV2, type MavLinkData, type MavLinkDataConstructor } from 'node-mavlink';
import type { Dialect } from './dialect.js';
import { encodeFrame } from './encode.js';
import { paddedPayload, type Frame } from './framer.js';

/**
 * Typed decode/encode through node-mavlink's generated message classes, for the few consumers
 * that need fields (policy, sim, companion heartbeat). The routing path never comes here.
 */
export class Codec {
  // node-mavlink's protocol objects are only used for their (stateless) field (de)serializers.
  private readonly proto = new MavLinkProtocolV2(0, 0);
  constructor(readonly dialect: Dialect) {}

  decode<T extends MavLinkData = MavLinkData>(frame: Frame): T | undefined {
    const clazz = this.dialect.messageClass(frame.msgid);
    if (clazz === undefined || !frame.checked) return undefined;
    return this.proto.data(paddedPayload(frame, clazz.PAYLOAD_LENGTH), clazz) as T;
  }

  /** Serialize a message's fields into a full-length payload. */
  payloadOf(msg: MavLinkData): Buffer {
    const clazz = msg.constructor as MavLinkDataConstructor<MavLinkData>;
    // serialize() writes header + payload; take the payload back out of the (untruncated) buffer.
    const full = this.proto.serialize(msg, 0);
    const len = full[1] as number;
    const payload = Buffer.alloc(clazz.PAYLOAD_LENGTH);
    full.copy(payload, 0, 10, 10 + len);
    return payload;
  }
}

/**
 * A sender identity with its OWN sequence counter (node-mavlink keeps a module-level one shared by
 * every link, which breaks per-sender loss accounting).
 */
export class FrameWriter {
  private seq = 0;
  constructor(
    private readonly codec: Codec,
    readonly sysid: number,
    readonly compid: number,
    readonly version: 1 | 2 = 2,
  ) {}

  encode(msg: MavLinkData): Buffer {
    const clazz = msg.constructor as MavLinkDataConstructor<MavLinkData>;
    const frame = encodeFrame(
      this.codec.dialect,
      { version: this.version, seq: this.seq, sysid: this.sysid, compid: this.compid, msgid: clazz.MSG_ID },
      this.version === 1 ? this.codec.payloadOf(msg).subarray(0, v1Length(clazz)) : this.codec.payloadOf(msg),
    );
    this.seq = (this.seq + 1) & 0xff;
    return frame;
  }
}

function v1Length(clazz: MavLinkDataConstructor<MavLinkData>): number {
  let n = 0;
  for (const f of clazz.FIELDS) if (!f.extension) n += f.length === 0 ? f.size : f.length * f.size;
  return n;
}
