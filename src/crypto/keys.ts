/**
 * Pre-shared keys: the in-memory wrapper that never prints its bytes, and the key file.
 *
 * Key file format (docs/PROTOCOL.md §3): exactly one line,
 *
 *     mavmq-psk-v1 <43 characters of unpadded base64url = 32 bytes>\n
 *
 * The version tag lets a future format coexist; base64url keeps the line short and shell-safe.
 */
import { randomBytes as nodeRandomBytes, timingSafeEqual } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { inspect } from 'node:util';
import { ErrorCodes, MavmqError } from '../errors.js';

export const PSK_LENGTH_BYTES = 32;
export const KEY_FILE_TAG = 'mavmq-psk-v1';
/** 32 bytes in unpadded base64url. */
const KEY_B64_CHARS = 43;
/** Anything bigger is certainly not our one-line file; don't read megabytes by mistake. */
const KEY_FILE_MAX_BYTES = 256;

/** Injectable randomness: tests and test vectors pass a deterministic one. */
export type RandomBytesFn = (lengthBytes: number) => Uint8Array;
export const defaultRandomBytes: RandomBytesFn = (n) => nodeRandomBytes(n);

const REDACTED = '[redacted]';

/**
 * Secret key material. The bytes live in a private field, and every way a value usually reaches
 * a log (JSON.stringify, util.inspect/console.log, string interpolation) yields "[redacted]".
 */
export class SecretKey {
  readonly #bytes: Buffer;

  private constructor(bytes: Buffer) {
    this.#bytes = bytes;
  }

  /** Copies the bytes, so the caller may wipe its own buffer. */
  static fromBytes(bytes: Uint8Array, expectedLengthBytes?: number): SecretKey {
    if (expectedLengthBytes !== undefined && bytes.length !== expectedLengthBytes) {
      throw new MavmqError(ErrorCodes.CRYPTO, `secret key must be ${expectedLengthBytes} bytes, got ${bytes.length}`);
    }
    if (bytes.length === 0) throw new MavmqError(ErrorCodes.CRYPTO, 'secret key must not be empty');
    return new SecretKey(Buffer.from(bytes));
  }

  get lengthBytes(): number {
    return this.#bytes.length;
  }

  /**
   * The raw bytes, for handing to node:crypto only. Returns the internal buffer (no copy: this is
   * on the per-envelope path); never retain, mutate or log it.
   */
  unsafeBytes(): Buffer {
    return this.#bytes;
  }

  equals(other: SecretKey): boolean {
    const o = other.unsafeBytes();
    return o.length === this.#bytes.length && timingSafeEqual(o, this.#bytes);
  }

  /** Best-effort zeroing when a session ends (JS may have copies elsewhere; this is hygiene). */
  wipe(): void {
    this.#bytes.fill(0);
  }

  toJSON(): string {
    return REDACTED;
  }

  toString(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `SecretKey(${REDACTED})`;
  }
}

export function generateKey(randomBytes: RandomBytesFn = defaultRandomBytes): SecretKey {
  const bytes = Buffer.from(randomBytes(PSK_LENGTH_BYTES));
  const key = SecretKey.fromBytes(bytes, PSK_LENGTH_BYTES);
  bytes.fill(0);
  return key;
}

/** The exact file contents for a key (with the trailing newline). */
export function formatKeyFile(key: SecretKey): string {
  if (key.lengthBytes !== PSK_LENGTH_BYTES) {
    throw new MavmqError(ErrorCodes.CRYPTO, `a PSK must be ${PSK_LENGTH_BYTES} bytes, got ${key.lengthBytes}`);
  }
  return `${KEY_FILE_TAG} ${key.unsafeBytes().toString('base64url')}\n`;
}

const B64URL_RE = /^[A-Za-z0-9_-]*$/;

/**
 * Parses key file contents. Error messages describe the problem but NEVER quote the content:
 * a mangled file may still hold (most of) a key.
 */
