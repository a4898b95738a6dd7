import type { ByteLink, Transport } from '../../src/link/transport.js';

/** Small waiting helpers shared by the transport tests. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

export function nextLinkEvent(t: Transport, event: 'open' | 'close', timeoutMs: number): Promise<ByteLink> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      t.off(event, onEvent);
      reject(new Error(`no '${event}' within ${timeoutMs} ms`));
    }, timeoutMs);
    const onEvent = (link: ByteLink): void => {
      clearTimeout(timer);
      resolve(link);
    };
    t.once(event, onEvent);
  });
}

/** Polls `pred` every 20 ms until it holds (end-to-end tests: argument order by what, then how long). */
export async function until(pred: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!pred()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(20);
  }
}

/** Rejection counters by reason, as relay stats report them. */
export type Rejected = Partial<Record<string, number>>;

/** What changed between two rejection snapshots (reasons whose count moved). */
export function rejectedDiff(before: Rejected, after: Rejected): Rejected {
  const out: Rejected = {};
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const d = (after[k] ?? 0) - (before[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}
