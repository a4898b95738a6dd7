import { common, type MavLinkData } from 'node-mavlink';
import { MISSION_TYPE } from './mav.js';

const MT = MISSION_TYPE;
const MR = common.MavMissionResult;

/** One stored mission item, in MISSION_ITEM_INT form (x/y are degE7 for global frames). */
export interface MissionItem {
  seq: number;
  frame: number;
  command: number;
  current: number;
  autocontinue: number;
  param1: number;
  param2: number;
  param3: number;
  param4: number;
  x: number;
  y: number;
  z: number;
  missionType: number;
}

/** Frames whose x/y are latitude/longitude. */
export function isGlobalFrame(frame: number): boolean {
  return frame === 0 || frame === 3 || frame === 5 || frame === 6 || frame === 10 || frame === 11;
}

/** Items per mission type (0 mission, 1 fence, 2 rally). Bounded by maxItems. */
export class MissionStore {
  private readonly lists = new Map<number, MissionItem[]>([[MT.MISSION, []], [MT.FENCE, []], [MT.RALLY, []]]);
  /** Bumped on every change of a list, so the executor knows to re-read. */
  private readonly versions = new Map<number, number>([[MT.MISSION, 0], [MT.FENCE, 0], [MT.RALLY, 0]]);

  constructor(readonly maxItems: number) {}

  static isKnownType(t: number): boolean {
    return t === MT.MISSION || t === MT.FENCE || t === MT.RALLY;
  }

  items(type: number): readonly MissionItem[] {
    return this.lists.get(type) ?? [];
  }

  version(type: number): number {
    return this.versions.get(type) ?? 0;
  }

  replace(type: number, items: MissionItem[]): void {
    this.lists.set(type, items.map((it, i) => ({ ...it, seq: i, missionType: type })));
    this.versions.set(type, this.version(type) + 1);
  }

  clear(type: number): void {
    this.replace(type, []);
  }
}

/** Who is talking: replies are addressed back to them and go out on their link. */
export interface Peer {
  channelId: string;
  sysid: number;
  compid: number;
}

export interface MissionIo {
  send(channelId: string, msg: MavLinkData): void;
  text(severity: common.MavSeverity, text: string): void;
  /** The current home as item 0 of the mission (ArduPilot reports home there), or undefined. */
  homeItem(): MissionItem | undefined;
  changed(type: number): void;
}

interface Upload {
  peer: Peer;
  type: number;
  count: number;
  items: MissionItem[];
  lastRequestMs: number;
  retries: number;
}

/** Commands a copter mission may hold; anything else is refused as MAV_MISSION_UNSUPPORTED. */
const MISSION_COMMANDS = new Set([
  16, 17, 18, 19, 20, 21, 22, 30, 31, 82, 83, 92, 93, 94, 112, 113, 114, 115, 177, 178, 179, 181, 182, 183, 184, 189,
  191, 194, 195, 196, 197, 200, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215, 216, 217,
  218, 219, 220, 221, 222, 223, 224, 530, 1000, 2000, 2001, 2003, 2004, 2500, 2501, 3000, 42006, 42600, 42702, 42703,
]);
const FENCE_COMMANDS = new Set([5000, 5001, 5002, 5003, 5004]);
const RALLY_COMMANDS = new Set([5100]);
const SUPPORTED_FRAMES = new Set([0, 2, 3, 5, 6, 10, 11]);

/**
 * The vehicle side of the MAVLink mission protocol for all three mission types. Uploads are one at
 * a time (another GCS gets MAV_MISSION_DENIED), re-requested on a real-time timeout and abandoned
 * after a few retries; downloads are stateless (any request for a valid seq is answered).
 */
export class MissionProtocol {
  private upload: Upload | null = null;

  constructor(
    private readonly store: MissionStore,
    private readonly io: MissionIo,
    private readonly opts: { retryMs: number; maxRetries: number },
  ) {}

  get uploading(): boolean {
    return this.upload !== null;
  }

