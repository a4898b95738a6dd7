import { common, ardupilotmega } from 'node-mavlink';
import type { Dialect } from '../mavlink/dialect.js';

/**
 * Names a technician writes in a policy file, resolved to numbers: MAVLink message names (from the
 * dialect), MAV_CMD names (common + ardupilotmega, with or without the MAV_CMD_ prefix) and the
 * MAVLink FTP opcodes. Numbers are accepted wherever a name is.
 */

export type NameRef = string | number;

const commandsByName = new Map<string, number>();
const commandNames = new Map<number, string>();
for (const e of [common.MavCmd, ardupilotmega.MavCmd] as unknown as Record<string, unknown>[]) {
  for (const [k, v] of Object.entries(e)) {
    if (typeof v !== 'number') continue;
    commandsByName.set(k, v);
    if (!commandNames.has(v)) commandNames.set(v, k);
  }
}

/** MAV_CMD id for `PREFLIGHT_REBOOT_SHUTDOWN`, `MAV_CMD_PREFLIGHT_REBOOT_SHUTDOWN` or 246. */
export function commandId(ref: NameRef): number | undefined {
  if (typeof ref === 'number') return Number.isInteger(ref) && ref >= 0 && ref <= 0xffff ? ref : undefined;
  const t = ref.trim().toUpperCase();
  if (/^\d+$/.test(t)) return commandId(Number(t));
  return commandsByName.get(t.startsWith('MAV_CMD_') ? t.slice(8) : t);
}

export function commandName(id: number): string {
  return commandNames.get(id) ?? `MAV_CMD_${id}`;
}

export function allCommandNames(): string[] {
  return [...commandsByName.keys()];
}

/** Message id for a name (`COMMAND_LONG`) or number, only if the dialect knows it. */
export function messageId(dialect: Dialect, ref: NameRef): number | undefined {
  if (typeof ref === 'number') return dialect.messageClass(ref) !== undefined ? ref : undefined;
  const t = ref.trim().toUpperCase();
  if (/^\d+$/.test(t)) return messageId(dialect, Number(t));
  return dialect.msgidByName(t);
}

/** MAVLink FTP opcodes (https://mavlink.io/en/services/ftp.html). */
export const FTP_OPCODES = {
  None: 0,
  TerminateSession: 1,
  ResetSessions: 2,
  ListDirectory: 3,
  OpenFileRO: 4,
  ReadFile: 5,
  CreateFile: 6,
  WriteFile: 7,
  RemoveFile: 8,
  CreateDirectory: 9,
  RemoveDirectory: 10,
  OpenFileWO: 11,
  TruncateFile: 12,
  Rename: 13,
  CalcFileCRC32: 14,
  BurstReadFile: 15,
} as const;
export const FTP_NAK = 129;
/** FTP error code "file/directory is write protected". */
export const FTP_ERR_FILE_PROTECTED = 9;

export function ftpOpcode(ref: NameRef): number | undefined {
  if (typeof ref === 'number') return Number.isInteger(ref) && ref >= 0 && ref <= 255 ? ref : undefined;
  const key = Object.keys(FTP_OPCODES).find((k) => k.toLowerCase() === ref.trim().toLowerCase());
  return key === undefined ? undefined : FTP_OPCODES[key as keyof typeof FTP_OPCODES];
}

/** The closest candidate to a mistyped name, for "did you mean" hints (null if nothing is close). */
export function suggest(word: string, candidates: Iterable<string>): string | null {
  const w = word.toUpperCase();
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(w, c.toUpperCase(), bestD);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return bestD <= Math.max(2, Math.floor(word.length / 4)) ? best : null;
}

function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap) return cap;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] as number;
}

/** `ARMING_*`, `SERIAL?_BAUD`: `*` any run, `?` one character; case-insensitive, whole name. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}
