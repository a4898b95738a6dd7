import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { MavmqError, ErrorCodes } from '../errors.js';
import type { ParamStore } from './params.js';

const FORMAT = 'mavmq-sim-params';

/**
 * Parameters persisted as JSON ({"format":"mavmq-sim-params","version":1,"params":{NAME:value}}),
 * holding only values that differ from the defaults. Loads synchronously once at start; saves are
 * debounced and atomic (temp file + rename), and close() flushes the last one.
 */
export class JsonParamFile implements ParamStore {
  private pending: Record<string, number> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    readonly path: string,
    private readonly opts: { debounceMs?: number; onError?: (err: unknown) => void } = {},
  ) {}

  load(): Record<string, number> {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new MavmqError(ErrorCodes.CONFIG_READ, `cannot read sim params file ${this.path}`, { cause: err });
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new MavmqError(ErrorCodes.CONFIG_READ, `sim params file ${this.path} is not valid JSON`, { cause: err });
    }
    const params = (doc as { format?: unknown; params?: unknown } | null)?.params;
    if ((doc as { format?: unknown } | null)?.format !== FORMAT || typeof params !== 'object' || params === null) {
      throw new MavmqError(ErrorCodes.CONFIG_READ, `${this.path} is not a ${FORMAT} file`);
    }
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(params)) if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
    return out;
  }

  save(values: Record<string, number>): void {
    if (this.closed) return;
    this.pending = { ...values };
    if (this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.opts.debounceMs ?? 500);
  }

  /** Writes the latest pending values now (writes never overlap). */
  flush(): Promise<void> {
    const values = this.pending;
    this.pending = null;
    if (values === null) return this.writing;
    const sorted = Object.fromEntries(Object.entries(values).sort(([a], [b]) => a.localeCompare(b)));
    const text = `${JSON.stringify({ format: FORMAT, version: 1, params: sorted }, null, 2)}\n`;
    const tmp = `${this.path}.tmp`;
    this.writing = this.writing
      .then(async () => {
        await writeFile(tmp, text, { mode: 0o644 });
        await rename(tmp, this.path);
      })
      .catch((err: unknown) => this.opts.onError?.(err));
    return this.writing;
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.flush();
    this.closed = true;
  }
}