export function parseKeyFile(text: string, pathForErrors = '<key>'): SecretKey {
  const fail = (message: string, hint?: string): never => {
    throw new MavmqError(ErrorCodes.KEY_FILE, `${pathForErrors}: ${message}`, {
      problems: [hint === undefined ? { path: pathForErrors, message } : { path: pathForErrors, message, hint }],
    });
  };
  const expected = `expected one line "${KEY_FILE_TAG} <43 base64url characters>"`;
  // Tolerate one trailing newline (LF or CRLF, editors add them) and nothing else.
  const body = text.replace(/\r?\n$/, '');
  if (body.length === 0) fail(`key file is empty; ${expected}`);
  if (/[\r\n]/.test(body)) fail(`key file has more than one line; ${expected}`);
  const parts = body.split(' ');
  if (parts.length !== 2 || parts[0] !== KEY_FILE_TAG) {
    fail(`key file does not start with "${KEY_FILE_TAG} "; ${expected}`);
  }
  const encoded = parts[1] ?? '';
  if (!B64URL_RE.test(encoded)) {
    fail('key contains characters outside base64url (A-Z a-z 0-9 - _; no padding)');
  }
  if (encoded.length !== KEY_B64_CHARS) {
    fail(`key must be ${KEY_B64_CHARS} base64url characters (${PSK_LENGTH_BYTES} bytes), got ${encoded.length}`);
  }
  const bytes = Buffer.from(encoded, 'base64url');
  // 43 chars carry 258 bits; the last 2 must be zero or two spellings would decode to one key.
  if (bytes.length !== PSK_LENGTH_BYTES || bytes.toString('base64url') !== encoded) {
    fail('key is not canonical base64url of 32 bytes');
  }
  const key = SecretKey.fromBytes(bytes, PSK_LENGTH_BYTES);
  bytes.fill(0);
  return key;
}

function keyFileError(path: string, message: string, cause: unknown, hint?: string): MavmqError {
  return new MavmqError(ErrorCodes.KEY_FILE, `${path}: ${message}`, {
    cause,
    problems: [hint === undefined ? { path, message } : { path, message, hint }],
  });
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

export interface WriteKeyFileOptions {
  /** Replace an existing file. Without it an existing file is an error (KEY_FILE). */
  force?: boolean;
  /** For tests: the temp name's random suffix. */
  randomBytes?: RandomBytesFn;
}

/**
 * Writes a key file atomically with mode 0600: the content goes to a temp file in the same
 * directory created O_EXCL with 0600 (and fchmod'ed, so the umask can't widen or narrow it),
 * fsync'ed, then moved into place. Without `force` the move is link(2), which fails if the target
 * exists, so there is no check-then-write race; with `force` it is rename(2).
 * A reader therefore sees either no file, the old file, or the complete new one.
 */
export async function writeKeyFile(path: string, key: SecretKey, opts: WriteKeyFileOptions = {}): Promise<void> {
  const contents = formatKeyFile(key);
  const rnd = opts.randomBytes ?? defaultRandomBytes;
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${Buffer.from(rnd(6)).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  try {
    handle = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  } catch (err) {
    throw keyFileError(path, `cannot create a file in ${dir}: ${errnoCode(err) ?? String(err)}`, err);
  }
  let placed = false;
  try {
    await handle.chmod(0o600);
    await handle.writeFile(contents, 'utf8');
    await handle.sync();
    await handle.close();
    handle = undefined;
    if (opts.force === true) {
      await rename(tmp, path);
      placed = true;
    } else {
      try {
        await link(tmp, path);
      } catch (err) {
        if (errnoCode(err) === 'EEXIST') {
          throw keyFileError(path, 'key file already exists; refusing to overwrite it', err, 'pass --force to replace it (the old key is lost)');
        }
        throw err;
      }
    }
    await syncDir(dir);
  } catch (err) {
    if (err instanceof MavmqError) throw err;
    throw keyFileError(path, `cannot write key file: ${errnoCode(err) ?? String(err)}`, err);
  } finally {
    await handle?.close().catch(() => undefined);
    if (!placed) await unlink(tmp).catch(() => undefined);
  }
}

/** Makes the new directory entry durable (power loss on a drone is routine). */
async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, fsConstants.O_RDONLY).catch(() => undefined);
  if (!d) return;
  try {
    await d.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the data itself is already synced.
  } finally {
    await d.close();
  }
}

/**
 * Reads and validates a key file. Refuses (KEY_PERMISSIONS) a file that group or others can
 * access in any way, like ssh does: a PSK readable by another account is a PSK of that account.
 * The mode is checked on the opened descriptor, so a swap between check and read is impossible.
 */
