// Signing-key rotation without a restart (docs/keys.md, "Key rotation"). A rotation adds a new key
// of every type, published at once and signing only after the propagation delay; the keys it
// replaces stop signing at that moment and stay published until every token they signed has
// expired. Servers follow by reloading the published set (change feed and timers, oidc/ side).
import type { JWK } from 'jose';
import type { Db } from '../db/tables.ts';
import { envelopeFingerprint, type MasterKey } from '../domain/key-encryption.ts';
import {
  generateSigningKeys, publicJwk, SIGNED_TOKEN_MAX_LIFETIME_SECONDS, type KeySet, type KeyState, type PublishedKey,
} from '../domain/signing-keys.ts';
import { writeAndPublish, type Change } from '../propagation/index.ts';
import * as keys from '../store/keys.ts';
import { conflict, notFound } from './errors.ts';
import { deriveKeyState, nextKeyTransition } from '../domain/key-state.ts';
import { insertSealedSigningKey, MasterKeyError, readSigningKey, type Keyring } from './keys.ts';

const DAY_MS = 86_400_000;

/**
 * Servers load the new set by themselves once told (oidc/provider-holder.ts), so a key change is
 * published without waiting for acknowledgements, which would promise nothing about the reload.
 */
const KEYS: Change = { kind: 'keys' };

export interface KeyView {
  kid: string;
  alg: string;
  kty: string;
  state: KeyState;
  /** Published in JWKS from here on. */
  createdAt: string;
  /** Signs from here on (unless a newer key of its type does). */
  activatesAt: string;
  /** Stops signing here; null while no newer key is scheduled. */
  retiresAt: string | null;
  /** Leaves the JWKS here, once every token it signed has expired. */
  removeAfter: string | null;
}

const iso = (date: Date | null) => date?.toISOString() ?? null;

/** Public facts of each signing key and its state at `now`; needs no master key. */
export async function listKeys(db: Db, now = Date.now()): Promise<KeyView[]> {
  return (await keys.listSigningKeys(db)).map((row) => ({
    kid: row.kid,
    alg: row.alg,
    kty: String(row.public_jwk.kty),
    state: deriveKeyState(row, now),
    createdAt: row.created_at.toISOString(),
    activatesAt: row.activates_at.toISOString(),
    retiresAt: iso(row.retires_at),
    removeAfter: iso(row.remove_after),
  }));
}

export interface KeyRotation {
  trigger: 'manual' | 'schedule';
  rotatedAt: string;
  /** Published now; each becomes the signing key of its type at activatesAt. */
  added: { kid: string; alg: string; kty: string; activatesAt: string }[];
  /** The keys they replace: signing until retiresAt, published until removeAfter. */
  retiring: { kid: string; alg: string; retiresAt: string; removeAfter: string }[];
  /** Fingerprint of the master key the new private keys are encrypted under. */
  masterKey: string;
}

export interface RotationOptions {
  /** Seconds between publication and signing: longer than any client's JWKS cache. */
  propagationSeconds: number;
  now?: number;
}

/** The master key that sealed the stored keys: new keys are sealed under the same one. */
function sealingKey(rows: keys.SigningKeyRow[], keyring: Keyring): MasterKey {
  const fingerprints = new Set(rows.map((row) => row.encrypted_private_jwk && envelopeFingerprint(row.encrypted_private_jwk))
    .filter((value): value is string => Boolean(value)));
  if (fingerprints.size === 0) return keyring[0];
  const key = keyring.find((candidate) => fingerprints.has(candidate.fingerprint));
  // A process still holding the master key from before `keys rotate-master` must not add keys
  // under it: the next start, with the new key, could not open them.
  if (!key || fingerprints.size > 1) {
    throw new MasterKeyError(`the signing keys are encrypted under master key ${[...fingerprints].join(', ')}; `
      + `this process has ${keyring.map((each) => each.fingerprint).join(', ')}: restart it with the current master key; nothing was changed`);
  }
  return key;
}

/** Whether the schedule calls for a rotation: no rotation under way and the newest key is old enough. */
function rotationDue(rows: keys.SigningKeyRow[], now: number, rotationDays: number): boolean {
  if (rotationDays <= 0 || rows.length === 0) return false;
  if (rows.some((row) => deriveKeyState(row, now) === 'next')) return false;
  const newest = Math.max(...rows.map((row) => row.activates_at.getTime()));
  return now - newest >= rotationDays * DAY_MS;
}

