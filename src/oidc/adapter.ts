// oidc-provider's storage adapter over the oidc_payloads table, for every model but Client and
// InitialAccessToken (client-adapter.ts). Bearer values are stored hashed or sealed
// (src/domain/artifact-hashing.ts): each method turns the value the provider presents into the
// stored id.
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import type { ArtifactKey } from '../domain/artifact-hashing.ts';
import { grantDigest } from '../domain/crypto.ts';
import type { Db } from '../db/tables.ts';
import { writeAndPropagate } from '../propagation/index.ts';
import * as payloads from '../store/oidc-payloads.ts';
import { insertRevokedGrant } from '../store/revocations.ts';
import type { Directory } from './directory.ts';
import { ClientAdapter, InitialAccessTokenAdapter, type ClientAdapterOptions } from './client-adapter.ts';

export interface AdapterOptions extends ClientAdapterOptions {
  /** Hashes the ids of stored artifacts and seals the bearer values in them; the same in every process. */
  artifactKey: ArtifactKey;
}

type Waiter = { resolve(value: payloads.StoredPayload | undefined): void; reject(error: unknown): void };

/**
 * Looks artifacts up by stored id, merging the lookups made in the same turn: introspection and
 * revocation look a token up as an AccessToken, a ClientCredentials and a RefreshToken at once,
 * which becomes one query instead of three (the three share one hashed id).
 */
class PayloadReader {
  #db: Db;
  #pending = new Map<string, Map<string, Waiter[]>>();

  constructor(db: Db) {
    this.#db = db;
  }

  find(model: string, id: string): Promise<payloads.StoredPayload | undefined> {
    return new Promise((resolve, reject) => {
      let byModel = this.#pending.get(id);
      if (!byModel) {
        const batch = new Map<string, Waiter[]>();
        byModel = batch;
        this.#pending.set(id, batch);
        queueMicrotask(() => void this.#flush(id, batch));
      }
      byModel.set(model, [...(byModel.get(model) ?? []), { resolve, reject }]);
    });
  }

  async #flush(id: string, batch: Map<string, Waiter[]>): Promise<void> {
    this.#pending.delete(id);
    try {
      const found = await payloads.findPayloadsById(this.#db, [...batch.keys()], id);
      for (const [model, waiters] of batch) for (const waiter of waiters) waiter.resolve(found.get(model));
    } catch (error) {
      for (const waiters of batch.values()) for (const waiter of waiters) waiter.reject(error);
    }
  }
}

class PayloadAdapter implements Adapter {
  #db: Db;
  #model: string;
  #reader: PayloadReader;
  /** Absent only for replay detection, whose ids are not bearer values. */
  #key: ArtifactKey | undefined;

  constructor(db: Db, model: string, reader: PayloadReader, key?: ArtifactKey) {
    this.#db = db;
    this.#model = model;
    this.#reader = reader;
    this.#key = key;
  }

  /** The id a value is stored under: its keyed hash (a refresh token's, a session cookie's, ...). */
  #storedId(value: string): string {
    return this.#key ? this.#key.storedId(this.#model, value) : value;
  }

  /** The payload the provider saved: bearer values put back, from the value presented and the row. */
  #toPayload(stored: payloads.StoredPayload | undefined, presentedId?: string): AdapterPayload | undefined {
    if (!stored) return undefined;
    const payload = (this.#key
      ? this.#key.restore(this.#model, stored.id, stored.payload, presentedId)
      : stored.payload) as AdapterPayload | undefined;
    if (payload && stored.consumedAt) payload.consumed = Math.floor(stored.consumedAt.getTime() / 1000);
    return payload;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const expiresAt = expiresIn ? new Date(Date.now() + expiresIn * 1000) : null;
    const stored = this.#key
      ? this.#key.protect(this.#model, id, payload as Record<string, unknown>)
      : { id, payload: payload as Record<string, unknown>, userCode: null };
    await payloads.upsertPayload(this.#db, this.#model, stored.id, stored.payload, expiresAt, stored.userCode);
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.#toPayload(await this.#reader.find(this.#model, this.#storedId(id)), id);
  }

