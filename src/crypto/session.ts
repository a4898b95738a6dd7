/**
 * Session state machines (docs/PROTOCOL.md §4, §8-10), composing handshake, key schedule,
 * envelope and replay window. Pure in the sense that matters: no I/O, no timers, no clock; the
 * only outside input is the injectable randomBytes. Retries, timeouts and REHELLO rate limiting
 * are the caller's (they need a clock; security decisions here never do).
 *
 * Every method that takes bytes from the network returns a result union and never throws.
 */
import { deriveHandshakeKeys, deriveSessionKeys, type HandshakeKeys } from './hkdf.js';
import { decodeHandshake, encodeHello, encodeRehello, encodeReply, verifyHandshakeMac, type HandshakeDecodeReason } from './handshake.js';
import { defaultRandomBytes, SecretKey, type RandomBytesFn } from './keys.js';
import { ReplayWindow, REPLAY_WINDOW_BITS } from './replay-window.js';
import {
  decodeHeader,
  decodePayload,
  decryptEnvelope,
  sealEnvelope,
  type DecryptRejectReason,
  type PayloadKindName,
  type PayloadRejectReason,
} from './envelope.js';
import { RANDOM_BYTES, assertVehicleId, isValidVehicleId, type Direction } from './wire.js';
import { ErrorCodes, MavmqError } from '../errors.js';

// ---------------------------------------------------------------------------------------------
// Results

/** Why an envelope was dropped. Stable strings: metrics and tests match on them. */
export type EnvelopeRejectReason = DecryptRejectReason | PayloadRejectReason | 'unknown-session' | 'replay' | 'too-old';

export type OpenResult =
  | {
      ok: true;
      kind: PayloadKindName;
      body: Buffer;
      /** Hex of the session the envelope belongs to. */
      sessionId: string;
      counter: bigint;
      /**
       * Ground only: this envelope confirmed a pending session, which replaced the previous one.
       * Anything queued for the previous session (commands!) must be dropped, not resent.
       */
      newSession: boolean;
    }
  | { ok: false; reason: EnvelopeRejectReason };

export type SealRejectReason =
  /** No established session (handshake not done yet). */
  | 'no-session'
  /** `onlyInSession` was given and the current session is another one. */
  | 'session-changed'
  /** The hard per-session envelope limit was reached: a new handshake is mandatory. */
  | 'exhausted';
export type SealResult = { ok: true; envelope: Buffer; sessionId: string; counter: bigint } | { ok: false; reason: SealRejectReason };

export interface SealOptions {
  /**
   * Seal only if the current session is still this one (hex, as returned by a previous seal).
   * Use it for anything that must not be re-sent across sessions: a command first sent in session
   * A is never delivered in session B, where the other side may have rebooted and moved on.
   */
  onlyInSession?: string;
}

export type HandshakeRejectReason =
  | HandshakeDecodeReason
  /** The message names another vehicle than this AirSession's. */
  | 'wrong-vehicle'
  /** Ground: no PSK is provisioned for the vehicle id in the HELLO. */
  | 'unknown-vehicle'
  | 'auth-failed'
  /** Air: a REPLY arrived while no HELLO is outstanding (e.g. a replayed or duplicate REPLY). */
  | 'no-pending'
  /** Air: authentic REPLY, but to an older HELLO (replayed). */
  | 'stale-reply'
  /** REHELLO for a session that is not this side's current one (replayed or late). */
  | 'unknown-session'
  /** Ground, onUnknownSession: the envelope's session is known, no REHELLO needed. */
  | 'known-session'
  /** Ground, requestRekey: nothing to rekey. */
  | 'no-session';

// ---------------------------------------------------------------------------------------------
// Limits