export async function readKeyFile(path: string): Promise<SecretKey> {
  let handle: FileHandle;
  try {
    // Symlinks are followed on purpose (deployments link keys into place); the mode check below
    // runs on the opened descriptor, i.e. on the file actually read. O_NONBLOCK: a FIFO at the
    // path must not hang startup (it is then rejected as not a regular file).
    handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') throw keyFileError(path, 'key file does not exist', err, 'generate a key and copy the same file to the vehicle and the gateway');
    throw keyFileError(path, `cannot open key file: ${code ?? String(err)}`, err);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw keyFileError(path, 'key file is not a regular file', undefined);
    if ((st.mode & 0o077) !== 0) {
      const message = `key file is accessible by group/others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); it must be 0600`;
      throw new MavmqError(ErrorCodes.KEY_PERMISSIONS, `${path}: ${message}`, {
        problems: [{ path, message, hint: `chmod 600 ${path}` }],
      });
    }
    if (st.size > KEY_FILE_MAX_BYTES) throw keyFileError(path, `key file is too large (${st.size} bytes) to be a key file`, undefined);
    const buf = Buffer.alloc(KEY_FILE_MAX_BYTES + 1);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    if (bytesRead > KEY_FILE_MAX_BYTES) throw keyFileError(path, 'key file is too large to be a key file', undefined);
    const text = buf.toString('utf8', 0, bytesRead);
    buf.fill(0);
    return parseKeyFile(text, path);
  } catch (err) {
    if (err instanceof MavmqError) throw err;
    throw keyFileError(path, `cannot read key file: ${errnoCode(err) ?? String(err)}`, err);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Key rotation (docs/OPERATIONS.md "Key rotation")
//
// `mavmq keys rotate` replaces ID.key with a new key and keeps the old one as ID.key.prev, with
// an expiry, in the same directory:
//
//     mavmq-psk-v1 <43 characters>\n
//     expires <ISO-8601 UTC time>\n
//
// Two lines, so a .prev file can never be mistaken for a current key (readKeyFile refuses a
// second line), and the expiry cannot get separated from the key it belongs to. Only the gateway
// reads .prev files: during the overlap it accepts HELLOs under either key, so vehicles can be
// re-keyed one at a time. The expiry is wall-clock time on the GATEWAY, which has a clock; the
// protocol itself still never depends on time (docs/PROTOCOL.md §1).

export const PREVIOUS_KEY_SUFFIX = '.prev';

/** The key a rotation replaced, and until when (ms since the epoch) the gateway still accepts it. */
export interface PreviousKey {
  key: SecretKey;
  expiresAtMs: number;
}

export function previousKeyPath(keyPath: string): string {
  return `${keyPath}${PREVIOUS_KEY_SUFFIX}`;
}

export function formatPreviousKeyFile(prev: PreviousKey): string {
  if (!Number.isFinite(prev.expiresAtMs)) throw new MavmqError(ErrorCodes.CRYPTO, 'previous key: expiry must be a finite time');
  return `${formatKeyFile(prev.key)}expires ${new Date(prev.expiresAtMs).toISOString()}\n`;
}

const EXPIRES_RE = /^expires (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z)$/;

/** Parses a .prev file; like parseKeyFile, errors never quote the content. */
export function parsePreviousKeyFile(text: string, pathForErrors = '<key.prev>'): PreviousKey {
  const lines = text.replace(/\r?\n$/, '').split(/\r?\n/);
  const [keyLine, expiresLine] = lines;
  if (lines.length !== 2 || keyLine === undefined || expiresLine === undefined) {
    const message = `expected two lines: "${KEY_FILE_TAG} <43 base64url characters>" and "expires <ISO-8601 UTC time>"`;
    throw new MavmqError(ErrorCodes.KEY_FILE, `${pathForErrors}: ${message}`, { problems: [{ path: pathForErrors, message, hint: 'a .prev file is written by `mavmq keys rotate`; delete it to stop accepting the old key' }] });
  }
  const key = parseKeyFile(keyLine, pathForErrors);
  const m = EXPIRES_RE.exec(expiresLine);
  const expiresAtMs = m?.[1] === undefined ? NaN : Date.parse(m[1]);
  if (!Number.isFinite(expiresAtMs)) {
    key.wipe();
    const message = 'second line must be "expires <ISO-8601 UTC time>", e.g. "expires 2030-01-31T12:00:00.000Z"';
    throw new MavmqError(ErrorCodes.KEY_FILE, `${pathForErrors}: ${message}`, { problems: [{ path: pathForErrors, message }] });
  }
  return { key, expiresAtMs };
}

/** Reads ID.key.prev next to a key file: null when there is none. Same permission rules as readKeyFile. */
export async function readPreviousKeyFile(keyPath: string): Promise<PreviousKey | null> {
  const path = previousKeyPath(keyPath);
  let text: string;
  try {
    text = await readSecretText(path);
  } catch (err) {
    if (err instanceof MavmqError && err.code === ErrorCodes.KEY_FILE && errnoCode(err.cause) === 'ENOENT') return null;
    throw err;
  }
  return parsePreviousKeyFile(text, path);
}

/** readKeyFile's open + mode check + bounded read, returning the text (for the .prev format). */
async function readSecretText(path: string): Promise<string> {
  let handle: FileHandle;
  try {
    handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    throw keyFileError(path, `cannot open key file: ${errnoCode(err) ?? String(err)}`, err);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw keyFileError(path, 'key file is not a regular file', undefined);
    if ((st.mode & 0o077) !== 0) {
      const message = `key file is accessible by group/others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); it must be 0600`;
      throw new MavmqError(ErrorCodes.KEY_PERMISSIONS, `${path}: ${message}`, { problems: [{ path, message, hint: `chmod 600 ${path}` }] });
    }
    const buf = Buffer.alloc(KEY_FILE_MAX_BYTES + 1);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    if (bytesRead > KEY_FILE_MAX_BYTES) throw keyFileError(path, 'key file is too large to be a key file', undefined);
    const text = buf.toString('utf8', 0, bytesRead);
    buf.fill(0);
    return text;
  } catch (err) {
    if (err instanceof MavmqError) throw err;
    throw keyFileError(path, `cannot read key file: ${errnoCode(err) ?? String(err)}`, err);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * A vehicle's keys as the gateway holds them: the current one and, during a rotation's overlap,
 * the previous one. `candidates()` is what GroundSessionTable's lookupPsk returns: the current
 * key first, then the previous one while it has not expired (checked at every call, so an
 * expiry takes effect without a restart).
 */
export class KeyRing {
  readonly current: SecretKey;
  readonly previous: PreviousKey | null;
  readonly #now: () => number;

  constructor(current: SecretKey, previous: PreviousKey | null = null, now: () => number = Date.now) {
    this.current = current;
    this.previous = previous;
    this.#now = now;
  }

  /** Reads KEYFILE and, if present, KEYFILE.prev (an expired .prev is loaded but never offered). */
  static async load(keyPath: string, now: () => number = Date.now): Promise<KeyRing> {
    const current = await readKeyFile(keyPath);
    const previous = await readPreviousKeyFile(keyPath);
    return new KeyRing(current, previous, now);
  }

  /** True while the previous key is still accepted. */
  get inOverlap(): boolean {
    return this.previous !== null && this.#now() < this.previous.expiresAtMs && !this.previous.key.equals(this.current);
  }

  candidates(): SecretKey[] {
    return this.inOverlap && this.previous !== null ? [this.current, this.previous.key] : [this.current];
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `KeyRing(${REDACTED}${this.previous ? `, previous expires ${new Date(this.previous.expiresAtMs).toISOString()}` : ''})`;
  }
}

export interface RotateKeyFileOptions {
  /** How long the gateway keeps accepting the old key. */
  overlapMs: number;
  now?: () => number;
  randomBytes?: RandomBytesFn;
  /** Rotate even though an earlier rotation's previous key has not expired yet (that key then stops working). */
  force?: boolean;
}

export interface RotateResult {
  current: SecretKey;
  previous: PreviousKey;
  keyPath: string;
  previousPath: string;
}

/**
 * Rotates KEYFILE: the old key goes to KEYFILE.prev (with the expiry) first, then the new key
 * replaces KEYFILE; both writes are atomic and 0600. A crash between the two leaves the old key in
 * both files, which is harmless, and running the command again completes the rotation.
 */
export async function rotateKeyFile(keyPath: string, opts: RotateKeyFileOptions): Promise<RotateResult> {
  if (!(opts.overlapMs >= 0) || !Number.isFinite(opts.overlapMs)) throw new MavmqError(ErrorCodes.USAGE, 'overlap must be a finite number of hours >= 0');
  const now = (opts.now ?? Date.now)();
  const old = await readKeyFile(keyPath);
  const existing = await readPreviousKeyFile(keyPath);
  if (existing !== null && existing.expiresAtMs > now && !existing.key.equals(old) && opts.force !== true) {
    const message = `a previous rotation is still in its overlap (until ${new Date(existing.expiresAtMs).toISOString()}); rotating again would cut off vehicles that still use that key`;
    throw new MavmqError(ErrorCodes.KEY_FILE, `${previousKeyPath(keyPath)}: ${message}`, {
      problems: [{ path: previousKeyPath(keyPath), message, hint: 'wait for the expiry, or pass --force if every vehicle already has the current key' }],
    });
  }
  existing?.key.wipe();
  const previous: PreviousKey = { key: old, expiresAtMs: now + opts.overlapMs };
  await writeSecretFile(previousKeyPath(keyPath), formatPreviousKeyFile(previous), opts.randomBytes ?? defaultRandomBytes);
  const current = generateKey(opts.randomBytes);
  await writeKeyFile(keyPath, current, { force: true, ...(opts.randomBytes ? { randomBytes: opts.randomBytes } : {}) });
  return { current, previous, keyPath, previousPath: previousKeyPath(keyPath) };
}

/** Atomic 0600 replace (temp + fsync + rename + directory fsync), for the .prev format. */
async function writeSecretFile(path: string, contents: string, rnd: RandomBytesFn): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${Buffer.from(rnd(6)).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  let placed = false;
  try {
    handle = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
    await handle.chmod(0o600);
    await handle.writeFile(contents, 'utf8');
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(tmp, path);
    placed = true;
    await syncDir(dir);
  } catch (err) {
    throw keyFileError(path, `cannot write key file: ${errnoCode(err) ?? String(err)}`, err);
  } finally {
    await handle?.close().catch(() => undefined);
    if (!placed) await unlink(tmp).catch(() => undefined);
  }
}
