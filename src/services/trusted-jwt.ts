// Verifying a token a trusted issuer signed (a Kubernetes service-account token, a SPIFFE
// JWT-SVID, a GitHub Actions OIDC token): its signature by the issuer's current keys, its
// lifetime and audience, its jti used once, and the client bound to its subject. Used for
// federated client authentication (RFC 7523 §2.2, oidc/federated-client-auth.ts) and token exchange.
//
// Keys are fetched (platform/key-fetch.ts: deadline, size cap, no redirects) and kept per their
// Cache-Control, within bounds; a token naming a kid the cached set lacks re-fetches it, at most
// once per `refetchIntervalSeconds` per issuer, so made-up kids cannot make Postern hammer an
// issuer. Issuers and bindings are cached while the change feed is live, like oidc/directory.ts.
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, type JWTPayload } from 'jose';
import type { ArtifactKey } from '../domain/artifact-hashing.ts';
import { detach } from '../domain/text.ts';
import {
  issuerOfToken, MAX_TRUSTED_JWT_LENGTH, mismatchedClaim, signatureKeys, spiffeTrustDomain, TRUSTED_JWT_ALGS, type IssuerKind,
} from '../domain/trusted-issuers.ts';
import type { Db } from '../db/tables.ts';
import { fetchJson, maxAgeOf, type KeyFetchSettings } from '../platform/key-fetch.ts';
import type { ChangeSource } from '../propagation/index.ts';
import * as store from '../store/trusted-issuers.ts';
import { AssertionClaims } from './assertion-claims.ts';
import { verifyTrustedSignature } from './trusted-jwt-signature.ts';

/** A trusted issuer as verification sees it. */
export interface TrustedIssuer {
  id: string;
  name: string;
  issuer: string;
  kind: IssuerKind;
  jwksSource: 'discovery' | 'jwks_uri' | 'static';
  jwksUri: string | null;
  enabled: boolean;
}

/** Why a token was refused; each failure names one. */
export type TrustedJwtReason =
  | 'malformed' | 'unknown_issuer' | 'issuer_disabled' | 'keys_unavailable' | 'unknown_key' | 'bad_signature'
  | 'missing_exp' | 'expired' | 'not_yet_valid' | 'lifetime_too_long' | 'wrong_audience' | 'bad_subject' | 'replayed';

export class TrustedJwtError extends Error {
  readonly reason: TrustedJwtReason;
  constructor(reason: TrustedJwtReason, message: string) {
    super(message);
    this.name = 'TrustedJwtError';
    this.reason = reason;
  }
}

export interface VerifiedTrustedJwt {
  issuer: TrustedIssuer;
  claims: JWTPayload;
  /** The enabled client bound to (issuer, sub) whose required claims the token holds; null when none. */
  clientId: string | null;
  /** Why clientId is null: no client bound, a required claim missing or different, the client disabled. */
  unbound?: string;
}

export interface VerifyTrustedJwtOptions {
  /** The audiences accepted (one must be in `aud`); default: the verifier's (Postern's issuer and token endpoint). */
  audience?: string | string[];
  /** Record the jti so that the token is accepted once (default true; RFC 7523 §3 item 7). */
  singleUse?: boolean;
}

export interface TrustedJwtSettings {
  /** Longest lifetime (exp - iat, or exp - now without iat) accepted. */
  maxLifetimeSeconds: number;
  clockToleranceSeconds: number;
  /** Least time between two fetches of one issuer's keys caused by an unknown kid. */
  refetchIntervalSeconds: number;
  /** How long keys are kept when the answer has no Cache-Control max-age; and bounds on max-age. */
  defaultCacheSeconds: number;
  minCacheSeconds: number;
  maxCacheSeconds: number;
  fetch: KeyFetchSettings;
}

export interface TrustedJwtDeps {
  db: Db;
  changes: ChangeSource | null;
  artifactKey: ArtifactKey;
  /** Accepted in `aud` when the caller names none: Postern's issuer and token endpoint. */
  defaultAudience: string[];
  settings: TrustedJwtSettings;
  now?: () => number;
}

interface KeyEntry {
  /** What the keys were fetched from; another source (the issuer was changed) fetches again. */
  source: string;
  verify: ReturnType<typeof createLocalJWKSet>;
  kids: Set<string>;
  fetchedAt: number;
  expiresAt: number;
}

interface Binding { clientId: string; claims: Record<string, string>; enabled: boolean }

const toIssuer = (row: store.TrustedIssuerRow): TrustedIssuer => ({
  id: row.id, name: row.name, issuer: row.issuer, kind: row.kind, jwksSource: row.jwks_source, jwksUri: row.jwks_uri, enabled: row.enabled,
});

