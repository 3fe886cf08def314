// Use-cases for the server's key material: token signing keys, cookie keys and other server
// secrets, kept in the database encrypted with the master key (docs/master-key.md). Decryption happens here, at start; the
// running server holds the decrypted keys in memory.
import { randomBytes } from 'node:crypto';
import type { JWK } from 'jose';
import { ArtifactKey } from '../domain/artifact-hashing.ts';
import type { Db } from '../db/tables.ts';
import { DecryptionError, envelopeFingerprint, openSecret, sealSecret, type MasterKey } from '../domain/key-encryption.ts';
import { generateSigningKeys, publicJwk, type PrivateKey } from '../domain/signing-keys.ts';
import * as keys from '../store/keys.ts';
import { conflict, invalid } from './errors.ts';
import { deriveKeyState } from '../domain/key-state.ts';

const COOKIE_KEYS = 'cookie_keys';
/** HMAC key of DPoP server nonces (RFC 9449 §8): shared by every process, so any one accepts a nonce another issued. */
const DPOP_NONCE_SECRET = 'dpop_nonce_secret';
/** The artifact key: tokens, codes and session ids are stored under an HMAC with it (src/domain/artifact-hashing.ts). */
const ARTIFACT_KEY = 'artifact_key';

// Each ciphertext is bound to its row: a value copied into another row fails to decrypt.
export const signingKeyContext = (kid: string) => `signing_keys:${kid}`;

/** A signing key's private JWK sealed under `masterKey`, bound to its kid. */
const sealSigningKey = (masterKey: MasterKey, key: PrivateKey) =>
  sealSecret(masterKey, JSON.stringify(key.privateJwk), signingKeyContext(key.kid));

/**
 * Stores a new signing key: its public JWK, and its private JWK sealed under `masterKey`.
 * Without dates it is published and signs at once (the first keys).
 */
export async function insertSealedSigningKey(
  trx: Db,
  masterKey: MasterKey,
  key: PrivateKey,
  dates: { createdAt?: Date; activatesAt?: Date } = {},
): Promise<void> {
  await keys.insertSigningKey(trx, {
    kid: key.kid,
    alg: key.alg,
    publicJwk: publicJwk(key.privateJwk) as Record<string, unknown>,
    encryptedPrivateJwk: sealSigningKey(masterKey, key),
    ...dates,
  });
}
const serverSecretContext = (name: string) => `server_secrets:${name}`;

export interface KeyMaterial {
  signingKeys: PrivateKey[];
  cookieKeys: string[];
  /** 32 bytes, base64url. */
  dpopNonceSecret: string;
  /** 32 bytes, base64url: the secret of ArtifactKey. The same in every process, and never changed. */
  artifactKey: string;
}

const newDpopNonceSecret = () => randomBytes(32).toString('base64url');

/** Server secrets added after the first key material: made by the first start that lacks them. */
const ADDED_SECRETS: readonly { name: string; generate: () => string }[] = [
  { name: DPOP_NONCE_SECRET, generate: newDpopNonceSecret },
  { name: ARTIFACT_KEY, generate: ArtifactKey.generateSecret },
];

/**
 * The configured master key cannot open the database's key material. Raised before anything is
 * written; the message names fingerprints and rows, never key material.
 */
export class MasterKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MasterKeyError';
  }
}

/** `keyring[0]` is the current master key; more keys may open values but never seal new ones. */
export type Keyring = readonly [MasterKey, ...MasterKey[]];

function explain(error: unknown, what: string, keyring: Keyring): unknown {
  if (!(error instanceof DecryptionError)) return error;
  const current = keyring[0];
  const configured = keyring.map((key) => key.fingerprint).join(', ');
  switch (error.reason) {
    case 'wrong_key':
      return new MasterKeyError(`${current.source} does not match the key the database was encrypted with `
        + `(the ${what} is encrypted under fingerprint ${error.sealedWith}; the configured key has fingerprint ${configured}); `
        + 'nothing was changed');
    case 'integrity':
      return new MasterKeyError(`the encrypted ${what} fails its integrity check under master key ${error.sealedWith} `
        + '(it was altered, or copied from another row); nothing was changed');
    default:
      return new MasterKeyError(`the ${what} in the database is not a valid encrypted value; nothing was changed`);
  }
}

function openValue(keyring: Keyring, envelope: string, context: string, what: string): string {
  try {
    return openSecret(keyring, envelope, context);
  } catch (error) {
    throw explain(error, what, keyring);
  }
}

export function readSigningKey(row: keys.SigningKeyRow, keyring: Keyring): PrivateKey {
  const privateJwk = row.encrypted_private_jwk === null
    ? row.private_jwk
    : JSON.parse(openValue(keyring, row.encrypted_private_jwk, signingKeyContext(row.kid), `signing key ${row.kid}`));
  return { kid: row.kid, alg: row.alg, privateJwk: privateJwk as JWK };
}

function readServerSecret(row: keys.ServerSecretRow, keyring: Keyring): string {
  return row.encrypted_value === null
    ? row.value!
    : openValue(keyring, row.encrypted_value, serverSecretContext(row.name), `server secret ${row.name}`);
}

/** Every row decrypted (or still plaintext), in a transaction holding the key-material lock. */
async function readAll(trx: Db, keyring: Keyring) {
  await keys.lockKeyMaterial(trx);
  const keyRows = await keys.listSigningKeys(trx);
  const secretRows = await keys.listServerSecrets(trx);
  // Decrypt everything before writing anything: a wrong key or a damaged row changes nothing.
  return {
    signingKeys: keyRows.map((row) => ({ row, key: readSigningKey(row, keyring) })),
    secrets: secretRows.map((row) => ({ row, value: readServerSecret(row, keyring) })),
  };
}