  handleCount(peer: Peer, msg: common.MissionCount, nowMs: number): void {
    const type = msg.missionType;
    if (!MissionStore.isKnownType(type)) return this.ack(peer, type, MR.UNSUPPORTED);
    if (this.upload !== null && !samePeer(this.upload.peer, peer)) return this.ack(peer, type, MR.DENIED);
    this.upload = null;
    if (msg.count === 0) {
      this.store.clear(type);
      this.io.changed(type);
      return this.ack(peer, type, MR.ACCEPTED);
    }
    if (msg.count > this.store.maxItems) return this.ack(peer, type, MR.NO_SPACE);
    this.upload = { peer, type, count: msg.count, items: [], lastRequestMs: nowMs, retries: 0 };
    this.request(this.upload, nowMs);
  }

  /** MISSION_ITEM_INT, or a legacy MISSION_ITEM already converted to int form. */
  handleItem(peer: Peer, item: MissionItem, nowMs: number): void {
    const up = this.upload;
    if (up === null || !samePeer(up.peer, peer) || item.missionType !== up.type) return;
    const expected = up.items.length;
    if (item.seq !== expected) {
      // A duplicate (our re-request crossed their answer) or a skip: ask again for the one we need.
      if (item.seq > expected) this.request(up, nowMs);
      return;
    }
    const problem = this.validate(item);
    if (problem !== MR.ACCEPTED) {
      this.upload = null;
      return this.ack(peer, up.type, problem);
    }
    up.items.push({ ...item });
    up.retries = 0;
    if (up.items.length < up.count) return this.request(up, nowMs);
    this.upload = null;
    this.store.replace(up.type, up.items);
    this.io.changed(up.type);
    this.ack(peer, up.type, MR.ACCEPTED);
  }

  handleRequestList(peer: Peer, type: number): void {
    if (!MissionStore.isKnownType(type)) return this.ack(peer, type, MR.UNSUPPORTED);
    const count = new common.MissionCount();
    count.targetSystem = peer.sysid;
    count.targetComponent = peer.compid;
    count.count = this.store.items(type).length;
    count.missionType = type;
    this.io.send(peer.channelId, count);
  }

  /** MISSION_REQUEST_INT (asInt) or legacy MISSION_REQUEST from a downloading GCS. */
  handleRequest(peer: Peer, seq: number, type: number, asInt: boolean): void {
    const items = this.store.items(type);
    let item = items[seq];
    if (item === undefined) return this.ack(peer, type, MR.INVALID_SEQUENCE);
    if (type === MT.MISSION && seq === 0) item = { ...(this.io.homeItem() ?? item), seq: 0, missionType: type };
    this.io.send(peer.channelId, asInt ? toItemInt(item, peer) : toItemFloat(item, peer));
  }

  handleClearAll(peer: Peer, type: number): void {
    if (this.upload !== null) return this.ack(peer, type, MR.DENIED);
    if (type === MT.ALL) {
      for (const t of [MT.MISSION, MT.FENCE, MT.RALLY]) {
        this.store.clear(t);
        this.io.changed(t);
      }
    } else if (MissionStore.isKnownType(type)) {
      this.store.clear(type);
      this.io.changed(type);
    } else {
      return this.ack(peer, type, MR.UNSUPPORTED);
    }
    this.ack(peer, type, MR.ACCEPTED);
  }

  /** A MISSION_ACK from the uploading GCS cancels its upload. */
  handleAck(peer: Peer, type: number): void {
    if (this.upload !== null && samePeer(this.upload.peer, peer) && this.upload.type === type) this.upload = null;
  }

  /** Drives re-requests and the upload timeout (real time). */
  tick(nowMs: number): void {
    const up = this.upload;
    if (up === null || nowMs - up.lastRequestMs < this.opts.retryMs) return;
    if (up.retries >= this.opts.maxRetries) {
      this.upload = null;
      this.io.text(common.MavSeverity.WARNING, 'Mission upload timeout');
      this.ack(up.peer, up.type, MR.OPERATION_CANCELLED);
      return;
    }
    up.retries++;
    this.request(up, nowMs);
  }