export interface SessionLimits {
  /** needsRekey turns true once this many envelopes were sent or seen under one session. Default 2^32. */
  rekeyAfterEnvelopes?: bigint;
  /** seal refuses ('exhausted') at this many envelopes. Default 2^48, far below the 2^64 nonce space. */
  maxEnvelopesPerSession?: bigint;
  /** needsRekey turns true after this many failed tags under one session (bounds forgery attempts per key). Default 2^30. */
  rekeyAfterAuthFailures?: number;
  /** Replay window width in envelopes (multiple of 32). Default 2048. */
  replayWindowBits?: number;
}

interface ResolvedLimits {
  rekeyAfterEnvelopes: bigint;
  maxEnvelopesPerSession: bigint;
  rekeyAfterAuthFailures: number;
  replayWindowBits: number;
}

export const DEFAULT_REKEY_AFTER_ENVELOPES = 1n << 32n;
export const DEFAULT_MAX_ENVELOPES_PER_SESSION = 1n << 48n;
export const DEFAULT_REKEY_AFTER_AUTH_FAILURES = 2 ** 30;

function resolveLimits(l: SessionLimits | undefined): ResolvedLimits {
  const r: ResolvedLimits = {
    rekeyAfterEnvelopes: l?.rekeyAfterEnvelopes ?? DEFAULT_REKEY_AFTER_ENVELOPES,
    maxEnvelopesPerSession: l?.maxEnvelopesPerSession ?? DEFAULT_MAX_ENVELOPES_PER_SESSION,
    rekeyAfterAuthFailures: l?.rekeyAfterAuthFailures ?? DEFAULT_REKEY_AFTER_AUTH_FAILURES,
    replayWindowBits: l?.replayWindowBits ?? REPLAY_WINDOW_BITS,
  };
  if (r.rekeyAfterEnvelopes <= 0n || r.rekeyAfterEnvelopes >= r.maxEnvelopesPerSession || r.maxEnvelopesPerSession > 1n << 64n) {
    throw new MavmqError(ErrorCodes.CRYPTO, 'session limits: need 0 < rekeyAfterEnvelopes < maxEnvelopesPerSession <= 2^64');
  }
  if (!(r.rekeyAfterAuthFailures > 0)) throw new MavmqError(ErrorCodes.CRYPTO, 'session limits: rekeyAfterAuthFailures must be > 0');
  return r;
}

// ---------------------------------------------------------------------------------------------
// One established session, seen from one side

export interface SessionStats {
  sessionId: string;
  /** Envelopes sealed so far (= next counter). */
  sent: bigint;
  /** Highest counter accepted from the peer, or null. */
  highestReceived: bigint | null;
  authFailures: number;
}

/** Keys and counters of one session at one side. Not exported: only the state machines touch it. */
class SessionState {
  readonly id: Buffer;
  readonly idHex: string;
  readonly #sendKey: SecretKey;
  readonly #recvKey: SecretKey;
  readonly sendDirection: Direction;
  readonly window: ReplayWindow;
  nextCounter = 0n;
  authFailures = 0;

  constructor(id: Buffer, sendKey: SecretKey, recvKey: SecretKey, sendDirection: Direction, windowBits: number) {
    this.id = id;
    this.idHex = id.toString('hex');
    this.#sendKey = sendKey;
    this.#recvKey = recvKey;
    this.sendDirection = sendDirection;
    this.window = new ReplayWindow(windowBits);
  }

  get recvDirection(): Direction {
    return this.sendDirection === 'up' ? 'down' : 'up';
  }

  needsRekey(l: ResolvedLimits): boolean {
    const seen = this.window.highest;
    return (
      this.nextCounter >= l.rekeyAfterEnvelopes ||
      (seen !== null && seen + 1n >= l.rekeyAfterEnvelopes) ||
      this.authFailures >= l.rekeyAfterAuthFailures
    );
  }

