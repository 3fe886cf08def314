// The read model the token, introspection and revocation endpoints consult on every request:
// clients (metadata, secrets, granted scopes), APIs and revoked JWT ids. Cached per process while
// the change feed is live, so a token request does not query configuration; every change made by
// any process arrives through the feed and drops what it touches. Without a live feed (the
// embedded store, or Postgres notifications lost) it reads through to the database.
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { ChangeFeed } from '../db/change-feed.ts';
import type { Tables } from '../db/tables.ts';
import { findApiByIdentifier } from '../store/apis.ts';
import { parseChange, publishChange } from '../store/changes.ts';
import { findClientById, listClientSecrets } from '../store/clients.ts';
import { isTokenRevoked, listLiveRevocations } from '../store/revocations.ts';
import { listClientGrants } from '../store/roles.ts';

export interface ClientEntry {
  clientId: string;
  enabled: boolean;
  metadata: Record<string, unknown>;
  secrets: { hash: string; expiresAt: number | null }[];
  /** Per API identifier: the scopes the client's roles grant there, and those roles' names. */
  grants: Map<string, { scopes: Set<string>; roles: Set<string> }>;
  /** Every role name of the client that grants something. */
  roles: Set<string>;
}

export interface ApiEntry {
  id: string;
  identifier: string;
  scopes: Set<string>;
  tokenFormat: 'jwt' | 'opaque';
  signingAlg: string;
  accessTokenTtl: number;
  introspectionClientId: string | null;
}

export class Directory {
  #db: Kysely<Tables>;
  #changes: ChangeFeed | null;
  #clients = new Map<string, Promise<ClientEntry | undefined>>();
  #apis = new Map<string, Promise<ApiEntry | undefined>>();
  #revoked = new Map<string, number>();
  #revokedLoaded: Promise<void> | undefined;
  /** Bumped by every invalidation; a load that started before a bump is not cached. */
  #generation = 0;
  #unsubscribe: (() => void) | undefined;
  #waiters = new Map<string, () => void>();
  #sweep: NodeJS.Timeout;

  constructor(db: Kysely<Tables>, changes: ChangeFeed | null) {
    this.#db = db;
    this.#changes = changes;
    this.#unsubscribe = changes?.subscribe({
      onMessage: (payload) => this.#onChange(payload),
      onReset: () => this.#flush(),
    });
    this.#sweep = setInterval(() => this.#sweepRevoked(), 60_000);
    this.#sweep.unref();
  }

  close(): void {
    this.#unsubscribe?.();
    clearInterval(this.#sweep);
  }

  get #caching(): boolean {
    return this.#changes?.live === true;
  }

  #flush(): void {
    this.#generation += 1;
    this.#clients.clear();
    this.#apis.clear();
    this.#revoked.clear();
    this.#revokedLoaded = undefined;
  }

  #onChange(payload: string): void {
    const change = parseChange(payload);
    if (!change) return;
    if (change.kind === 'sync') {
      this.#waiters.get(`sync:${change.id}`)?.();
      return;
    }
    this.#generation += 1;
    if (change.kind === 'client') {
      this.#clients.delete(change.clientId);
    } else if (change.kind === 'revoked') {
      this.#revoked.set(change.jti, change.exp * 1000);
      this.#waiters.get(`revoked:${change.jti}`)?.();
    } else {
      this.#clients.clear();
      this.#apis.clear();
    }
  }

  async #cached<T>(map: Map<string, Promise<T>>, key: string, load: () => Promise<T>): Promise<T> {
    if (!this.#caching) return load();
    const hit = map.get(key);
    if (hit) return hit;
    const generation = this.#generation;
    const promise = load();
    map.set(key, promise);
    try {
      const value = await promise;
      // A change arrived while loading: the value may predate it.
      if (generation !== this.#generation && map.get(key) === promise) map.delete(key);
      return value;
    } catch (error) {
      if (map.get(key) === promise) map.delete(key);
      throw error;
    }
  }

  client(clientId: string): Promise<ClientEntry | undefined> {
    return this.#cached(this.#clients, clientId, () => this.#loadClient(clientId));
  }

  api(identifier: string): Promise<ApiEntry | undefined> {
    return this.#cached(this.#apis, identifier, () => this.#loadApi(identifier));
  }

  async isRevoked(jti: string): Promise<boolean> {
    if (!this.#caching) return isTokenRevoked(this.#db, jti);
    this.#revokedLoaded ??= this.#loadRevoked().catch((error: unknown) => {
      this.#revokedLoaded = undefined;
      throw error;
    });
    await this.#revokedLoaded;
    return this.#revoked.has(jti);
  }

  /**
   * Resolves when the notification with this key has come back through the feed, or after
   * `timeoutMs`. Register before committing the change it waits for.
   */
  #awaitNotification(key: string, timeoutMs = 2000): Promise<void> {
    if (!this.#caching) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(key);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#waiters.set(key, done);
    });
  }

  /**
   * Resolves once a revocation's notification is back, so that the revoking request is answered
   * only when every process sharing the database has been told (Postgres delivers to all
   * listeners at commit). Call before committing the revocation.
   */
  awaitRevocation(jti: string): Promise<void> {
    return this.#awaitNotification(`revoked:${jti}`);
  }

  /**
   * Resolves once this process has received every change committed before the call (read your
   * writes after changing configuration in the same process).
   */
  async sync(): Promise<void> {
    if (!this.#caching) return;
    const id = randomUUID();
    const received = this.#awaitNotification(`sync:${id}`);
    await publishChange(this.#db, { kind: 'sync', id });
    await received;
  }

  async #loadRevoked(): Promise<void> {
    const rows = await listLiveRevocations(this.#db, new Date());
    // Revocation is final, so merging with what notifications added meanwhile is always right.
    for (const row of rows) this.#revoked.set(row.jti, row.expires_at.getTime());
  }

  #sweepRevoked(): void {
    const now = Date.now();
    for (const [jti, exp] of this.#revoked) if (exp <= now) this.#revoked.delete(jti);
  }

  async #loadClient(clientId: string): Promise<ClientEntry | undefined> {
    const row = await findClientById(this.#db, clientId);
    if (!row) return undefined;
    const [secrets, grantRows] = await Promise.all([
      listClientSecrets(this.#db, clientId),
      listClientGrants(this.#db, clientId),
    ]);
    const grants = new Map<string, { scopes: Set<string>; roles: Set<string> }>();
    const roles = new Set<string>();
    for (const grant of grantRows) {
      const entry = grants.get(grant.identifier) ?? { scopes: new Set<string>(), roles: new Set<string>() };
      entry.scopes.add(grant.scope);
      entry.roles.add(grant.role_name);
      grants.set(grant.identifier, entry);
      roles.add(grant.role_name);
    }
    return {
      clientId,
      enabled: row.enabled,
      metadata: row.metadata,
      secrets: secrets.map((secret) => ({ hash: secret.secret_hash, expiresAt: secret.expires_at?.getTime() ?? null })),
      grants,
      roles,
    };
  }

  async #loadApi(identifier: string): Promise<ApiEntry | undefined> {
    const row = await findApiByIdentifier(this.#db, identifier);
    if (!row) return undefined;
    return {
      id: row.id,
      identifier: row.identifier,
      scopes: new Set(row.scopes),
      tokenFormat: row.token_format,
      signingAlg: row.signing_alg,
      accessTokenTtl: row.access_token_ttl,
      introspectionClientId: row.introspection_client_id,
    };
  }
}
