/**
 * systemd service notifications (sd_notify(3)) without native modules, and a watchdog that only
 * pings while the process is actually working.
 *
 * Node has no AF_UNIX datagram sockets, so each notification runs `systemd-notify --pid=<our pid>
 * VAR=VALUE...` (from the systemd package, present wherever systemd is). Measured on an x86-64
 * dev box: about 4 ms wall time and 1 ms of the daemon's CPU per message, 6.5 MB peak RSS in the
 * short-lived child; with WatchdogSec=20 that is one message every 10 s. systemd-notify (v246+)
 * waits until systemd has processed the message (BARRIER=1), so the old race where the sender has
 * exited before systemd can attribute the message to the unit is gone. The sender is the child,
 * not the main PID, so the unit needs NotifyAccess=all.
 *
 * Everything here is a no-op when $NOTIFY_SOCKET is unset (not started by systemd, or Type= is
 * not notify): the daemon runs the same in a terminal.
 */
import { execFile } from 'node:child_process';
import type { Logger } from './logger.js';

/** Sends one notification datagram made of these VAR=VALUE lines. */
export type NotifySender = (assignments: readonly string[]) => Promise<void>;

export interface SdNotifierOptions {
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Replaces the systemd-notify child (tests). */
  send?: NotifySender;
  /** systemd-notify binary (default: found on PATH). */
  command?: string;
  /** Kill a hung systemd-notify after this long (default 10 s; its own barrier timeout is 5 s). */
  timeoutMs?: number;
}

/** STATUS= is one line of free text; keep it short and printable. */
export function sanitizeStatus(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim().slice(0, 200);
}

export class SdNotifier {
  /** True when started by systemd with Type=notify ($NOTIFY_SOCKET set). */
  readonly enabled: boolean;
  private readonly env: NodeJS.ProcessEnv;
  private readonly send: NotifySender;
  private chain: Promise<unknown> = Promise.resolve();
  private broken = false;
  private failures = 0;
  private sent = 0;

  constructor(private readonly opts: SdNotifierOptions = {}) {
    this.env = opts.env ?? process.env;
    const socket = this.env['NOTIFY_SOCKET'];
    this.enabled = typeof socket === 'string' && socket !== '';
    this.send = opts.send ?? ((a) => this.spawnNotify(a));
  }

  /**
   * Queues one message (messages go out in order, one child at a time). Resolves true when it was
   * delivered, false when disabled or it failed; never rejects (a failed notification is logged,
   * it must not take the daemon down).
   */
  notify(...assignments: string[]): Promise<boolean> {
    if (!this.enabled || this.broken || assignments.length === 0) return Promise.resolve(false);
    const p = this.chain.then(() => this.send(assignments)).then(
      () => {
        this.sent++;
        return true;
      },
      (err: unknown) => {
        this.failures++;
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          this.broken = true;
          this.opts.logger?.error('systemd-notify not found: systemd will not see READY=1 or watchdog pings (install systemd, or use Type=simple without WatchdogSec)');
        } else if (this.failures === 1 || this.failures % 100 === 0) {
          this.opts.logger?.warn({ err: (err as Error).message, failures: this.failures }, 'systemd notification failed');
        }
        return false;
      },
    );
    this.chain = p;
    return p;
  }

  ready(status?: string): Promise<boolean> {
    return this.notify('READY=1', ...(status !== undefined ? [`STATUS=${sanitizeStatus(status)}`] : []));
  }

  status(text: string): Promise<boolean> {
    return this.notify(`STATUS=${sanitizeStatus(text)}`);
  }

  stopping(status?: string): Promise<boolean> {
    return this.notify('STOPPING=1', ...(status !== undefined ? [`STATUS=${sanitizeStatus(status)}`] : []));
  }

  /**
   * The watchdog period systemd expects (WatchdogSec= as $WATCHDOG_USEC), in ms; null when no
   * watchdog is configured or it is meant for another process ($WATCHDOG_PID).
   */
  watchdogTimeoutMs(): number | null {
    if (!this.enabled) return null;
    const usec = Number(this.env['WATCHDOG_USEC']);
    if (!Number.isFinite(usec) || usec <= 0) return null;
    const pid = this.env['WATCHDOG_PID'];
    if (pid !== undefined && pid !== '' && Number(pid) !== process.pid) return null;
    return usec / 1000;
  }

  stats(): { enabled: boolean; sent: number; failures: number } {
    return { enabled: this.enabled, sent: this.sent, failures: this.failures };
  }

  private spawnNotify(assignments: readonly string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      execFile(
        this.opts.command ?? 'systemd-notify',
        [`--pid=${process.pid}`, ...assignments],
        { env: this.env, timeout: this.opts.timeoutMs ?? 10_000, windowsHide: true },
        (err, _stdout, stderr) => {
          if (err) {
            const e = err as NodeJS.ErrnoException;
            if (e.code !== 'ENOENT') e.message = `${e.message.split('\n')[0] ?? ''} ${stderr.trim()}`.trim();
            reject(e);
          } else {
            resolve();
          }
        },
      );
    });
  }
}

