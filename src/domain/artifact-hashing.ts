// How oidc-provider artifacts are stored without the values that redeem them (docs/master-key.md). A
// refresh token, code, opaque access token, session id or interaction id presented to Postern is
// proof of something, so a read-only copy of the database must hold none of them: each artifact is
// stored under HMAC-SHA-256 of its value, and the few bearer values the provider must read back
// from a row (a session's id when it is found by its uid, an interaction's return URL) are sealed
// with AES-256-GCM. Both keys derive from the artifact key, a server secret sealed under the master
// key, so a dump alone gives away neither. A leaf module (domain/): no I/O, no oidc-provider.
import { createCipheriv, createDecipheriv, createHmac, createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { sha256Hex } from './crypto.ts';

/**
 * Models stored as presented, because their ids are not bearer values. A grant's id never leaves
 * the server (tokens carry a digest of it, `gid`), and it is the key by which a grant's codes and
 * tokens are revoked. A replay-detection entry is the jti of an assertion or DPoP proof that was
 * already used, claimed with one atomic insert.
 */
const CLEAR_MODELS: ReadonlySet<string> = new Set(['Grant', 'ReplayDetection']);

/**
 * Bearer values kept in a payload that the provider reads back, sealed instead of stored. Every
 * model's own id (`jti`) is left out of the row and put back from the value presented; a session
 * found by its uid (the session binding of codes and tokens) and a device code found by its user
 * code need theirs from the row. A session's uid and a token's `sessionUid`, `grantId` and `sid`
 * stay readable: nothing accepts them as proof (the first three never leave the server; `sid`
 * goes out in ID tokens, for logout, which needs the session cookie besides).
 */
const SEALED_FIELDS: Readonly<Record<string, readonly (readonly string[])[]>> = {
  Session: [['jti']],
  DeviceCode: [['jti'], ['userCode']],
  // The return URL ends with the interaction's own id; the session part holds the session
  // cookie's value; the device code and pushed request it continues are looked up by value.
  Interaction: [['returnTo'], ['session', 'cookie'], ['deviceCode'], ['parJti']],
};

const SEALED = 'sealed';
const NONCE_BYTES = 12; // NIST SP 800-38D §8.2.2: random 96-bit nonces
const TAG_BYTES = 16; // SP 800-38D §5.2.1.2: the full tag
const SECRET_TEXT = /^[A-Za-z0-9_-]{43}$/;

/** A row of oidc_payloads as stored: the hashed id, the payload without bearer values. */
export interface StoredArtifact {
  id: string;
  payload: Record<string, unknown>;
  /** The keyed hash of a device code's user code (the indexed `user_code` column). */
  userCode: string | null;
}

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Removes the value at `path` from `target` (copying the objects on the way, never changing the caller's). */
function take(target: Json, path: readonly string[]): unknown {
  const [head, ...rest] = path as [string, ...string[]];
  if (!Object.hasOwn(target, head)) return undefined;
  if (rest.length === 0) {
    const value = target[head];
    delete target[head];
    return value;
  }
  const inner = target[head];
  if (!isObject(inner)) return undefined;
  const copy = { ...inner };
  target[head] = copy;
  return take(copy, rest);
}

function put(target: Json, path: readonly string[], value: unknown): void {
  const [head, ...rest] = path as [string, ...string[]];
  if (rest.length === 0) {
    target[head] = value;
    return;
  }
  const copy = isObject(target[head]) ? { ...target[head] } : {};
  target[head] = copy;
  put(copy, rest, value);
}

/** The artifact key: hashes artifact ids and seals bearer values inside payloads. Never printed. */
export class ArtifactKey {
  readonly #idKey: KeyObject;
  readonly #sealKey: KeyObject;
  // Introspection looks one token up as three models in one turn: the same value, hashed once.
  #lastValue: string | undefined;
  #lastDigest = '';

  private constructor(secret: Buffer) {
    // RFC 5869: one secret, two independent keys (the hash of ids never meets the cipher's key).
    const derive = (info: string) => createSecretKey(Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), info, 32)));
    this.#idKey = derive('postern artifact ids');
    this.#sealKey = derive('postern artifact fields');
    secret.fill(0);
  }

  /** From the stored server secret: 32 bytes, base64url. */
  static fromSecret(text: string): ArtifactKey {
    if (!SECRET_TEXT.test(text)) throw new Error('the artifact key must be 32 bytes in base64url');
    return new ArtifactKey(Buffer.from(text, 'base64url'));
  }

  /** A new secret for the artifact key, to store sealed under the master key. */
  static generateSecret(): string {
    return randomBytes(32).toString('base64url');
  }

  /** HMAC-SHA-256 of `value`, base64url (43 characters). */
  digest(value: string): string {
    if (value !== this.#lastValue) {
      this.#lastDigest = createHmac('sha256', this.#idKey).update(value, 'utf8').digest('base64url');
      this.#lastValue = value;
    }
    return this.#lastDigest;
  }

  /** The id an artifact of `model` with the value `value` is stored under. */
  storedId(model: string, value: string): string {
    if (CLEAR_MODELS.has(model)) return value;
    // Registration access tokens were stored under their SHA-256 before the artifact key existed;
    // hashing that digest lets those rows be converted without their value.
    if (model === 'RegistrationAccessToken') return this.digest(sha256Hex(value));
    return this.digest(value);
  }

  /** What to store for the artifact the provider saves as `id`, `payload`. */
  protect(model: string, id: string, payload: Json): StoredArtifact {
    if (CLEAR_MODELS.has(model)) return { id, payload, userCode: null };
    const storedId = this.storedId(model, id);
    const stored: Json = { ...payload };
    delete stored.jti;
    const userCode = typeof payload.userCode === 'string' ? this.digest(payload.userCode) : null;
    const sealed: Json = {};
    for (const path of SEALED_FIELDS[model] ?? []) {
      const value = path.length === 1 && path[0] === 'jti' ? id : take(stored, path);
      if (value !== undefined) sealed[path.join('.')] = value;
    }
    if (Object.keys(sealed).length) stored[SEALED] = this.#seal(JSON.stringify(sealed), `${model}:${storedId}`);
    return { id: storedId, payload: stored, userCode };
  }

  /**
   * The payload the provider saved, from a stored row and the value it was found by (`jti`, when
   * it was found by id). Undefined when sealed fields do not open (the row was altered or moved).
   */
  restore(model: string, storedId: string, payload: Json, presentedId?: string): Json | undefined {
    if (CLEAR_MODELS.has(model)) return payload;
    const restored: Json = { ...payload };
    const sealed = take(restored, [SEALED]);
    if (typeof sealed === 'string') {
      const fields = this.#open(sealed, `${model}:${storedId}`);
      if (!fields) return undefined;
      for (const [path, value] of Object.entries(fields)) put(restored, path.split('.'), value);
    }
    if (presentedId !== undefined) restored.jti = presentedId;
    return restored;
  }

  /**
   * The hashed form of a row an older version wrote with its raw values (before migration 0011).
   * Registration access tokens were stored under their SHA-256 already: that digest is hashed.
   */
  convert(model: string, row: { id: string; payload: Json; userCode: string | null }): StoredArtifact {
    if (CLEAR_MODELS.has(model)) return { id: row.id, payload: row.payload, userCode: row.userCode };
    if (model === 'RegistrationAccessToken') return { id: this.digest(row.id), payload: row.payload, userCode: null };
    return this.protect(model, row.id, row.payload);
  }

  // The row an envelope belongs to is authenticated with it: copied into another row, it does not open.
  #seal(plaintext: string, context: string): string {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#sealKey, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return Buffer.concat([nonce, ciphertext, cipher.getAuthTag()]).toString('base64url');
  }

  #open(envelope: string, context: string): Json | undefined {
    const bytes = Buffer.from(envelope, 'base64url');
    if (bytes.length < NONCE_BYTES + TAG_BYTES) return undefined;
    const decipher = createDecipheriv('aes-256-gcm', this.#sealKey, bytes.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    try {
      const plaintext = Buffer.concat([decipher.update(bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
      const fields: unknown = JSON.parse(plaintext.toString('utf8'));
      return isObject(fields) ? fields : undefined;
    } catch {
      return undefined;
    }
  }

  toJSON(): string {
    return 'ArtifactKey';
  }

  [inspect.custom](): string {
    return 'ArtifactKey';
  }
}
