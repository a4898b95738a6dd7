import { common } from 'node-mavlink';
import { Codec, FrameWriter } from './codec.js';
import type { Frame } from './framer.js';

const COMMAND_LONG = 76;
const COMMAND_INT = 75;
export const MAV_RESULT_TEMPORARILY_REJECTED = 1;
export const MAV_RESULT_FAILED = 4;

/**
 * Answers a command on behalf of the component it was addressed to, when the relay itself must
 * fail it (too old to run, link down). Ground stations match a COMMAND_ACK by command id and the
 * addressed component, so the answer comes from that identity, with its own sequence numbers.
 */
export class CommandResponder {
  private readonly writers = new Map<number, FrameWriter>();

  constructor(private readonly codec: Codec) {}

  /** A COMMAND_ACK for a COMMAND_LONG/INT frame, or null for any other frame. */
  ackFor(frame: Frame, result: number): Buffer | null {
    if (frame.msgid !== COMMAND_LONG && frame.msgid !== COMMAND_INT) return null;
    const cmd = this.codec.decode<common.CommandLong | common.CommandInt>(frame);
    if (cmd === undefined) return null;
    const ack = new common.CommandAck();
    ack.command = cmd.command;
    ack.result = result as common.MavResult;
    ack.targetSystem = frame.sysid;
    ack.targetComponent = frame.compid;
    // A broadcast command (target 0) is answered as the autopilot (1/1), which is who runs it.
    const sysid = cmd.targetSystem === 0 ? 1 : cmd.targetSystem;
    const compid = cmd.targetComponent === 0 ? 1 : cmd.targetComponent;
    const key = (sysid << 8) | compid;
    let w = this.writers.get(key);
    if (w === undefined) {
      w = new FrameWriter(this.codec, sysid, compid);
      this.writers.set(key, w);
    }
    return w.encode(ack);
  }
}
