import type { MavLinkData } from 'node-mavlink';
import { common, minimal } from 'node-mavlink';
import { Codec, FrameWriter } from '../../src/mavlink/codec.js';
import { Framer, type Frame } from '../../src/mavlink/framer.js';
import { resolveSimOptions, SimCore, simDialect, type SimCoreDeps, type SimOptionsInput } from '../../src/sim/index.js';

export interface Rx {
  /** Virtual real-time ms at which the frame arrived. */
  t: number;
  frame: Frame;
  msg: MavLinkData | undefined;
  name: string;
}

/** Refuse to grow without bound if a test goes wrong. */
const MAX_RX = 500_000;

/**
 * A ground station in a test: talks to a SimCore through frames only, on a virtual clock
 * (advance() ticks the core; nothing waits on real time).
 */
export class FakeGcs {
  readonly core: SimCore;
  readonly dialect = simDialect();
  readonly codec = new Codec(this.dialect);
  readonly framer = new Framer(this.dialect);
  readonly writer: FrameWriter;
  readonly rx: Rx[] = [];
  now = 10_000;

  constructor(opts: SimOptionsInput = {}, deps: SimCoreDeps = {}, readonly linkId = 'gcs', sysid = 255, compid = 190) {
    this.core = new SimCore(resolveSimOptions(opts), deps);
    this.writer = new FrameWriter(this.codec, sysid, compid);
    if (!this.core.attach(linkId, (b) => this.onBytes(b))) throw new Error('attach failed');
    this.core.tick(this.now);
  }

  onBytes(b: Buffer): void {
    this.framer.push(b, (frame) => {
      if (this.rx.length >= MAX_RX) throw new Error('FakeGcs: too many frames');
      this.rx.push({ t: this.now, frame, msg: this.codec.decode(frame), name: this.dialect.messageName(frame.msgid) });
    });
  }

  send(msg: MavLinkData, writer: FrameWriter = this.writer): void {
    this.core.receive(this.linkId, writer.encode(msg));
  }

  advance(ms: number, step = 10): void {
    const end = this.now + ms;
    while (this.now < end) {
      this.now = Math.min(end, this.now + step);
      this.core.tick(this.now);
    }
  }

  get mark(): number {
    return this.rx.length;
  }

  all<T extends MavLinkData = MavLinkData>(name: string, since = 0): T[] {
    return this.rx.slice(since).filter((r) => r.name === name).map((r) => r.msg as T);
  }

  /** First message `name` at or after index `since` matching pred, advancing time up to timeoutMs. */
  waitFor<T extends MavLinkData = MavLinkData>(name: string, pred: (m: T) => boolean = () => true, timeoutMs = 10_000, since = this.mark): T {
    const deadline = this.now + timeoutMs;
    let i = since;
    for (;;) {
      for (; i < this.rx.length; i++) {
        const r = this.rx[i]!;
        if (r.name === name && r.msg !== undefined && pred(r.msg as T)) return r.msg as T;
      }
      if (this.now >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${name}`);
      this.advance(10);
    }
  }

  /** Sends COMMAND_LONG and returns its COMMAND_ACK result. */
  command(command: number, params: number[] = [], target = 1): common.MavResult {
    const m = new common.CommandLong();
    m.targetSystem = target;
    m.targetComponent = 1;
    m.command = command as common.MavCmd;
    const p = [...params, 0, 0, 0, 0, 0, 0, 0];
    [m._param1, m._param2, m._param3, m._param4, m._param5, m._param6, m._param7] = p as [number, number, number, number, number, number, number];
    const since = this.mark;
    this.send(m);
    return this.waitFor<common.CommandAck>('COMMAND_ACK', (a) => a.command === (command as common.MavCmd), 2000, since).result;
  }

  setMode(mode: number): common.MavResult {
    return this.command(common.MavCmd.DO_SET_MODE, [minimal.MavModeFlag.CUSTOM_MODE_ENABLED, mode]);
  }

  arm(force = false): common.MavResult {
    return this.command(common.MavCmd.COMPONENT_ARM_DISARM, [1, force ? 21196 : 0]);
  }

  lastHeartbeat(): minimal.Heartbeat {
    const hb = this.all<minimal.Heartbeat>('HEARTBEAT').at(-1);
    if (hb === undefined) throw new Error('no heartbeat yet');
    return hb;
  }

  /** The next HEARTBEAT from now (reflects state changes made so far). */
  nextHeartbeat(): minimal.Heartbeat {
    return this.waitFor<minimal.Heartbeat>('HEARTBEAT', () => true, 1500);
  }

  lastPosition(): common.GlobalPositionInt {
    const p = this.all<common.GlobalPositionInt>('GLOBAL_POSITION_INT').at(-1);
    if (p === undefined) throw new Error('no position yet');
    return p;
  }
}
