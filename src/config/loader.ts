import { readFile } from 'node:fs/promises';
import { parseDocument, isMap, isSeq, LineCounter, type Document } from 'yaml';
import type { z } from 'zod';
import { airConfigSchema, groundConfigSchema, type AirConfig, type GroundConfig } from './schema.js';
import { MavmqError, ErrorCodes, type Problem } from '../errors.js';

/**
 * Config = YAML file (optional) <- environment overrides <- command-line flags, then one
 * validation pass over the result that reports every problem with its path, line and a hint.
 */
export type ConfigRole = 'air' | 'ground';

/** The few things a field technician changes without editing YAML. */
export const ENV_OVERRIDES = {
  MAVMQ_LINK_URL: 'link.url',
  MAVMQ_VEHICLE_ID: 'vehicle.id',
  MAVMQ_MQTT_URL: 'mqtt.url',
  MAVMQ_KEY_FILE: 'keyFile',
  MAVMQ_LOG_LEVEL: 'log.level',
} as const;

export interface LoadOptions {
  file?: string;
  /** Partial raw input from flags, merged over file and env. */
  overrides?: Record<string, unknown>;
  /** Endpoint URLs from repeated flags, appended to the file's list rather than replacing it. */
  appendEndpoints?: string[];
  env?: NodeJS.ProcessEnv;
}

interface Source {
  raw: Record<string, unknown>;
  doc: Document | null;
  lines: LineCounter | null;
  file: string | null;
}

async function readSource(file: string | undefined): Promise<Source> {
  if (file === undefined) return { raw: {}, doc: null, lines: null, file: null };
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new MavmqError(ErrorCodes.CONFIG_READ, `cannot read config ${file}: ${(err as Error).message}`, {
      cause: err, problems: [{ path: file, message: (err as Error).message, hint: 'check the path and that the mavmq user can read it' }],
    });
  }
  return parseYamlSource(text, file);
}

export function parseYamlSource(text: string, file: string): Source {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((e) => {
      const pos = lines.linePos(e.pos[0]);
      return { path: `${file}:${pos.line}:${pos.col}`, message: e.message.split('\n')[0] ?? e.message, hint: 'YAML syntax: check indentation and quoting' };
    });
    throw new MavmqError(ErrorCodes.CONFIG_INVALID, `config ${file} is not valid YAML`, { problems });
  }
  const raw: unknown = doc.toJS() ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new MavmqError(ErrorCodes.CONFIG_INVALID, `config ${file} must be a mapping`, {
      problems: [{ path: file, message: 'the top level must be a mapping of keys', hint: 'see config/air.example.yaml' }],
    });
  }
  return { raw: raw as Record<string, unknown>, doc, lines, file };
}

function setPath(obj: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let cur: Record<string, unknown> = obj;
  for (const p of parts.slice(0, -1)) {
    const next = cur[p];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1] as string] = value;
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const b = out[k];
    const bothObjects = typeof v === 'object' && v !== null && !Array.isArray(v) && typeof b === 'object' && b !== null && !Array.isArray(b);
    out[k] = bothObjects ? deepMerge(b as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

function lineOf(src: Source, path: readonly PropertyKey[]): string | null {
  if (src.doc === null || src.lines === null) return null;
  // Walk down as far as the document goes (the offending key may be missing entirely).
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? src.doc.contents : src.doc.getIn(path.slice(0, n) as (string | number)[], true);
    if (node && typeof node === 'object' && 'range' in node && Array.isArray(node.range)) {
      const pos = src.lines.linePos(node.range[0] as number);
      return `${src.file}:${pos.line}`;
    }
    if (n > 0 && (isMap(node) || isSeq(node))) break;
  }
  return src.file;
}

function closest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = levenshtein(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : null;
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j] as number;
      row[j] = Math.min((row[j] as number) + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length] as number;
}

function knownKeysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  // Descend the schema along the path to list valid keys for "did you mean" hints.
  let cur: unknown = schema;
  for (const seg of path) {
    cur = unwrap(cur);
    const def = (cur as { def?: { type?: string; shape?: Record<string, unknown>; element?: unknown } }).def;
    if (def?.type === 'object' && typeof seg === 'string') cur = def.shape?.[seg];
    else if (def?.type === 'array' && typeof seg === 'number') cur = def.element;
    else return [];
  }
  cur = unwrap(cur);
  const shape = (cur as { def?: { type?: string; shape?: Record<string, unknown> } }).def;
  return shape?.type === 'object' && shape.shape ? Object.keys(shape.shape) : [];
}

