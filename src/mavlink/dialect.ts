import { minimal, common, standard, ardupilotmega, type MavLinkDataConstructor, type MavLinkData } from 'node-mavlink';

/**
 * Per-msgid facts the routing path needs, as flat typed arrays (one lookup per frame, no Map).
 * Built from node-mavlink's generated definitions of the ardupilotmega dialect (which includes common).
 */
export interface Dialect {
  readonly name: string;
  /** CRC_EXTRA per msgid, or -1 when the dialect does not know the message. */
  crcExtra(msgid: number): number;
  /** Full payload length (with extensions); v2 frames may be shorter (trailing zeros truncated). */
  maxPayloadLength(msgid: number): number;
  /** Payload offset of target_system / target_component, or -1. */
  targetSystemOffset(msgid: number): number;
  targetComponentOffset(msgid: number): number;
  messageClass(msgid: number): MavLinkDataConstructor<MavLinkData> | undefined;
  messageName(msgid: number): string;
  msgidByName(name: string): number | undefined;
}

const DENSE_LIMIT = 1 << 16;

class TableDialect implements Dialect {
  readonly name: string;
  private readonly crc = new Int16Array(DENSE_LIMIT).fill(-1);
  private readonly maxLen = new Int16Array(DENSE_LIMIT).fill(-1);
  private readonly tsys = new Int16Array(DENSE_LIMIT).fill(-1);
  private readonly tcomp = new Int16Array(DENSE_LIMIT).fill(-1);
  private readonly classes = new Map<number, MavLinkDataConstructor<MavLinkData>>();
  private readonly byName = new Map<string, number>();

  constructor(name: string, registry: Record<number, MavLinkDataConstructor<MavLinkData>>) {
    this.name = name;
    for (const [idText, clazz] of Object.entries(registry)) {
      const id = Number(idText);
      // MAVLink v2 msgids are 24-bit, but every dialect we carry stays under 2^16.
      if (id >= DENSE_LIMIT) continue;
      this.crc[id] = clazz.MAGIC_NUMBER;
      this.maxLen[id] = clazz.PAYLOAD_LENGTH;
      for (const f of clazz.FIELDS) {
        if (f.source === 'target_system') this.tsys[id] = f.offset;
        if (f.source === 'target_component') this.tcomp[id] = f.offset;
      }
      this.classes.set(id, clazz);
      this.byName.set(clazz.MSG_NAME, id);
    }
  }
  crcExtra(msgid: number): number {
    return msgid < DENSE_LIMIT ? (this.crc[msgid] as number) : -1;
  }
  maxPayloadLength(msgid: number): number {
    return msgid < DENSE_LIMIT ? (this.maxLen[msgid] as number) : -1;
  }
  targetSystemOffset(msgid: number): number {
    return msgid < DENSE_LIMIT ? (this.tsys[msgid] as number) : -1;
  }
  targetComponentOffset(msgid: number): number {
    return msgid < DENSE_LIMIT ? (this.tcomp[msgid] as number) : -1;
  }
  messageClass(msgid: number): MavLinkDataConstructor<MavLinkData> | undefined {
    return this.classes.get(msgid);
  }
  messageName(msgid: number): string {
    return this.classes.get(msgid)?.MSG_NAME ?? `MSG_${msgid}`;
  }
  msgidByName(name: string): number | undefined {
    return this.byName.get(name);
  }
}

let ardupilot: Dialect | undefined;
/** The ardupilotmega dialect (includes common, standard and minimal). Built once on first use; immutable after. */
export function ardupilotmegaDialect(): Dialect {
  ardupilot ??= new TableDialect('ardupilotmega', {
    ...(minimal.REGISTRY as Record<number, MavLinkDataConstructor<MavLinkData>>),
    ...(standard.REGISTRY as Record<number, MavLinkDataConstructor<MavLinkData>>),
    ...(common.REGISTRY as Record<number, MavLinkDataConstructor<MavLinkData>>),
    ...(ardupilotmega.REGISTRY as Record<number, MavLinkDataConstructor<MavLinkData>>),
  });
  return ardupilot;
}

/** A dialect from an explicit registry (tests, custom dialects). */
export function dialectFromRegistry(name: string, registry: Record<number, MavLinkDataConstructor<MavLinkData>>): Dialect {
  return new TableDialect(name, registry);
}
