// Use-cases for the server's key material: token signing keys and cookie keys.
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { JWK } from 'jose';
import type { Tables } from '../db/tables.ts';
import { generateSigningKeys, publicJwk, type PrivateKey } from '../oidc/keys.ts';
import * as keys from '../store/keys.ts';
import { conflict } from './errors.ts';

const COOKIE_KEYS = 'cookie_keys';

export interface KeyMaterial {
  signingKeys: PrivateKey[];
  cookieKeys: string[];
}

/** The key material in the database, or undefined when it has none yet. */
export async function loadKeyMaterial(db: Kysely<Tables>): Promise<KeyMaterial | undefined> {
  const rows = (await keys.listSigningKeys(db)).filter((row) => row.state !== 'retired');
  const cookie = await keys.findServerSecret(db, COOKIE_KEYS);
  if (rows.length === 0 || !cookie) return undefined;
  return {
    signingKeys: rows.map((row) => ({ kid: row.kid, alg: row.alg, privateJwk: row.private_jwk as JWK })),
    cookieKeys: JSON.parse(cookie) as string[],
  };
}

/** Creates signing and cookie keys. Refuses when the database has some already. */
export async function generateKeyMaterial(db: Kysely<Tables>): Promise<KeyMaterial> {
  const signingKeys = await generateSigningKeys();
  const cookieKeys = [randomBytes(32).toString('base64url')];
  return db.transaction().execute(async (trx) => {
    if ((await keys.listSigningKeys(trx)).length > 0) {
      throw conflict('signing keys exist already');
    }
    for (const key of signingKeys) await keys.insertSigningKey(trx, key);
    await keys.insertServerSecret(trx, COOKIE_KEYS, JSON.stringify(cookieKeys));
    return { signingKeys, cookieKeys };
  });
}

export interface KeyView { kid: string; alg: string; kty: string; state: string; createdAt: string }

export async function listKeys(db: Kysely<Tables>): Promise<KeyView[]> {
  return (await keys.listSigningKeys(db)).map((row) => ({
    kid: row.kid,
    alg: row.alg,
    kty: String(publicJwk(row.private_jwk as JWK).kty),
    state: row.state,
    createdAt: row.created_at.toISOString(),
  }));
}
