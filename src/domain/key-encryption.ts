// Encryption at rest of the server's private key material: AES-256-GCM under a master key (the
// key-encryption key, KEK) that never enters the database. All of Postern's at-rest crypto lives
// here, so it can be reviewed in one place. A leaf module (domain/). Format: docs/master-key.md.
import { createCipheriv, createDecipheriv, createHash, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';

const KEY_BYTES = 32; // AES-256
// NIST SP 800-38D §5.2.1.1 and §8.2.2: 96-bit IVs, generated at random for every encryption.
// Random IVs stay safe up to 2^32 encryptions under one key (§8.3); Postern encrypts a handful of
// rows per key generation or master-key rotation, many orders of magnitude below that.
const NONCE_BYTES = 12;
// SP 800-38D §5.2.1.2: the full 128-bit tag (shorter tags weaken authenticity).
const TAG_BYTES = 16;
const VERSION = 'v1';
// 32 bytes are 43 base64 characters (plus one "=" of padding); both alphabets are accepted.
const KEY_TEXT = /^[A-Za-z0-9+/_-]{43}=?$/;

let keyObjectOf: (key: MasterKey) => KeyObject;

/**
 * A master key. The bytes stay inside a KeyObject and are never printed: logging or serializing
 * a MasterKey shows only its fingerprint and where it came from.
 */
export class MasterKey {
  readonly #key: KeyObject;
  /** A public identifier of the key (not the key): recorded in every envelope it seals. */
  readonly fingerprint: string;
  /** Where it came from, for messages: "POSTERN_MASTER_KEY", a file name, ... */
  readonly source: string;

  private constructor(bytes: Buffer, source: string) {
    this.#key = createSecretKey(bytes);
    // A domain-separated, truncated SHA-256: one-way, so it says nothing about a 256-bit random key,
    // and 64 bits are plenty to tell an operator's few keys apart.
    this.fingerprint = createHash('sha256').update('postern master key fingerprint\0').update(bytes)
      .digest('hex').slice(0, 16);
    this.source = source;
    bytes.fill(0);
  }

  /** Parses 32 bytes written in base64 or base64url. The error never repeats the text. */
  static parse(text: string, source: string): MasterKey {
    const trimmed = text.trim();
    if (!KEY_TEXT.test(trimmed)) {
      throw new Error(`${source} must be 32 random bytes in base64 or base64url (44 characters; `
        + 'create one with `openssl rand -base64 32`)');
    }
    return new MasterKey(Buffer.from(trimmed, 'base64'), source);
  }

  static generate(source: string): MasterKey {
    return new MasterKey(randomBytes(KEY_BYTES), source);
  }

  /** The key as base64 text, to write to a key file (and nowhere else). */
  exportText(): string {
    return this.#key.export().toString('base64');
  }

  withSource(source: string): MasterKey {
    return new MasterKey(this.#key.export(), source);
  }

  static {
    // Only sealSecret and openSecret below can reach the key itself.
    keyObjectOf = (key) => key.#key;
  }

  toJSON(): { fingerprint: string; source: string } {
    return { fingerprint: this.fingerprint, source: this.source };
  }

  [inspect.custom](): string {
    return `MasterKey(${this.fingerprint} from ${this.source})`;
  }
}

export type DecryptionFailure = 'wrong_key' | 'integrity' | 'format';

/** A value that cannot be decrypted. The message carries fingerprints only, never key material. */
export class DecryptionError extends Error {
  readonly reason: DecryptionFailure;
  /** The fingerprint of the key that sealed the value, when the envelope names one. */
  readonly sealedWith: string | undefined;

  constructor(reason: DecryptionFailure, sealedWith?: string) {
    super(reason === 'wrong_key' ? `sealed under master key ${sealedWith}, which is not configured`
      : reason === 'integrity' ? 'authentication tag mismatch' : 'not a Postern v1 envelope');
    this.name = 'DecryptionError';
    this.reason = reason;
    this.sealedWith = sealedWith;
  }
}

// The header (version, key fingerprint) and the row the value belongs to (`context`, e.g.
// "signing_keys:<kid>") are authenticated with the ciphertext: a value copied to another row, or
// given another header, fails the tag check instead of decrypting.
const aad = (fingerprint: string, context: string) => Buffer.from(`postern/${VERSION}/${fingerprint}/${context}`, 'utf8');

/** Encrypts `plaintext` for the row named by `context`: "v1.<fingerprint>.<nonce>.<ciphertext>.<tag>". */
export function sealSecret(key: MasterKey, plaintext: string, context: string): string {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keyObjectOf(key), nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad(key.fingerprint, context));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return [VERSION, key.fingerprint, nonce, ciphertext, cipher.getAuthTag()]
    .map((part) => (typeof part === 'string' ? part : part.toString('base64url'))).join('.');
}

/** The fingerprint of the key an envelope was sealed with, or undefined if it is not an envelope. */
export function envelopeFingerprint(envelope: string): string | undefined {
  const parts = envelope.split('.');
  return parts.length === 5 && parts[0] === VERSION && /^[0-9a-f]{16}$/.test(parts[1]!) ? parts[1] : undefined;
}

/**
 * Decrypts an envelope made by sealSecret for the same `context`, with whichever key of `keyring`
 * sealed it. Throws DecryptionError: `wrong_key` when no key has its fingerprint, `integrity` when
 * the tag does not verify (altered, or moved from another row), `format` when it is not an envelope.
 */
export function openSecret(keyring: readonly MasterKey[], envelope: string, context: string): string {
  const fingerprint = envelopeFingerprint(envelope);
  if (!fingerprint) throw new DecryptionError('format');
  const [, , nonceText, ciphertextText, tagText] = envelope.split('.') as [string, string, string, string, string];
  const nonce = Buffer.from(nonceText, 'base64url');
  const tag = Buffer.from(tagText, 'base64url');
  if (nonce.length !== NONCE_BYTES || tag.length !== TAG_BYTES) throw new DecryptionError('format', fingerprint);
  // Fingerprints are public, so choosing the key by plain comparison leaks nothing.
  const key = keyring.find((candidate) => candidate.fingerprint === fingerprint);
  if (!key) throw new DecryptionError('wrong_key', fingerprint);
  const decipher = createDecipheriv('aes-256-gcm', keyObjectOf(key), nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad(fingerprint, context));
  decipher.setAuthTag(tag);
  try {
    // OpenSSL compares the tag in constant time; nothing is returned unless it matches.
    return Buffer.concat([decipher.update(Buffer.from(ciphertextText, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new DecryptionError('integrity', fingerprint);
  }
}