  /** Abandons any transfer (reboot, link loss of the uploader). */
  reset(channelId?: string): void {
    if (channelId === undefined || this.upload?.peer.channelId === channelId) this.upload = null;
  }

  private validate(item: MissionItem): common.MavMissionResult {
    const allowed = item.missionType === MT.FENCE ? FENCE_COMMANDS : item.missionType === MT.RALLY ? RALLY_COMMANDS : MISSION_COMMANDS;
    if (!allowed.has(item.command)) return MR.UNSUPPORTED;
    if (!SUPPORTED_FRAMES.has(item.frame)) return MR.UNSUPPORTED_FRAME;
    if (isGlobalFrame(item.frame) && (Math.abs(item.x) > 900_000_000 || Math.abs(item.y) > 1_800_000_000)) return MR.INVALID_PARAM5_X;
    return MR.ACCEPTED;
  }

  private request(up: Upload, nowMs: number): void {
    const req = new common.MissionRequestInt();
    req.targetSystem = up.peer.sysid;
    req.targetComponent = up.peer.compid;
    req.seq = up.items.length;
    req.missionType = up.type;
    up.lastRequestMs = nowMs;
    this.io.send(up.peer.channelId, req);
  }

  private ack(peer: Peer, type: number, result: common.MavMissionResult): void {
    const ack = new common.MissionAck();
    ack.targetSystem = peer.sysid;
    ack.targetComponent = peer.compid;
    ack.type = result;
    ack.missionType = MissionStore.isKnownType(type) || type === MT.ALL ? type : MT.MISSION;
    this.io.send(peer.channelId, ack);
  }
}

function samePeer(a: Peer, b: Peer): boolean {
  return a.channelId === b.channelId && a.sysid === b.sysid && a.compid === b.compid;
}

export function fromItemInt(m: common.MissionItemInt): MissionItem {
  return {
    seq: m.seq, frame: m.frame, command: m.command, current: m.current, autocontinue: m.autocontinue,
    param1: m.param1, param2: m.param2, param3: m.param3, param4: m.param4, x: m.x, y: m.y, z: m.z, missionType: m.missionType,
  };
}

/** Legacy float MISSION_ITEM → int form (degrees → degE7 for global frames). */
export function fromItemFloat(m: common.MissionItem): MissionItem {
  const global = isGlobalFrame(m.frame);
  return {
    seq: m.seq, frame: m.frame, command: m.command, current: m.current, autocontinue: m.autocontinue,
    param1: m.param1, param2: m.param2, param3: m.param3, param4: m.param4,
    x: global ? Math.round(m.x * 1e7) : Math.round(m.x), y: global ? Math.round(m.y * 1e7) : Math.round(m.y), z: m.z,
    missionType: m.missionType,
  };
}

function toItemInt(it: MissionItem, peer: Peer): common.MissionItemInt {
  const m = new common.MissionItemInt();
  m.targetSystem = peer.sysid;
  m.targetComponent = peer.compid;
  Object.assign(m, { seq: it.seq, frame: it.frame, command: it.command, current: it.current, autocontinue: it.autocontinue });
  Object.assign(m, { param1: it.param1, param2: it.param2, param3: it.param3, param4: it.param4, x: it.x, y: it.y, z: it.z });
  m.missionType = it.missionType;
  return m;
}

function toItemFloat(it: MissionItem, peer: Peer): common.MissionItem {
  const m = new common.MissionItem();
  const global = isGlobalFrame(it.frame);
  m.targetSystem = peer.sysid;
  m.targetComponent = peer.compid;
  Object.assign(m, { seq: it.seq, frame: it.frame, command: it.command, current: it.current, autocontinue: it.autocontinue });
  Object.assign(m, { param1: it.param1, param2: it.param2, param3: it.param3, param4: it.param4, z: it.z });
  m.x = global ? it.x / 1e7 : it.x;
  m.y = global ? it.y / 1e7 : it.y;
  m.missionType = it.missionType;
  return m;
}
