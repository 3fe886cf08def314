// oidc-provider's storage adapter over the oidc_payloads table, for every model but Client, which
// comes from the clients table through the Directory.
import type { Kysely } from 'kysely';
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { hashClientSecret } from '../crypto.ts';
import type { Tables } from '../db/tables.ts';
import * as payloads from '../store/oidc-payloads.ts';
import type { Directory } from './directory.ts';
import { requestContext, requestInfo, SERVICE_POLICY, toRegistrationError, type RegistrationHandlers } from './registration.ts';

function toPayload(stored: payloads.StoredPayload | undefined): AdapterPayload | undefined {
  if (!stored) return undefined;
  const payload = stored.payload as AdapterPayload;
  if (stored.consumedAt) payload.consumed = Math.floor(stored.consumedAt.getTime() / 1000);
  return payload;
}

type Waiter = { resolve(value: payloads.StoredPayload | undefined): void; reject(error: unknown): void };

/**
 * Looks artifacts up by id, merging the lookups made in the same turn: introspection and
 * revocation look a token up as an AccessToken, a ClientCredentials and a RefreshToken at once,
 * which becomes one query instead of three.
 */
class PayloadReader {
  #db: Kysely<Tables>;
  #pending = new Map<string, Map<string, Waiter[]>>();

  constructor(db: Kysely<Tables>) {
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
  #db: Kysely<Tables>;
  #model: string;
  #reader: PayloadReader;

  constructor(db: Kysely<Tables>, model: string, reader: PayloadReader) {
    this.#db = db;
    this.#model = model;
    this.#reader = reader;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const expiresAt = expiresIn ? new Date(Date.now() + expiresIn * 1000) : null;
    await payloads.upsertPayload(this.#db, this.#model, id, payload as Record<string, unknown>, expiresAt);
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return toPayload(await this.#reader.find(this.#model, id));
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return toPayload(await payloads.findPayloadByUid(this.#db, this.#model, uid));
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return toPayload(await payloads.findPayloadByUserCode(this.#db, this.#model, userCode));
  }

  /**
   * oidc-provider ignores what consume returns, so two parallel requests with one code or refresh
   * token would both succeed. The conditional UPDATE lets exactly one through; the other gets
   * invalid_grant (RFC 6749 §4.1.2: a code must not be used more than once; §10.4 for refresh).
   */
  async consume(id: string): Promise<void> {
    if (!(await payloads.consumePayload(this.#db, this.#model, id))) {
      throw new errors.InvalidGrant();
    }
  }

  async destroy(id: string): Promise<void> {
    await payloads.deletePayload(this.#db, this.#model, id);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await payloads.deletePayloadsByGrantId(this.#db, grantId);
  }
}

/**
 * Registration access tokens (RFC 7592) are bearer credentials: stored under the SHA-256 of their
 * value, never the value itself (as client secrets).
 */
class HashedIdAdapter extends PayloadAdapter {
  override async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    await super.upsert(hashClientSecret(id), { ...payload, jti: undefined }, expiresIn);
  }

  override async find(id: string): Promise<AdapterPayload | undefined> {
    const payload = await super.find(hashClientSecret(id));
    return payload && { ...payload, jti: id };
  }

  override async consume(id: string): Promise<void> {
    await super.consume(hashClientSecret(id));
  }

  override async destroy(id: string): Promise<void> {
    await super.destroy(hashClientSecret(id));
  }
}

/** Initial access tokens live in their own table (hashed, counted uses), made by the services. */
class InitialAccessTokenAdapter implements Adapter {
  #handlers: RegistrationHandlers | undefined;

  constructor(handlers: RegistrationHandlers | undefined) {
    this.#handlers = handlers;
  }

  async find(value: string): Promise<AdapterPayload | undefined> {
    const token = await this.#handlers?.findInitialAccessToken(value);
    if (!token) return undefined;
    return {
      jti: value,
      kind: 'InitialAccessToken',
      iat: Math.floor(token.createdAt.getTime() / 1000),
      exp: Math.floor(token.expiresAt.getTime() / 1000),
      policies: [SERVICE_POLICY],
    };
  }

  async upsert(): Promise<void> {
    throw new Error('initial access tokens are made by `postern registration-tokens create`');
  }

  async findByUid(): Promise<undefined> { return undefined; }
  async findByUserCode(): Promise<undefined> { return undefined; }
  async consume(): Promise<void> {}
  async destroy(): Promise<void> {}
  async revokeByGrantId(): Promise<void> {}
}

/**
 * Clients are managed through the services layer. The provider writes only for RFC 7591/7592
 * requests, which this hands to the registration handlers; anything else is refused.
 */
class ClientAdapter implements Adapter {
  #directory: Directory;
  #placeholderSecret: string;
  #handlers: RegistrationHandlers | undefined;

  constructor(directory: Directory, placeholderSecret: string, handlers: RegistrationHandlers | undefined) {
    this.#directory = directory;
    this.#placeholderSecret = placeholderSecret;
    this.#handlers = handlers;
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const client = await this.#directory.client(id);
    // A disabled or deleted client does not exist for the provider: invalid_client.
    if (!client?.enabled) return undefined;
    const metadata: AdapterPayload = { ...client.metadata };
    // The provider insists on a client_secret for secret-based auth methods. The real secrets are
    // only stored hashed and checked by compareClientSecret; this per-process random placeholder
    // is never accepted by anything (client_secret_jwt and HS* are disabled).
    if (String(metadata.token_endpoint_auth_method ?? 'client_secret_basic').startsWith('client_secret')) {
      metadata.client_secret = this.#placeholderSecret;
    }
    return metadata;
  }

  async upsert(clientId: string, metadata: AdapterPayload): Promise<void> {
    const ctx = requestContext.getStore();
    const route = ctx?.oidc?.route;
    const request = requestInfo(ctx);
    const initialAccessToken = ctx?.oidc?.entities.InitialAccessToken?.jti;
    try {
      if (route === 'registration' && this.#handlers && initialAccessToken) {
        await this.#handlers.create({ clientId, metadata, initialAccessToken, request });
      } else if (route === 'client_update' && this.#handlers) {
        await this.#handlers.update({ clientId, metadata, request });
      } else {
        throw new Error('clients are read-only for the provider');
      }
    } catch (error) {
      throw toRegistrationError(error);
    }
  }

  async findByUid(): Promise<undefined> { return undefined; }
  async findByUserCode(): Promise<undefined> { return undefined; }
  async consume(): Promise<void> {}
  async destroy(clientId: string): Promise<void> {
    const ctx = requestContext.getStore();
    if (ctx?.oidc?.route !== 'client_delete' || !this.#handlers) throw new Error('clients are read-only for the provider');
    try {
      await this.#handlers.remove({ clientId, request: requestInfo(ctx) });
    } catch (error) {
      throw toRegistrationError(error);
    }
  }

  async revokeByGrantId(): Promise<void> {}
}

export function createAdapterFactory(
  db: Kysely<Tables>,
  directory: Directory,
  placeholderSecret: string,
  registration?: RegistrationHandlers,
) {
  const reader = new PayloadReader(db);
  return (model: string): Adapter => {
    if (model === 'Client') return new ClientAdapter(directory, placeholderSecret, registration);
    if (model === 'InitialAccessToken') return new InitialAccessTokenAdapter(registration);
    if (model === 'RegistrationAccessToken') return new HashedIdAdapter(db, model, reader);
    return new PayloadAdapter(db, model, reader);
  };
}