export class TrustedJwtVerifier {
  #deps: TrustedJwtDeps;
  #now: () => number;
  /** Every issuer by its `iss` (a few, set by operators), while changes arrive. */
  #issuers: Promise<Map<string, store.TrustedIssuerRow>> | undefined;
  #bindings = new Map<string, Promise<Binding | undefined>>();
  #keys = new Map<string, KeyEntry>();
  #loading = new Map<string, Promise<KeyEntry>>();
  #lastFetch = new Map<string, number>();
  #generation = 0;
  #unsubscribe: (() => void) | undefined;
  /** Used jtis, claimed in batches under load (assertion-claims.ts). */
  #claims: AssertionClaims;

  constructor(deps: TrustedJwtDeps) {
    this.#deps = deps;
    this.#claims = new AssertionClaims(deps.db);
    this.#now = deps.now ?? Date.now;
    this.#unsubscribe = deps.changes?.subscribe({
      onChange: (change) => {
        if (change.kind === 'issuer' || change.kind === 'client' || change.kind === 'config') this.#flush();
      },
      onReset: () => this.#flush(),
    });
  }

  close(): void {
    this.#unsubscribe?.();
  }

  #flush(): void {
    this.#generation += 1;
    this.#issuers = undefined;
    this.#bindings.clear();
  }

  get #caching(): boolean {
    return this.#deps.changes?.live === true;
  }

  /** Only what was found is kept (keys come from requests); see oidc/directory.ts. */
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
      if ((value === undefined || generation !== this.#generation) && map.get(kept) === promise) map.delete(kept);
      return value;
    } catch (error) {
      if (map.get(kept) === promise) map.delete(kept);
      throw error;
    }
  }

  /**
   * The trusted issuer of this `iss`: from the list of all of them while caching (an unknown
   * `iss` then costs no query), else from the database.
   */
  async #issuer(name: string): Promise<store.TrustedIssuerRow | undefined> {
    if (!this.#caching) return store.findIssuerByIssuer(this.#deps.db, name);
    const generation = this.#generation;
    const loading = this.#issuers ?? store.listIssuers(this.#deps.db).then((rows) => new Map(rows.map((row) => [row.issuer, row])));
    this.#issuers = loading;
    try {
      const issuers = await loading;
      if (generation !== this.#generation && this.#issuers === loading) this.#issuers = undefined;
      return issuers.get(name);
    } catch (error) {
      if (this.#issuers === loading) this.#issuers = undefined;
      throw error;
    }
  }

  /**
   * The token's issuer, signature, lifetime, audience and jti, then the client bound to its
   * subject. Throws TrustedJwtError with the reason on any failure.
   */
  async verifyTrustedJwt(token: string, opts: VerifyTrustedJwtOptions = {}): Promise<VerifiedTrustedJwt> {
    const { settings } = this.#deps;
    if (typeof token !== 'string' || token.length > MAX_TRUSTED_JWT_LENGTH) throw new TrustedJwtError('malformed', 'the token is not a JWT of acceptable size');
    let unverified: JWTPayload;
    let kid: string | undefined;
    try {
      unverified = decodeJwt(token);
      kid = decodeProtectedHeader(token).kid;
    } catch {
      throw new TrustedJwtError('malformed', 'the token is not a signed JWT');
    }
    const issuerName = issuerOfToken(unverified);
    const row = issuerName === undefined ? undefined : await this.#issuer(issuerName);
    if (!row) throw new TrustedJwtError('unknown_issuer', `the token's issuer${typeof unverified.iss === 'string' ? ` "${unverified.iss.slice(0, 200)}"` : ''} is not a trusted issuer`);
    const issuer = toIssuer(row);
    if (!issuer.enabled) throw new TrustedJwtError('issuer_disabled', `trusted issuer ${issuer.name} is disabled`);

    const claims = await this.#verifySignature(token, row, kid);
    this.#checkTimes(claims);
    this.#checkAudience(claims, opts.audience);
    if (typeof claims.sub !== 'string' || !claims.sub || claims.sub.length > 1000) throw new TrustedJwtError('bad_subject', 'the token has no subject (sub)');
    if (issuer.kind === 'spiffe') {
      // A JWT-SVID's subject is a SPIFFE ID; with a spiffe:// issuer, of that trust domain.
      const domain = spiffeTrustDomain(claims.sub);
      if (!domain || (issuer.issuer.startsWith('spiffe://') && issuer.issuer !== `spiffe://${domain}`)) {
        throw new TrustedJwtError('bad_subject', `the subject is not a SPIFFE ID of ${issuer.issuer}`);
      }
    }
    if (opts.singleUse !== false && typeof claims.jti === 'string') await this.#claimJti(issuer, claims.jti, claims.exp!);

    const binding = await this.#cached(this.#bindings, `${issuer.id}\n${claims.sub}`, () => this.#loadBinding(issuer.id, claims.sub!));
    if (!binding) return { issuer, claims, clientId: null, unbound: `no client is bound to subject "${claims.sub.slice(0, 200)}" of ${issuer.name}` };
    const mismatch = mismatchedClaim(claims as Record<string, unknown>, binding.claims);
    if (mismatch !== undefined) return { issuer, claims, clientId: null, unbound: `claim "${mismatch}" does not have the value the client requires` };
    if (!binding.enabled) return { issuer, claims, clientId: null, unbound: 'the client bound to this subject is disabled' };
    return { issuer, claims, clientId: binding.clientId };
  }

  /**
   * The client an assertion claims to be, unverified: for request limits and the invalid_client
   * back-off, which count per client whoever sends it. Only bound clients are named.
   */
  async claimedClientId(token: string): Promise<string | undefined> {
    if (typeof token !== 'string' || token.length > MAX_TRUSTED_JWT_LENGTH) return undefined;
    let claims: JWTPayload;
    try {
      claims = decodeJwt(token);
    } catch {
      return undefined;
    }
    const issuerName = issuerOfToken(claims);
    // A client's own assertion (private_key_jwt) has iss = sub = its client_id.
    if (issuerName === undefined || typeof claims.sub !== 'string' || claims.sub.length > 1000 || claims.iss === claims.sub) return undefined;
    const row = await this.#issuer(issuerName);
    if (!row) return undefined;
    const subject = claims.sub;
    const binding = await this.#cached(this.#bindings, `${row.id}\n${subject}`, () => this.#loadBinding(row.id, subject));
    return binding?.clientId;
  }

  async #loadBinding(issuerId: string, subject: string): Promise<Binding | undefined> {
    const row = await store.findFederationWithClient(this.#deps.db, issuerId, subject);
    return row ? { clientId: row.client_id, claims: row.claims, enabled: row.enabled } : undefined;
  }

  #checkTimes(claims: JWTPayload): void {
    const { maxLifetimeSeconds, clockToleranceSeconds: skew } = this.#deps.settings;
    const now = Math.floor(this.#now() / 1000);
    if (typeof claims.exp !== 'number') throw new TrustedJwtError('missing_exp', 'the token has no expiry (exp)');
    if (claims.exp + skew <= now) throw new TrustedJwtError('expired', 'the token has expired');
    if (typeof claims.nbf === 'number' && claims.nbf - skew > now) throw new TrustedJwtError('not_yet_valid', 'the token is not valid yet (nbf)');
    if (typeof claims.iat === 'number' && claims.iat - skew > now) throw new TrustedJwtError('not_yet_valid', 'the token was issued in the future (iat)');
    const from = typeof claims.iat === 'number' ? claims.iat : now;
    if (claims.exp - from > maxLifetimeSeconds) {
      throw new TrustedJwtError('lifetime_too_long', `the token lives longer than ${maxLifetimeSeconds} s; ask the platform for a shorter one`);
    }
  }

  #checkAudience(claims: JWTPayload, wanted: string | string[] | undefined): void {
    const accepted = wanted === undefined ? this.#deps.defaultAudience : Array.isArray(wanted) ? wanted : [wanted];
    const aud = Array.isArray(claims.aud) ? claims.aud : claims.aud === undefined ? [] : [claims.aud];
    if (!aud.some((value) => typeof value === 'string' && accepted.includes(value))) {
      throw new TrustedJwtError('wrong_audience', `the token's audience (aud) must be one of ${accepted.join(', ')}`);
    }
  }

  async #claimJti(issuer: TrustedIssuer, jti: string, exp: number): Promise<void> {
    const id = this.#deps.artifactKey.digest(`trusted-jwt\n${issuer.id}\n${jti}`);
    const expiresAt = new Date((exp + this.#deps.settings.clockToleranceSeconds) * 1000);
    if (!(await this.#claims.claim(id, expiresAt))) {
      throw new TrustedJwtError('replayed', 'the token was used before (its jti is single-use)');
    }
  }

  async #verifySignature(token: string, row: store.TrustedIssuerRow, kid: string | undefined): Promise<JWTPayload> {
    let entry = await this.#currentKeys(row);
    // An unknown kid: the issuer may have rotated; look again, at most once per interval.
    if (kid !== undefined && !entry.kids.has(kid) && row.jwks_source !== 'static' && this.#mayRefetch(row.id)) {
      entry = await this.#fetchKeys(row);
    }
    if (kid !== undefined && !entry.kids.has(kid)) {
      throw new TrustedJwtError('unknown_key', `no key "${kid.slice(0, 100)}" in the keys of ${row.name}`);
    }
    try {
      // jose's jwtVerify checks, the signature by node:crypto (trusted-jwt-signature.ts).
      return await verifyTrustedSignature(token, entry.verify, TRUSTED_JWT_ALGS, this.#deps.settings.clockToleranceSeconds);
    } catch (error) {
      if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWKSMultipleMatchingKeys) {
        throw new TrustedJwtError('unknown_key', `no key of ${row.name} matches the token`);
      }
      if (error instanceof joseErrors.JWTExpired) throw new TrustedJwtError('expired', 'the token has expired');
      if (error instanceof joseErrors.JWTClaimValidationFailed) throw new TrustedJwtError('not_yet_valid', `the token is not valid now (${error.claim})`);
      throw new TrustedJwtError('bad_signature', `the token's signature does not verify with the keys of ${row.name}`);
    }
  }

  #mayRefetch(issuerId: string): boolean {
    const last = this.#lastFetch.get(issuerId) ?? 0;
    return this.#now() - last >= this.#deps.settings.refetchIntervalSeconds * 1000;
  }

  /** Cached keys while fresh; else fetched (stale keys stay in use if the issuer cannot be reached). */
  async #currentKeys(row: store.TrustedIssuerRow): Promise<KeyEntry> {
    const entry = this.#keys.get(row.id);
    const source = sourceOf(row);
    if (entry && entry.source === source && (entry.expiresAt > this.#now() || row.jwks_source === 'static')) return entry;
    if (entry && entry.source === source && !this.#mayRefetch(row.id)) return entry;
    try {
      return await this.#fetchKeys(row);
    } catch (error) {
      if (entry && entry.source === source) return entry;
      throw error;
    }
  }

  /** One fetch per issuer at a time; every caller waiting for it shares its result. */
  #fetchKeys(row: store.TrustedIssuerRow): Promise<KeyEntry> {
    const running = this.#loading.get(row.id);
    if (running) return running;
    this.#lastFetch.set(row.id, this.#now());
    const promise = this.#loadKeys(row).finally(() => this.#loading.delete(row.id));
    this.#loading.set(row.id, promise);
    return promise;
  }

  async #loadKeys(row: store.TrustedIssuerRow): Promise<KeyEntry> {
    const { settings } = this.#deps;
    let jwks: unknown;
    let maxAge: number | undefined;
    try {
      if (row.jwks_source === 'static') {
        jwks = row.jwks;
      } else {
        let uri = row.jwks_uri;
        if (row.jwks_source === 'discovery') {
          const discovery = await fetchJson(`${row.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, settings.fetch);
          const document = discovery.body as { issuer?: unknown; jwks_uri?: unknown } | null;
          // OpenID Connect Discovery §4.3: the document's issuer is the one asked for.
          if (document?.issuer !== row.issuer || typeof document.jwks_uri !== 'string') {
            throw new Error('its discovery document names another issuer or no jwks_uri');
          }
          uri = document.jwks_uri;
        }
        const fetched = await fetchJson(uri!, settings.fetch);
        jwks = fetched.body;
        maxAge = maxAgeOf(fetched.cacheControl);
      }
    } catch (error) {
      throw new TrustedJwtError('keys_unavailable', `the keys of ${row.name} could not be fetched: ${(error as Error).message}`);
    }
    const keys = signatureKeys(jwks);
    if (keys.length === 0) throw new TrustedJwtError('keys_unavailable', `${row.name} publishes no signature keys`);
    const seconds = Math.min(settings.maxCacheSeconds, Math.max(settings.minCacheSeconds, maxAge ?? settings.defaultCacheSeconds));
    const entry: KeyEntry = {
      source: sourceOf(row),
      verify: createLocalJWKSet({ keys: keys as never }),
      kids: new Set(keys.map((key) => key.kid).filter((kid): kid is string => typeof kid === 'string')),
      fetchedAt: this.#now(),
      expiresAt: this.#now() + seconds * 1000,
    };
    this.#keys.set(row.id, entry);
    return entry;
  }
}

const sourceOf = (row: store.TrustedIssuerRow) =>
  `${row.jwks_source}\n${row.issuer}\n${row.jwks_uri ?? ''}\n${row.jwks_source === 'static' ? JSON.stringify(row.jwks) : ''}`;