  /** A session by its uid, which is not a bearer value (stored as is); its id comes back sealed. */
  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.#toPayload(await payloads.findPayloadByUid(this.#db, this.#model, uid));
  }

  /** A device code by its user code, a bearer value typed by a person: looked up by its keyed hash. */
  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const stored = this.#key ? this.#key.digest(userCode) : userCode;
    return this.#toPayload(await payloads.findPayloadByUserCode(this.#db, this.#model, stored));
  }

  /**
   * oidc-provider ignores what consume returns, so two parallel requests with one code or refresh
   * token would both succeed. The conditional UPDATE lets exactly one through; the other gets
   * invalid_grant (RFC 6749 §4.1.2: a code must not be used more than once; §10.4 for refresh).
   */
  async consume(id: string): Promise<void> {
    if (!(await payloads.consumePayload(this.#db, this.#model, this.#storedId(id)))) {
      throw new errors.InvalidGrant();
    }
  }

  async destroy(id: string): Promise<void> {
    await payloads.deletePayload(this.#db, this.#model, this.#storedId(id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    if (this.#model !== 'AccessToken') {
      await payloads.deletePayloadsByGrantId(this.#db, grantId);
      return;
    }
    // The provider revokes a grant model by model, AccessToken always among them. JWT access
    // tokens are not stored: they carry the grant's digest, which goes on the revocation list
    // (RFC 6749 §4.1.2: tokens issued from a replayed code should be revoked; RFC 9700 §4.14.2
    // for refresh-token reuse).
    // Done only once every process knows: the next introspection anywhere, this process's own
    // included, must find the grant's JWTs revoked (its cache hears of it through the feed).
    await writeAndPropagate(this.#db, (revoked: { jti: string; exp: number }) => ({ kind: 'revoked', ...revoked }), async (trx) => {
      const revoked = await insertRevokedGrant(trx, { digest: grantDigest(grantId), clientId: '' });
      await payloads.deletePayloadsByGrantId(trx, grantId);
      return revoked;
    });
  }
}

/**
 * How long a used jti is remembered, at least. The provider asks for 300 s from first use, but a
 * DPoP proof without a nonce is accepted while its iat is within 300 s of the clock either way:
 * one first used 300 s before its iat stays acceptable 600 s (RFC 9449 §11.1). Proofs with a
 * nonce are accepted at most 240 s after the nonce was issued. Plus a minute for clocks of
 * processes that disagree.
 */
const REPLAY_MEMORY_SECONDS = 2 * 300 + 60;

/**
 * The jti of client assertions (RFC 7523 §3) and DPoP proofs (RFC 9449 §11.1), each usable once.
 * The provider asks `find` whether a jti was seen, then saves it: two parallel requests with one
 * assertion would both be told "not seen". Here `find` claims the jti atomically instead, so
 * exactly one of them goes on; `upsert` then stores its real expiry.
 */
class ReplayDetectionAdapter extends PayloadAdapter {
  #db: Db;

  constructor(db: Db, reader: PayloadReader) {
    super(db, 'ReplayDetection', reader);
    this.#db = db;
  }

  override async find(id: string): Promise<AdapterPayload | undefined> {
    const claimed = await payloads.claimPayloadId(this.#db, 'ReplayDetection', id, new Date(Date.now() + REPLAY_MEMORY_SECONDS * 1000));
    return claimed ? undefined : { jti: id };
  }

  override async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    await super.upsert(id, payload, Math.max(expiresIn, REPLAY_MEMORY_SECONDS));
  }
}

export type { ClientAdapterOptions, NetworkRefusal } from './client-adapter.ts';

export function createAdapterFactory(db: Db, directory: Directory, options: AdapterOptions) {
  const reader = new PayloadReader(db);
  return (model: string): Adapter => {
    if (model === 'Client') return new ClientAdapter(directory, options);
    if (model === 'InitialAccessToken') return new InitialAccessTokenAdapter(options.registration);
    if (model === 'ReplayDetection') return new ReplayDetectionAdapter(db, reader);
    return new PayloadAdapter(db, model, reader, options.artifactKey);
  };
}
