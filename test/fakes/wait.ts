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