async function rotate(
  db: Db,
  keyring: Keyring,
  options: RotationOptions & { trigger: KeyRotation['trigger']; dueAfterDays?: number },
): Promise<KeyRotation | undefined> {
  // Made before the transaction: an RSA key takes a moment, and the lock is held meanwhile.
  const fresh = await generateSigningKeys();
  // Delivered at commit: every server reloads its keys and publishes the new ones.
  return writeAndPublish(db, (rotation) => (rotation ? KEYS : []), async (trx) => {
    await keys.lockKeyMaterial(trx);
    const now = options.now ?? Date.now();
    const rows = await keys.listSigningKeys(trx);
    // Under the lock: of several processes finding the rotation due, the first rotates and the
    // others find it under way.
    if (options.dueAfterDays !== undefined && !rotationDue(rows, now, options.dueAfterDays)) return undefined;
    if (rows.length === 0) throw conflict('there are no signing keys to rotate: create them with `postern keys generate`');
    const pending = rows.filter((row) => deriveKeyState(row, now) === 'next');
    if (pending.length) {
      throw conflict(`a rotation is under way: ${pending.map((row) => row.kid).join(', ')} become active at `
        + `${pending[0]!.activates_at.toISOString()}; rotate again after that`);
    }
    const masterKey = sealingKey(rows, keyring);
    const rotatedAt = new Date(now);
    const activatesAt = new Date(now + options.propagationSeconds * 1000);
    const removeAfter = new Date(activatesAt.getTime() + SIGNED_TOKEN_MAX_LIFETIME_SECONDS * 1000);
    const replaced = rows.filter((row) => deriveKeyState(row, now) === 'active');
    await keys.scheduleRetirement(trx, replaced.map((row) => row.kid), activatesAt, removeAfter);
    for (const key of fresh) await insertSealedSigningKey(trx, masterKey, key, { createdAt: rotatedAt, activatesAt });
    return {
      trigger: options.trigger,
      rotatedAt: rotatedAt.toISOString(),
      added: fresh.map((key) => ({ kid: key.kid, alg: key.alg, kty: String(key.privateJwk.kty), activatesAt: activatesAt.toISOString() })),
      retiring: replaced.map((row) => ({
        kid: row.kid, alg: row.alg, retiresAt: activatesAt.toISOString(), removeAfter: removeAfter.toISOString(),
      })),
      masterKey: masterKey.fingerprint,
    };
  });
}

/**
 * `postern keys rotate`: adds a new key of every type, published now and signing after the
 * propagation delay. Refused while an earlier rotation's keys are not active yet.
 */
export async function rotateSigningKeys(db: Db, keyring: Keyring, options: RotationOptions): Promise<KeyRotation> {
  return (await rotate(db, keyring, { ...options, trigger: 'manual' }))!;
}

/**
 * The automatic schedule: rotates when the newest key has been active for `rotationDays` and no
 * rotation is under way; undefined otherwise. Safe to call from every process at once.
 */
export async function rotateSigningKeysIfDue(
  db: Db,
  keyring: Keyring,
  options: RotationOptions & { rotationDays: number },
): Promise<KeyRotation | undefined> {
  const now = options.now ?? Date.now();
  // A cheap look first, so that the usual "not due" takes no lock and makes no keys.
  if (!rotationDue(await keys.listSigningKeys(db), now, options.rotationDays)) return undefined;
  return rotate(db, keyring, { ...options, now, trigger: 'schedule', dueAfterDays: options.rotationDays });
}

export interface KeyRevocation {
  revokedAt: string;
  revoked: { kid: string; alg: string; state: KeyState };
  /** The key of its algorithm that signs from now on, when the revoked one was signing. */
  replacement: { kid: string; alg: string; created: boolean } | undefined;
}

/**
 * `postern keys revoke <kid>`, for a leaked key: it leaves the JWKS at once on every server, so
 * nothing it signed verifies or introspects any more (RFC 7662 §2.2: inactive). When it was the
 * signing key of its algorithm, another signs from now on: one a rotation had scheduled, brought
 * forward, or a new one. Without a propagation delay: a verifier that cached the JWKS learns of
 * the new key at its next fetch (an unknown kid makes most libraries fetch at once).
 */
