import { common } from 'node-mavlink';
import type { ParamDef, ParamType } from './param-defs.js';

export { buildParamDefs, type ParamDef, type ParamType } from './param-defs.js';

export interface ParamEntry {
  readonly index: number;
  readonly def: ParamDef;
  readonly value: number;
}

/** Where parameter values live between runs (the runner's JSON file; nothing in tests). */
export interface ParamStore {
  /** Saved values by name (only names that differ from their default need be present). */
  load(): Record<string, number>;
  /** Called after every change with every value that differs from its default. */
  save(values: Record<string, number>): void;
}

const RANGES: Record<number, [number, number]> = {
  [common.MavParamType.INT8]: [-128, 127],
  [common.MavParamType.INT16]: [-32768, 32767],
  [common.MavParamType.INT32]: [-2147483648, 2147483647],
};

/** Coerces a value to what the storage type can hold (ArduPilot: constrain, then store). */
export function coerceParam(type: ParamType, value: number): number {
  if (type === common.MavParamType.REAL32) return Math.fround(value);
  const range = RANGES[type] ?? [-2147483648, 2147483647];
  return Math.min(range[1], Math.max(range[0], Math.round(value)));
}

/**
 * The parameter table: a fixed set of names (never grows), values by name or index. Unknown names
 * are ignored on set, as ArduPilot does.
 */
export class ParamTable {
  private readonly defs: readonly ParamDef[];
  private readonly values: number[];
  private readonly index = new Map<string, number>();

  constructor(defs: readonly ParamDef[]) {
    this.defs = defs;
    this.values = defs.map((d) => coerceParam(d.type, d.defaultValue));
    defs.forEach((d, i) => this.index.set(d.name, i));
  }

  get count(): number {
    return this.defs.length;
  }

  byIndex(i: number): ParamEntry | undefined {
    const def = this.defs[i];
    if (def === undefined) return undefined;
    return { index: i, def, value: this.values[i] as number };
  }

  byName(name: string): ParamEntry | undefined {
    const i = this.index.get(name);
    return i === undefined ? undefined : this.byIndex(i);
  }

  has(name: string): boolean {
    return this.index.has(name);
  }

  /** Current value of a parameter the sim itself relies on; a missing name is a programming error. */
  get(name: string): number {
    const i = this.index.get(name);
    if (i === undefined) throw new Error(`sim param ${name} is not defined`);
    return this.values[i] as number;
  }

  /** Sets by name; returns the entry (after coercion), or undefined for an unknown name / non-finite value. */
  set(name: string, value: number): ParamEntry | undefined {
    const i = this.index.get(name);
    if (i === undefined || !Number.isFinite(value)) return undefined;
    const def = this.defs[i] as ParamDef;
    this.values[i] = coerceParam(def.type, value);
    return this.byIndex(i);
  }

  /** Applies saved values; unknown names are skipped. Returns how many were applied. */
  load(values: Record<string, number>): number {
    let n = 0;
    for (const [name, v] of Object.entries(values)) {
      if (typeof v === 'number' && this.set(name, v) !== undefined) n++;
    }
    return n;
  }

  /** Every value that differs from its default (what a store persists). */
  changed(): Record<string, number> {
    const out: Record<string, number> = {};
    this.defs.forEach((d, i) => {
      const v = this.values[i] as number;
      if (v !== coerceParam(d.type, d.defaultValue)) out[d.name] = v;
    });
    return out;
  }
}