  seal(l: ResolvedLimits, vehicleId: string, kind: PayloadKindName, body: Uint8Array, topic: string): SealResult {
    if (this.nextCounter >= l.maxEnvelopesPerSession) return { ok: false, reason: 'exhausted' };
    const counter = this.nextCounter;
    const envelope = sealEnvelope(this.#sendKey, { vehicleId, direction: this.sendDirection, topic }, this.id, counter, kind, body);
    this.nextCounter = counter + 1n; // only after a successful seal: a throw (bad topic) burns nothing
    return { ok: true, envelope, sessionId: this.idHex, counter };
  }

  /** Replay check, then AEAD, then window update: the window moves only for authentic envelopes. */
  open(vehicleId: string, envelope: Uint8Array, topic: string, counter: bigint): OpenResult {
    const verdict = this.window.check(counter);
    if (verdict !== 'ok') return { ok: false, reason: verdict };
    const d = decryptEnvelope(this.#recvKey, { vehicleId, direction: this.recvDirection, topic }, envelope);
    if (!d.ok) {
      if (d.reason === 'auth-failed') this.authFailures++;
      return d;
    }
    // Authentic: consume the counter even if the payload kind is unknown to us (peer is newer).
    this.window.commit(counter);
    const p = decodePayload(d.plaintext);
    if (!p.ok) return p;
    return { ok: true, kind: p.kind, body: p.body, sessionId: this.idHex, counter, newSession: false };
  }

  stats(): SessionStats {
    return { sessionId: this.idHex, sent: this.nextCounter, highestReceived: this.window.highest, authFailures: this.authFailures };
  }

  wipe(): void {
    this.#sendKey.wipe();
    this.#recvKey.wipe();
  }
}

function randomOf(rnd: RandomBytesFn, n: number): Buffer {
  const b = Buffer.from(rnd(n));
  if (b.length !== n) throw new MavmqError(ErrorCodes.CRYPTO, `randomBytes(${n}) returned ${b.length} bytes`);
  return b;
}

function sessionIdOfEnvelope(envelope: Uint8Array): { ok: true; id: string; counter: bigint } | { ok: false; reason: 'short' | 'bad-version' | 'bad-type' } {
  const h = decodeHeader(envelope);
  if (!h.ok) return h;
  return { ok: true, id: h.header.sessionId.toString('hex'), counter: h.header.counter };
}

// ---------------------------------------------------------------------------------------------
// Air side

export interface AirSessionOptions {
  psk: SecretKey;
  vehicleId: string;
  randomBytes?: RandomBytesFn;
  limits?: SessionLimits;
}

export type ReplyResult = { ok: true; sessionId: string } | { ok: false; reason: HandshakeRejectReason };
export type RehelloResult = { ok: true; hello: Buffer } | { ok: false; reason: HandshakeRejectReason };

/**
 * The drone's side. One instance per boot: a fresh AirSession knows no session, so nothing from
 * before a reboot is accepted. Flow: startHello() → publish; onReply(bytes) → established;
 * immediately seal something (e.g. 'keepalive') so the gateway confirms the session; then
 * seal()/open(). On needsRekey or a verified REHELLO, run startHello() again: the current session
 * keeps working until the REPLY arrives.
 */
export class AirSession {
  readonly vehicleId: string;
  readonly #psk: SecretKey;
  readonly #rnd: RandomBytesFn;
  readonly #limits: ResolvedLimits;
  #handshakeKeys: HandshakeKeys | null = null;
  /** The outstanding HELLO: only a REPLY echoing this random is accepted. */
  #pending: { airRandom: Buffer; hello: Buffer } | null = null;
  #current: SessionState | null = null;
  /**
   * The session before the last rekey, kept for receiving only: the gateway keeps sealing under
   * it until our first envelope under the new one reaches it. Dropped at the first authentic
   * envelope under the current session (MQTT keeps per-topic order, so none will follow).
   */
  #previous: SessionState | null = null;

  constructor(opts: AirSessionOptions) {
    assertVehicleId(opts.vehicleId);
    this.vehicleId = opts.vehicleId;
    this.#psk = opts.psk;
    this.#rnd = opts.randomBytes ?? defaultRandomBytes;
    this.#limits = resolveLimits(opts.limits);
  }

  /** Hex id of the session seal() uses, or null before the first handshake completes. */
  get sessionId(): string | null {
    return this.#current?.idHex ?? null;
  }

  get handshakePending(): boolean {
    return this.#pending !== null;
  }

  /** Time to start a new handshake (counters or failed-tag count near their limits). */
  get needsRekey(): boolean {
    return this.#current !== null && this.#current.needsRekey(this.#limits);
  }

  stats(): SessionStats | null {
    return this.#current?.stats() ?? null;
  }

  #keys(): HandshakeKeys {
    return (this.#handshakeKeys ??= deriveHandshakeKeys(this.#psk, this.vehicleId));
  }

  /** A new HELLO with a fresh random; any earlier outstanding HELLO is abandoned. */
  startHello(): Buffer {
    const airRandom = randomOf(this.#rnd, RANDOM_BYTES);
    const hello = encodeHello(this.#keys(), this.vehicleId, airRandom);
    this.#pending = { airRandom, hello };
    return hello;
  }

  onReply(bytes: Uint8Array): ReplyResult {
    const d = decodeHandshake(bytes);
    if (!d.ok) return d;
    const m = d.message;
    if (m.type !== 'reply') return { ok: false, reason: 'bad-type' };
    if (m.vehicleId !== this.vehicleId) return { ok: false, reason: 'wrong-vehicle' };
    if (!verifyHandshakeMac(this.#keys(), m)) return { ok: false, reason: 'auth-failed' };
    if (this.#pending === null) return { ok: false, reason: 'no-pending' };
    if (!m.airRandom.equals(this.#pending.airRandom)) return { ok: false, reason: 'stale-reply' };
    const k = deriveSessionKeys(this.#psk, this.vehicleId, this.#pending.airRandom, m.groundRandom);
    this.#pending = null; // one REPLY per HELLO: a duplicate now gets 'no-pending'
    this.#previous?.wipe();
    this.#previous = this.#current;
    this.#current = new SessionState(k.sessionId, k.up, k.down, 'up', this.#limits.replayWindowBits);
    return { ok: true, sessionId: this.#current.idHex };
  }

  /**
   * A gateway asks for a new handshake (it lost our session, or wants a rekey). Accepted only if
   * authentic AND naming our current session, so a recorded REHELLO is useless once that session
   * is gone. Returns the HELLO to publish: the outstanding one if a handshake is already running
   * (resending it is idempotent at the gateway), else a new one.
   */
  onRehello(bytes: Uint8Array): RehelloResult {
    const d = decodeHandshake(bytes);
    if (!d.ok) return d;
    const m = d.message;
    if (m.type !== 'rehello') return { ok: false, reason: 'bad-type' };
    if (m.vehicleId !== this.vehicleId) return { ok: false, reason: 'wrong-vehicle' };
    if (!verifyHandshakeMac(this.#keys(), m)) return { ok: false, reason: 'auth-failed' };
    if (this.#current === null || !m.sessionId.equals(this.#current.id)) return { ok: false, reason: 'unknown-session' };
    return { ok: true, hello: this.#pending?.hello ?? this.startHello() };
  }

  seal(kind: PayloadKindName, body: Uint8Array, topic: string, opts: SealOptions = {}): SealResult {
    const s = this.#current;
    if (s === null) return { ok: false, reason: 'no-session' };
    if (opts.onlyInSession !== undefined && opts.onlyInSession !== s.idHex) return { ok: false, reason: 'session-changed' };
    return s.seal(this.#limits, this.vehicleId, kind, body, topic);
  }

  open(envelope: Uint8Array, topic: string): OpenResult {
    const h = sessionIdOfEnvelope(envelope);
    if (!h.ok) return h;
    const cur = this.#current;
    if (cur !== null && h.id === cur.idHex) {
      const r = cur.open(this.vehicleId, envelope, topic, h.counter);
      if (r.ok || r.reason === 'bad-kind') {
        this.#previous?.wipe();
        this.#previous = null;
      }
      return r;
    }
    if (this.#previous !== null && h.id === this.#previous.idHex) return this.#previous.open(this.vehicleId, envelope, topic, h.counter);
    return { ok: false, reason: 'unknown-session' };
  }
}

// ---------------------------------------------------------------------------------------------
// Ground side

/**
 * What lookupPsk returns: the vehicle's PSK, or during a key rotation's overlap its candidate PSKs
 * (current first, then the previous one: see KeyRing.candidates()), or undefined / an empty list
 * if the vehicle is not provisioned.
 */
export type PskLookupResult = SecretKey | readonly SecretKey[] | undefined;

export interface GroundSessionTableOptions {
  /**
   * The vehicle's PSK(s). Called on handshake messages only (never per envelope), so it may
   * consult a clock, e.g. to drop a rotated-out key at its expiry.
   */
  lookupPsk: (vehicleId: string) => PskLookupResult;
  randomBytes?: RandomBytesFn;
  limits?: SessionLimits;
  /** Unconfirmed sessions kept per vehicle (oldest evicted). Default 4. */
  maxPendingPerVehicle?: number;
}

export type HelloResult =
  | {
      ok: true;
      vehicleId: string;
      /** Publish to the vehicle. */
      reply: Buffer;
      /** Hex id of the pending session; it becomes current at its first authentic up envelope. */
      pendingSessionId: string;
    }
  | { ok: false; reason: HandshakeRejectReason };

export type RehelloRequestResult = { ok: true; rehello: Buffer } | { ok: false; reason: HandshakeRejectReason | 'short' | 'bad-version' | 'bad-type' };

interface PendingSession {
  airRandom: Buffer;
  reply: Buffer;
  state: SessionState;
  /** The PSK whose HELLO MAC verified: the session's keys derive from it. */
  psk: SecretKey;
}

interface VehicleState {
  current: SessionState | null;
  /** The PSK the current session derives from (REHELLOs for it are MAC'd with this one). */
  currentPsk: SecretKey | null;
  /** Oldest first. */
  pending: PendingSession[];
}

function candidatesOf(r: PskLookupResult): readonly SecretKey[] {
  if (r === undefined) return [];
  return r instanceof SecretKey ? [r] : r;
}

/**
 * The gateway's side: per-vehicle sessions. State for a vehicle is created only by a HELLO whose
 * MAC verifies, so unauthenticated traffic cannot grow the table. A HELLO never disturbs the
 * current session: it adds a pending one, which replaces the current one only when the first
 * authentic up envelope under it arrives (proof that the air holds it). A fresh instance (gateway
 * reboot) knows no session; the caller answers 'unknown-session' with onUnknownSession().
 */
export class GroundSessionTable {
  readonly #lookupPsk: (vehicleId: string) => PskLookupResult;
  readonly #rnd: RandomBytesFn;
  readonly #limits: ResolvedLimits;
  readonly #maxPending: number;
  readonly #vehicles = new Map<string, VehicleState>();
  /**
   * Per provisioned vehicle with several candidate PSKs and no session here: which candidate the
   * next REHELLO is MAC'd with (round robin; the air ignores REHELLOs under a key it lacks).
   * Bounded by the fleet: entries exist only for vehicles lookupPsk knows.
   */
  readonly #rehelloTurn = new Map<string, number>();

  constructor(opts: GroundSessionTableOptions) {
    this.#lookupPsk = opts.lookupPsk;
    this.#rnd = opts.randomBytes ?? defaultRandomBytes;
    this.#limits = resolveLimits(opts.limits);
    this.#maxPending = opts.maxPendingPerVehicle ?? 4;
    if (!Number.isInteger(this.#maxPending) || this.#maxPending < 1) throw new MavmqError(ErrorCodes.CRYPTO, 'maxPendingPerVehicle must be >= 1');
  }

  sessionId(vehicleId: string): string | null {
    return this.#vehicles.get(vehicleId)?.current?.idHex ?? null;
  }

  needsRekey(vehicleId: string): boolean {
    const cur = this.#vehicles.get(vehicleId)?.current;
    return cur !== null && cur !== undefined && cur.needsRekey(this.#limits);
  }

  stats(vehicleId: string): SessionStats | null {
    return this.#vehicles.get(vehicleId)?.current?.stats() ?? null;
  }

  /** Drops all state of a vehicle (e.g. its PSK was revoked: sessions derived from it must end now, not at the next rekey). */
  forget(vehicleId: string): void {
    const v = this.#vehicles.get(vehicleId);
    if (!v) return;
    v.current?.wipe();
    for (const p of v.pending) p.state.wipe();
    this.#vehicles.delete(vehicleId);
    this.#rehelloTurn.delete(vehicleId);
  }

  /**
   * The PSK a REHELLO to this vehicle is MAC'd with: the one its current session derives from if
   * it is still provisioned, else (no session here, e.g. after a gateway restart during a key
   * rotation) the candidates in turn, one per call, so an air holding either key gets one within
   * two rate-limited attempts.
   */
  #rehelloPsk(vehicleId: string): SecretKey | null {
    const candidates = candidatesOf(this.#lookupPsk(vehicleId));
    if (candidates.length === 0) return null;
    const known = this.#vehicles.get(vehicleId)?.currentPsk;
    if (known) {
      const same = candidates.find((c) => c.equals(known));
      if (same) return same;
    }
    if (candidates.length === 1) {
      this.#rehelloTurn.delete(vehicleId);
      return candidates[0] ?? null;
    }
    const turn = this.#rehelloTurn.get(vehicleId) ?? 0;
    this.#rehelloTurn.set(vehicleId, turn + 1);
    return candidates[turn % candidates.length] ?? null;
  }

  onHello(bytes: Uint8Array): HelloResult {
    const d = decodeHandshake(bytes);
    if (!d.ok) return d;
    const m = d.message;
    if (m.type !== 'hello') return { ok: false, reason: 'bad-type' };
    const candidates = candidatesOf(this.#lookupPsk(m.vehicleId));
    if (candidates.length === 0) return { ok: false, reason: 'unknown-vehicle' };
    // During a key rotation's overlap the vehicle may hold either key: the one whose MAC verifies
    // is the one the session derives from (and the REPLY is MAC'd with).
    let psk: SecretKey | undefined;
    let keys: HandshakeKeys | undefined;
    for (const c of candidates) {
      const k = deriveHandshakeKeys(c, m.vehicleId);
      if (verifyHandshakeMac(k, m)) {
        psk = c;
        keys = k;
        break;
      }
    }
    if (psk === undefined || keys === undefined) return { ok: false, reason: 'auth-failed' };

    let v = this.#vehicles.get(m.vehicleId);
    if (!v) {
      v = { current: null, currentPsk: null, pending: [] };
      this.#vehicles.set(m.vehicleId, v);
    }
    // Same HELLO again (MQTT QoS 1 duplicate, or the air resending after REHELLO): same REPLY.
    const same = v.pending.find((p) => p.airRandom.equals(m.airRandom));
    if (same) return { ok: true, vehicleId: m.vehicleId, reply: same.reply, pendingSessionId: same.state.idHex };

    // A fresh groundRandom makes even a replayed HELLO yield never-before-used keys.
    const groundRandom = randomOf(this.#rnd, RANDOM_BYTES);
    const k = deriveSessionKeys(psk, m.vehicleId, m.airRandom, groundRandom);
    const p: PendingSession = {
      airRandom: Buffer.from(m.airRandom),
      reply: encodeReply(keys, m.vehicleId, groundRandom, m.airRandom),
      state: new SessionState(k.sessionId, k.down, k.up, 'down', this.#limits.replayWindowBits),
      psk,
    };
    v.pending.push(p);
    while (v.pending.length > this.#maxPending) v.pending.shift()?.state.wipe();
    return { ok: true, vehicleId: m.vehicleId, reply: p.reply, pendingSessionId: p.state.idHex };
  }

  /** vehicleId comes from the topic the envelope arrived on; it is also bound into the AAD. */
  open(vehicleId: string, envelope: Uint8Array, topic: string): OpenResult {
    const h = sessionIdOfEnvelope(envelope);
    if (!h.ok) return h;
    const v = this.#vehicles.get(vehicleId);
    if (!v) return { ok: false, reason: 'unknown-session' };
    if (v.current !== null && v.current.idHex === h.id) return v.current.open(vehicleId, envelope, topic, h.counter);
    const i = v.pending.findIndex((p) => p.state.idHex === h.id);
    const pending = v.pending[i];
    if (pending === undefined) return { ok: false, reason: 'unknown-session' };
    const r = pending.state.open(vehicleId, envelope, topic, h.counter);
    if (!r.ok && r.reason !== 'bad-kind') return r;
    // Key confirmation: only the holder of the PSK and this REPLY could have produced that tag.
    v.current?.wipe();
    v.current = pending.state;
    v.currentPsk = pending.psk;
    this.#rehelloTurn.delete(vehicleId);
    v.pending.splice(i, 1);
    for (const other of v.pending) other.state.wipe();
    v.pending = [];
    return r.ok ? { ...r, newSession: true } : r;
  }

  seal(vehicleId: string, kind: PayloadKindName, body: Uint8Array, topic: string, opts: SealOptions = {}): SealResult {
    const s = this.#vehicles.get(vehicleId)?.current ?? null;
    if (s === null) return { ok: false, reason: 'no-session' };
    if (opts.onlyInSession !== undefined && opts.onlyInSession !== s.idHex) return { ok: false, reason: 'session-changed' };
    return s.seal(this.#limits, vehicleId, kind, body, topic);
  }

  /**
   * Builds a REHELLO for an envelope whose session we don't know (typically: we rebooted), so the
   * air starts a new handshake. The MAC makes it unforgeable and the session id makes it useless
   * against any other session. Rate-limit calls per vehicle (the caller has the clock): the
   * envelopes that trigger it are unauthenticated.
   */
  onUnknownSession(vehicleId: string, envelope: Uint8Array): RehelloRequestResult {
    const h = decodeHeader(envelope);
    if (!h.ok) return h;
    const v = this.#vehicles.get(vehicleId);
    const id = h.header.sessionId.toString('hex');
    if (v && (v.current?.idHex === id || v.pending.some((p) => p.state.idHex === id))) return { ok: false, reason: 'known-session' };
    return this.#rehello(vehicleId, h.header.sessionId);
  }

  /** Asks the air to rekey the current session (e.g. when needsRekey(vehicleId) turned true here). */
  requestRekey(vehicleId: string): RehelloRequestResult {
    const cur = this.#vehicles.get(vehicleId)?.current;
    if (!cur) return { ok: false, reason: 'no-session' };
    return this.#rehello(vehicleId, cur.id);
  }

  #rehello(vehicleId: string, sessionId: Buffer): RehelloRequestResult {
    if (!isValidVehicleId(vehicleId)) return { ok: false, reason: 'bad-vehicle-id' };
    const psk = this.#rehelloPsk(vehicleId);
    if (psk === null) return { ok: false, reason: 'unknown-vehicle' };
    return { ok: true, rehello: encodeRehello(deriveHandshakeKeys(psk, vehicleId), vehicleId, randomOf(this.#rnd, RANDOM_BYTES), sessionId) };
  }
}