export interface OpenedKeyMaterial {
  /** The keys to serve with; undefined when the database has none yet. */
  material: KeyMaterial | undefined;
  /** Rows stored in plaintext before migration 0004 that this call encrypted. */
  encrypted: number;
}

/**
 * Opens the key material at start (server and CLI): checks that the master key opens every row,
 * then encrypts any row still in plaintext with `keyring[0]`. One transaction under a lock, so
 * processes starting together encrypt each row once; a second call finds nothing to do.
 */
export async function openKeyMaterial(db: Db, keyring: Keyring): Promise<OpenedKeyMaterial> {
  return db.transaction().execute(async (trx) => {
    const all = await readAll(trx, keyring);
    let encrypted = 0;
    for (const { row, key } of all.signingKeys) {
      if (row.encrypted_private_jwk !== null) continue;
      await keys.setEncryptedPrivateJwk(trx, row.kid, sealSigningKey(keyring[0], key));
      encrypted += 1;
    }
    for (const { row, value } of all.secrets) {
      if (row.encrypted_value !== null) continue;
      await keys.setEncryptedServerSecret(trx, row.name, sealSecret(keyring[0], value, serverSecretContext(row.name)));
      encrypted += 1;
    }
    const now = Date.now();
    const signingKeys = all.signingKeys.filter(({ row }) => deriveKeyState(row, now) !== 'retired').map(({ key }) => key);
    const cookie = all.secrets.find(({ row }) => row.name === COOKIE_KEYS)?.value;
    if (signingKeys.length === 0 || !cookie) return { material: undefined, encrypted };
    const added = new Map<string, string>();
    for (const { name, generate } of ADDED_SECRETS) {
      const value = all.secrets.find(({ row }) => row.name === name)?.value;
      if (value) {
        added.set(name, value);
        continue;
      }
      // Key material made before this secret existed: add it once, under the same lock.
      added.set(name, generate());
      await keys.insertServerSecret(trx, name, sealSecret(keyring[0], added.get(name)!, serverSecretContext(name)));
    }
    return {
      material: {
        signingKeys,
        cookieKeys: JSON.parse(cookie) as string[],
        dpopNonceSecret: added.get(DPOP_NONCE_SECRET)!,
        artifactKey: added.get(ARTIFACT_KEY)!,
      },
      encrypted,
    };
  });
}

/** Whether the database holds signing keys (any schema version; opens nothing). */
export async function hasSigningKeys(db: Db): Promise<boolean> {
  return (await keys.countSigningKeys(db)) > 0;
}

/** Creates signing keys and server secrets, stored encrypted with `masterKey`. Refuses when keys exist. */
export async function generateKeyMaterial(db: Db, masterKey: MasterKey): Promise<KeyMaterial> {
  const signingKeys = await generateSigningKeys();
  const cookieKeys = [randomBytes(32).toString('base64url')];
  const dpopNonceSecret = newDpopNonceSecret();
  const artifactKey = ArtifactKey.generateSecret();
  return db.transaction().execute(async (trx) => {
    // Under the lock: two development processes starting on one empty database make one set.
    await keys.lockKeyMaterial(trx);
    if ((await keys.countSigningKeys(trx)) > 0) {
      throw conflict('signing keys exist already');
    }
    for (const key of signingKeys) await insertSealedSigningKey(trx, masterKey, key);
    await keys.insertServerSecret(trx, COOKIE_KEYS, sealSecret(masterKey, JSON.stringify(cookieKeys), serverSecretContext(COOKIE_KEYS)));
    await keys.insertServerSecret(trx, DPOP_NONCE_SECRET,
      sealSecret(masterKey, dpopNonceSecret, serverSecretContext(DPOP_NONCE_SECRET)));
    await keys.insertServerSecret(trx, ARTIFACT_KEY, sealSecret(masterKey, artifactKey, serverSecretContext(ARTIFACT_KEY)));
    return { signingKeys, cookieKeys, dpopNonceSecret, artifactKey };
  });
}

export interface MasterKeyRotation {
  signingKeys: number;
  serverSecrets: number;
  /** Fingerprints the rows were encrypted under before. */
  from: string[];
  to: string;
}

/**
 * Re-encrypts every private key and server secret under `newKey`, in one transaction: either all
 * rows move to the new key or none does. The keys and secrets themselves stay the same (a new
 * artifact key would orphan every stored token, code and session). Running servers are not
 * disturbed: they decrypted their keys at start and read them again only when they restart.
 */
export async function rotateMasterKey(db: Db, keyring: Keyring, newKey: MasterKey): Promise<MasterKeyRotation> {
  if (newKey.fingerprint === keyring[0].fingerprint) {
    throw invalid(`the new master key is the current one (fingerprint ${newKey.fingerprint})`);
  }
  return db.transaction().execute(async (trx) => {
    const all = await readAll(trx, keyring);
    const from = new Set<string>();
    for (const { row, key } of all.signingKeys) {
      from.add(row.encrypted_private_jwk === null ? 'plaintext' : envelopeFingerprint(row.encrypted_private_jwk)!);
      await keys.setEncryptedPrivateJwk(trx, row.kid, sealSigningKey(newKey, key));
    }
    for (const { row, value } of all.secrets) {
      from.add(row.encrypted_value === null ? 'plaintext' : envelopeFingerprint(row.encrypted_value)!);
      await keys.setEncryptedServerSecret(trx, row.name, sealSecret(newKey, value, serverSecretContext(row.name)));
    }
    // Before committing, prove the new key opens what was written (a failure rolls everything back).
    const check = await readAll(trx, [newKey]);
    return { signingKeys: check.signingKeys.length, serverSecrets: check.secrets.length, from: [...from], to: newKey.fingerprint };
  });
}