/**
 * READY=1 once `ready` settles (e.g. the first autopilot HEARTBEAT) or after `timeoutMs`, whichever
 * comes first, so a vehicle without its autopilot still counts as started (TimeoutStartSec= must be
 * longer than timeoutMs). Resolves to what happened.
 */
export async function notifyReady(notifier: SdNotifier, ready: Promise<unknown>, opts: { timeoutMs: number; readyStatus?: string; timeoutStatus?: string; signal?: AbortSignal }): Promise<'ready' | 'timeout' | 'aborted'> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const outcome = await Promise.race([
    ready.then(() => 'ready' as const, () => 'timeout' as const),
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), opts.timeoutMs);
    }),
    new Promise<'aborted'>((resolve) => {
      if (opts.signal?.aborted) resolve('aborted');
      onAbort = () => resolve('aborted');
      opts.signal?.addEventListener('abort', onAbort, { once: true });
    }),
  ]);
  clearTimeout(timer);
  if (onAbort) opts.signal?.removeEventListener('abort', onAbort);
  if (outcome === 'aborted') return outcome;
  await notifier.ready(outcome === 'ready' ? (opts.readyStatus ?? 'running') : (opts.timeoutStatus ?? 'running (still waiting for the autopilot)'));
  return outcome;
}

/** Resolves when predicate() turns true (polled), or rejects when the signal aborts. For READY=1 conditions. */
export function waitUntil(predicate: () => boolean, opts: { pollMs?: number; signal?: AbortSignal } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      try {
        return predicate();
      } catch {
        return false;
      }
    };
    if (check()) {
      resolve();
      return;
    }
    const timer = setInterval(() => {
      if (check()) {
        cleanup();
        resolve();
      }
    }, opts.pollMs ?? 200);
    const onAbort = (): void => {
      cleanup();
      reject(new Error('aborted'));
    };
    const cleanup = (): void => {
      clearInterval(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------
// Watchdog

export interface WatchdogOptions {
  notifier: SdNotifier;
  /**
   * Extra liveness condition, checked before each ping. Make it false only for states a restart
   * fixes (see LinkStallDetector); never for outside conditions such as an unplugged autopilot or
   * a broker outage, or systemd restarts the daemon in a loop and finally gives up on it.
   */
  healthy?: () => boolean;
  /** A ping is withheld when the event loop was blocked longer than this since the last one (default 3000 ms). */
  maxLagMs?: number;
  /** Event-loop probe period (default 250 ms). */
  probeMs?: number;
  /** Ping period; default half of WatchdogSec=. */
  intervalMs?: number;
  /** Appended to each ping as STATUS= (shown by `systemctl status`). */
  status?: () => string;
  logger?: Logger;
}

export interface WatchdogStats {
  active: boolean;
  intervalMs: number | null;
  pings: number;
  withheld: number;
  /** Worst event-loop lag seen in the current period, ms. */
  lagMs: number;
  maxLagEverMs: number;
  lastWithheldReason: string | null;
}

/**
 * Pings WATCHDOG=1 every half WatchdogSec=, but only while the process is healthy: the event loop
 * kept up (a probe timer measures how late it fires) and healthy() is true. A blocked loop fires
 * neither timer, so no ping goes out and systemd kills and restarts the daemon after WatchdogSec=;
 * a loop that stalls repeatedly, or an unhealthy() that persists, withholds pings to the same end.
 * One withheld ping is not fatal: systemd acts only when a whole WatchdogSec= passes without one.
 */
export class Watchdog {
  private pingTimer: NodeJS.Timeout | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private lastProbe = 0;
  private lagMs = 0;
  private maxLagEverMs = 0;
  private pings = 0;
  private withheld = 0;
  private lastWithheldReason: string | null = null;
  private intervalMs: number | null = null;

  constructor(private readonly opts: WatchdogOptions) {}

  /** Starts pinging if systemd configured a watchdog for us; returns whether it did. */
  start(signal?: AbortSignal): boolean {
    if (!this.opts.notifier.enabled) return false;
    const timeout = this.opts.notifier.watchdogTimeoutMs();
    const interval = this.opts.intervalMs ?? (timeout === null ? null : Math.max(50, Math.floor(timeout / 2)));
    if (interval === null || this.pingTimer) return false;
    this.intervalMs = interval;
    const probeMs = this.opts.probeMs ?? 250;
    this.lastProbe = performance.now();
    this.probeTimer = setInterval(() => this.probe(probeMs), probeMs);
    this.probeTimer.unref();
    this.pingTimer = setInterval(() => void this.tick(), interval);
    this.pingTimer.unref();
    signal?.addEventListener('abort', () => this.stop(), { once: true });
    this.opts.logger?.info({ intervalMs: interval, maxLagMs: this.maxLagMs() }, 'systemd watchdog active');
    void this.tick(); // first ping right away
    return true;
  }

  stop(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.pingTimer = this.probeTimer = null;
  }

  stats(): WatchdogStats {
    return {
      active: this.pingTimer !== null, intervalMs: this.intervalMs, pings: this.pings, withheld: this.withheld,
      lagMs: Math.round(this.lagMs), maxLagEverMs: Math.round(this.maxLagEverMs), lastWithheldReason: this.lastWithheldReason,
    };
  }

  private maxLagMs(): number {
    return this.opts.maxLagMs ?? 3000;
  }

  private probe(probeMs: number): void {
    const now = performance.now();
    const lag = Math.max(0, now - this.lastProbe - probeMs);
    this.lastProbe = now;
    if (lag > this.lagMs) this.lagMs = lag;
    if (lag > this.maxLagEverMs) this.maxLagEverMs = lag;
  }

  /** Exposed for tests: one ping decision. */
  async tick(): Promise<boolean> {
    // Whichever timer runs first after a block, the lag is seen: the probe records it, or this
    // measures how overdue the probe is right now (and restarts its period).
    this.probe(this.opts.probeMs ?? 250);
    const lag = this.lagMs;
    this.lagMs = 0;
    let reason: string | null = null;
    if (lag > this.maxLagMs()) reason = `event loop blocked for ${Math.round(lag)} ms`;
    else {
      try {
        if (this.opts.healthy && !this.opts.healthy()) reason = 'health check false';
      } catch (err) {
        reason = `health check threw: ${(err as Error).message}`;
      }
    }
    if (reason !== null) {
      this.withheld++;
      this.lastWithheldReason = reason;
      this.opts.logger?.warn({ reason, withheld: this.withheld }, 'watchdog ping withheld (systemd restarts mavmq if this persists)');
      return false;
    }
    this.pings++;
    let status: string | undefined;
    try {
      status = this.opts.status?.();
    } catch {
      status = undefined;
    }
    return this.opts.notifier.notify('WATCHDOG=1', ...(status !== undefined ? [`STATUS=${sanitizeStatus(status)}`] : []));
  }
}

/**
 * Liveness of a link in the one sense a restart can fix: it carried data in THIS process and then
 * went silent for `stallMs` while still reported open (a wedged USB/serial driver or port). A link
 * that never carried data since start (autopilot off or unplugged) is never "stalled", so a
 * restart caused by a stall cannot turn into a restart loop.
 */
export class LinkStallDetector {
  private lastBytes = -1;
  private lastChangeMs = 0;

  constructor(private readonly stallMs = 30_000, private readonly now: () => number = () => performance.now()) {}

  /** Feed the link's stats (open or not, cumulative bytes received); true while it is stalled. */
  stalled(link: { connected: boolean; bytes: number }): boolean {
    const now = this.now();
    if (!link.connected) {
      // Closed is not stalled: the transport reopens it by itself (unplug/replug, reconnect).
      this.lastBytes = -1;
      return false;
    }
    if (link.bytes !== this.lastBytes) {
      this.lastBytes = link.bytes;
      this.lastChangeMs = now;
      return false;
    }
    return link.bytes > 0 && now - this.lastChangeMs > this.stallMs;
  }
}