export async function revokeSigningKey(db: Db, keyring: Keyring, kid: string, now = Date.now()): Promise<KeyRevocation> {
  // Made before the lock (an RSA key takes a moment); used only if a replacement is needed.
  const fresh = await generateSigningKeys();
  // Delivered at commit: every server reloads its keys and stops publishing this one.
  return writeAndPublish(db, KEYS, async (trx) => {
    await keys.lockKeyMaterial(trx);
    const rows = await keys.listSigningKeys(trx);
    const target = rows.find((row) => row.kid === kid);
    if (!target) throw notFound(`unknown signing key "${kid}"`);
    const state = deriveKeyState(target, now);
    if (state === 'retired') throw conflict(`signing key ${kid} has left the JWKS already`);
    const at = new Date(now);
    const sameAlg = rows.filter((row) => row.alg === target.alg && row.kid !== kid);
    // The signer of an algorithm is its newest active key (createKeySetLoader).
    const signing = state === 'active'
      && !sameAlg.some((row) => deriveKeyState(row, now) === 'active' && row.activates_at > target.activates_at);
    let replacement: KeyRevocation['replacement'];
    if (signing) {
      const scheduled = sameAlg.filter((row) => deriveKeyState(row, now) === 'next')
        .sort((a, b) => a.activates_at.getTime() - b.activates_at.getTime())[0];
      if (scheduled) {
        await keys.activateSigningKeyAt(trx, scheduled.kid, at);
        replacement = { kid: scheduled.kid, alg: scheduled.alg, created: false };
      } else {
        const key = fresh.find((each) => each.alg === target.alg);
        if (!key) throw conflict(`no key type for ${target.alg}: rotate the keys instead`);
        await insertSealedSigningKey(trx, sealingKey(rows, keyring), key, { createdAt: at, activatesAt: at });
        replacement = { kid: key.kid, alg: key.alg, created: true };
      }
    }
    await keys.retireSigningKeyNow(trx, kid, at);
    return { revokedAt: at.toISOString(), revoked: { kid, alg: target.alg, state }, replacement };
  });
}

/** Orders the signing key of each type first, then next keys, then retiring ones. */
const ORDER: Record<PublishedKey['state'], number> = { active: 1, next: 2, retiring: 3 };

/**
 * Makes a loader of the published key set at a moment, for a server. Private keys are decrypted
 * once per key and remembered (a later master-key rotation does not disturb a running server);
 * a key this process cannot open is still published and verified with, but never signs.
 */
export function createKeySetLoader(db: Db, keyring: Keyring): (now: number) => Promise<KeySet> {
  const opened = new Map<string, JWK>();
  return async (now) => {
    const rows = await keys.listPublishedSigningKeys(db, new Date(now));
    const unopened: string[] = [];
    const published: PublishedKey[] = [];
    for (const row of rows) {
      const state = deriveKeyState(row, now);
      if (state === 'retired') continue;
      let privateJwk = opened.get(row.kid);
      if (!privateJwk) {
        try {
          privateJwk = readSigningKey(row, keyring).privateJwk;
          opened.set(row.kid, privateJwk);
        } catch {
          unopened.push(row.kid);
        }
      }
      published.push({ kid: row.kid, alg: row.alg, state, publicJwk: publicJwk(row.public_jwk as JWK), privateJwk, signs: false });
    }
    // One signing key per type: the newest active one; should this process be unable to open it,
    // the key it replaced (still published, so its tokens verify everywhere) rather than none.
    const newestFirst = [...rows].sort((a, b) => b.activates_at.getTime() - a.activates_at.getTime());
    for (const alg of new Set(published.map((key) => key.alg))) {
      const candidates = newestFirst.map((row) => published.find((key) => key.kid === row.kid))
        .filter((key): key is PublishedKey => key?.alg === alg && key.privateJwk !== undefined);
      const signer = candidates.find((key) => key.state === 'active') ?? candidates.find((key) => key.state === 'retiring');
      if (signer) signer.signs = true;
    }
    published.sort((a, b) => Number(b.signs) - Number(a.signs) || ORDER[a.state] - ORDER[b.state]);
    const transitions = rows.map((row) => nextKeyTransition(row, now)).filter((time): time is number => time !== undefined);
    for (const kid of [...opened.keys()]) if (!rows.some((row) => row.kid === kid)) opened.delete(kid);
    return { keys: published, changesAt: transitions.length ? Math.min(...transitions) : undefined, unopened };
  };
}