function unwrap(s: unknown): unknown {
  let cur = s;
  for (let i = 0; i < 10; i++) {
    const def = (cur as { def?: { type?: string; innerType?: unknown; in?: unknown } } | undefined)?.def;
    if (def === undefined) return cur;
    if (def.innerType !== undefined) cur = def.innerType;
    else if (def.type === 'pipe' && def.in !== undefined) cur = def.in;
    else return cur;
  }
  return cur;
}

export function issuesToProblems(schema: z.ZodType, issues: readonly z.core.$ZodIssue[], src: Source): Problem[] {
  const out: Problem[] = [];
  for (const issue of issues) {
    const dotted = issue.path.map(String).join('.') || '(top level)';
    const where = lineOf(src, issue.path);
    const at = where ? ` (${where})` : '';
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysAt(schema, issue.path);
      for (const key of issue.keys) {
        const guess = closest(key, known);
        const base = issue.path.length ? `${dotted}.${key}` : key;
        out.push({ path: `${base}${lineOf(src, [...issue.path, key]) ? ` (${lineOf(src, [...issue.path, key])})` : ''}`, message: `unknown key "${key}"`, hint: guess ? `did you mean "${guess}"?` : `known keys here: ${known.join(', ')}` });
      }
      continue;
    }
    let hint: string | undefined;
    if (issue.code === 'invalid_type') hint = `expected ${issue.expected}`;
    else if (issue.code === 'invalid_value' && 'values' in issue) hint = `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    else if (issue.code === 'too_small' || issue.code === 'too_big') hint = 'see config/*.example.yaml for sane values';
    out.push({ path: `${dotted}${at}`, message: issue.message, ...(hint ? { hint } : {}) });
  }
  return out;
}

function validate<S extends z.ZodType>(schema: S, raw: Record<string, unknown>, src: Source, what: string): z.infer<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data as z.infer<S>;
  const problems = issuesToProblems(schema, r.error.issues, src);
  throw new MavmqError(ErrorCodes.CONFIG_INVALID, `${what} has ${problems.length} problem${problems.length === 1 ? '' : 's'}`, { problems });
}

function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, only?: readonly string[]): Record<string, unknown> {
  const over: Record<string, unknown> = {};
  for (const [name, path] of Object.entries(ENV_OVERRIDES)) {
    if (only !== undefined && !only.includes(name)) continue;
    const v = env[name];
    if (v !== undefined && v !== '') setPath(over, path, v);
  }
  return deepMerge(raw, over);
}

export async function loadAirConfig(opts: LoadOptions = {}): Promise<AirConfig> {
  const src = await readSource(opts.file);
  const raw = deepMerge(applyEnv(src.raw, opts.env ?? process.env), opts.overrides ?? {});
  if (opts.appendEndpoints && opts.appendEndpoints.length > 0) {
    const base = Array.isArray(raw['endpoints']) ? (raw['endpoints'] as unknown[]) : [];
    raw['endpoints'] = [...base, ...opts.appendEndpoints.map((url) => ({ url }))];
  }
  return validate(airConfigSchema, raw, src, opts.file ? `config ${opts.file}` : 'configuration');
}

export async function loadGroundConfig(opts: LoadOptions = {}): Promise<GroundConfig> {
  const src = await readSource(opts.file);
  // The gateway serves a fleet: of the field overrides only the log level applies to it.
  const raw = deepMerge(applyEnv(src.raw, opts.env ?? process.env, ['MAVMQ_LOG_LEVEL']), opts.overrides ?? {});
  return validate(groundConfigSchema, raw, src, opts.file ? `config ${opts.file}` : 'configuration');
}

/** `mavmq config check FILE`: the role comes from the file's `role:` key (default air). */
export async function checkConfigFile(file: string, env: NodeJS.ProcessEnv = {}): Promise<{ role: ConfigRole; config: AirConfig | GroundConfig }> {
  const src = await readSource(file);
  const role = src.raw['role'] === 'ground' ? 'ground' : 'air';
  if (role === 'ground') return { role, config: validate(groundConfigSchema, applyEnv(src.raw, env, ['MAVMQ_LOG_LEVEL']), src, `config ${file}`) };
  return { role, config: validate(airConfigSchema, applyEnv(src.raw, env), src, `config ${file}`) };
}
