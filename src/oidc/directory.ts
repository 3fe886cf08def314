// The read model the token, introspection and revocation endpoints consult on every request:
// clients (metadata, secrets, granted scopes), APIs and revoked JWT ids. Cached per process while
// changes arrive (src/propagation/), so a token request does not query configuration; every change
// made by any process drops what it touches. Without live changes (the embedded store, or Postgres
// notifications lost) it reads through to the database. Only a cache: registering this process,
// acknowledging writers and watching the feed are the propagation's (propagation/process.ts).
import { isRandomId } from '../domain/crypto.ts';
import type { Db } from '../db/tables.ts';
import { MAX_RESOURCE_LENGTH } from '../domain/parameter-limits.ts';
import { findApiByIdentifier } from '../store/apis.ts';
import { findClientById, listClientSecrets } from '../store/clients.ts';
import { listExchangeScopes } from '../store/exchange-permissions.ts';
import { isTokenRevoked, listLiveRevocations } from '../store/revocations.ts';
import { listClientGrants } from '../store/roles.ts';
import { detach } from '../domain/text.ts';
import type { Change, ChangeSource } from '../propagation/index.ts';
import { parseNetworks, type Network } from '../domain/networks.ts';

export interface ClientEntry {
  clientId: string;
  enabled: boolean;
  metadata: Record<string, unknown>;
  secrets: { hash: string; expiresAt: number | null }[];
  /** Per API identifier: the scopes the client's roles grant there, and those roles' names. */
  grants: Map<string, { scopes: Set<string>; roles: Set<string> }>;
  /** Every role name of the client that grants something. */
  roles: Set<string>;
  /** Epoch ms: the client's tokens issued before this are inactive (admin revoke-tokens). */
  tokensRevokedBefore: number | null;
  /** Where the client may authenticate from; empty: anywhere. */
  networks: Network[];
  /** Token exchange: per API identifier, the scopes it may ask for on others' behalf. */
  exchange: Map<string, Set<string>>;
  /** Its exchanged tokens carry no `act` naming it. */
  mayImpersonate: boolean;
}

export interface ApiEntry {
  id: string;
  identifier: string;
  scopes: Set<string>;
  tokenFormat: 'jwt' | 'opaque';
  signingAlg: string;
  accessTokenTtl: number;
  introspectionClientId: string | null;
  /** Tokens for this API must be DPoP-bound (RFC 9449). */
  requireDpop: boolean;
  /** Tokens for this API must be bound to the client's certificate (RFC 8705 §3). */
  requireMtls: boolean;
  /** The client that serves this API: the only one that may exchange its tokens. */
  ownerClientId: string | null;
}

export class Directory {
  #db: Db;
  #changes: ChangeSource | null;
  #clients = new Map<string, Promise<ClientEntry | undefined>>();
  #apis = new Map<string, Promise<ApiEntry | undefined>>();
  #revoked = new Map<string, number>();
  #revokedLoaded: Promise<void> | undefined;
  /** Bumped by every invalidation; a load that started before a bump is not cached. */
  #generation = 0;
  #unsubscribe: (() => void) | undefined;
  #sweep: NodeJS.Timeout;

  /** `changes`: null where there are none (the embedded store): every lookup reads through. */
  constructor(db: Db, changes: ChangeSource | null) {
    this.#db = db;
    this.#changes = changes;
    this.#unsubscribe = changes?.subscribe({
      onChange: (change) => this.#onChange(change),
      onReset: () => this.#flush(),
    });
    this.#sweep = setInterval(() => this.#sweepRevoked(), 60_000);
    this.#sweep.unref();
  }

  async close(): Promise<void> {
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

  #onChange(change: Change): void {
    // Signing keys are the provider holder's business, trusted issuers the verifier's, route
    // policies the route table's: none is cached here.
    if (change.kind === 'keys' || change.kind === 'issuer' || change.kind === 'routes') return;
    this.#generation += 1;
    if (change.kind === 'client') {
      this.#clients.delete(change.clientId);
    } else if (change.kind === 'revoked') {
      this.#revoked.set(change.jti, change.exp * 1000);
    } else {
      this.#clients.clear();
      this.#apis.clear();
    }
  }

  /**
   * Keys come from requests, so only what was found stays: a lookup that finds nothing is
   * forgotten once answered (else every made-up id would stay, and with it the request it was
   * cut from). The key kept is a copy (see detach).
   */
  async #cached<T>(map: Map<string, Promise<T | undefined>>, key: string, load: () => Promise<T | undefined>): Promise<T | undefined> {
    if (!this.#caching) return load();
    const hit = map.get(key);
    if (hit) return hit;
    const generation = this.#generation;
    const promise = load();
    const kept = detach(key);
    map.set(kept, promise);
    try {
      const value = await promise;
      // A change arrived while loading: the value may predate it.
      if ((value === undefined || generation !== this.#generation) && map.get(kept) === promise) map.delete(kept);
      return value;
    } catch (error) {
      if (map.get(kept) === promise) map.delete(kept);
      throw error;
    }
  }

  /** Client ids are generated (randomId): anything else names no client and is not looked up. */
  client(clientId: string): Promise<ClientEntry | undefined> {
    if (!isRandomId(clientId)) return Promise.resolve(undefined);
    return this.#cached(this.#clients, clientId, () => this.#loadClient(clientId));
  }

  /** API identifiers are at most MAX_RESOURCE_LENGTH long (services/validation.ts). */
  api(identifier: string): Promise<ApiEntry | undefined> {
    if (typeof identifier !== 'string' || identifier.length > MAX_RESOURCE_LENGTH) return Promise.resolve(undefined);
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
    const [secrets, grantRows, exchangeRows] = await Promise.all([
      listClientSecrets(this.#db, clientId),
      listClientGrants(this.#db, clientId),
      listExchangeScopes(this.#db, clientId),
    ]);
    const exchange = new Map<string, Set<string>>();
    for (const row of exchangeRows) exchange.set(row.identifier, (exchange.get(row.identifier) ?? new Set()).add(row.scope));
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
      clientId: row.client_id,
      enabled: row.enabled,
      metadata: row.metadata,
      secrets: secrets.map((secret) => ({ hash: secret.secret_hash, expiresAt: secret.expires_at?.getTime() ?? null })),
      grants,
      roles,
      tokensRevokedBefore: row.tokens_revoked_before?.getTime() ?? null,
      networks: parseNetworks(row.allowed_networks),
      exchange,
      mayImpersonate: row.may_impersonate,
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
      requireDpop: row.require_dpop,
      requireMtls: row.require_mtls,
      ownerClientId: row.owner_client_id,
    };
  }
}
