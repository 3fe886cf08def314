// Introspection and revocation for every access token Postern issues. oidc-provider never stores
// JWT access tokens and answers unsupported_token_type for them; this module verifies them itself
// (signature, issuer, expiry, revocation list, client still enabled) and applies one policy to
// JWT and opaque tokens alike.
import { createLocalJWKSet, type JWK } from 'jose';
import { tokenAudiences as audiences, verifyAccessTokenJwt, type AccessTokenClaims } from '../domain/access-tokens.ts';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { revokedGrantJti } from '../domain/crypto.ts';
import { isLineage, opaqueTokenKey } from '../domain/token-exchange.ts';
import type { Db } from '../db/tables.ts';
import { writeAndPropagate } from '../propagation/index.ts';
import { insertRevokedToken } from '../store/revocations.ts';
import { currentPersonGrants } from './accounts.ts';
import { NO_CLIENT_AUTHENTICATION } from './provider-texts.ts';
import { detach } from '../domain/text.ts';
import type { ClientEntry, Directory } from './directory.ts';
import { publicJwk } from '../domain/signing-keys.ts';
import { INTROSPECT_SCOPE, POSTERN_API } from './resource-policy.ts';

export type { AccessTokenClaims };

/** Who presents a usable access token, and what it lets them do now. */
export interface AuthorizedCaller {
  /** The client the token was issued to (for a person's token: the app they signed in with). */
  clientId: string;
  /** A person's token (browser sign-in): their user id. Absent for a client's own token. */
  userId?: string;
  /** The scopes the token carries that its holder still holds on the audience now. */
  scopes: string[];
}

export interface TokenPolicyDeps {
  db: Db;
  directory: Directory;
  issuer: string;
  signingKeys: JWK[];
}

/** What a request without client authentication is told (RFC 6749 §5.2). */
const AUTHENTICATION_REQUIRED = 'client authentication is required';

/**
 * The error for a caller that did not authenticate where it must: 401 invalid_client, the same
 * answer as a request naming no client at all (the middleware adds the challenge).
 */
export class AuthenticationRequired extends errors.InvalidClientAuth {
  override error_description = AUTHENTICATION_REQUIRED;
}

/**
 * Whether a token issued at `iat` (seconds) predates the client's revoke-all cut-off. iat has
 * one-second resolution, so a token issued in the same second as the cut-off counts as earlier:
 * the safe side for a revocation.
 */
function predatesCutOff(client: ClientEntry, iat: number | undefined): boolean {
  if (client.tokensRevokedBefore === null) return false;
  return iat === undefined || iat * 1000 < client.tokensRevokedBefore;
}

/** Verified tokens remembered, so that a gateway introspecting one token per call pays once. */
const VERIFIED_CACHE_SIZE = 10_000;

export class TokenPolicy {
  #deps: TokenPolicyDeps;
  #keys: ReturnType<typeof createLocalJWKSet>;
  /**
   * Claims of tokens whose signature, issuer and type were checked, keyed by the exact token
   * string, until they expire. Only the signature check is remembered: revocation, the client's
   * state and the caller's permission are checked on every request. The key set is fixed for
   * the life of this object, so a remembered signature stays valid.
   */
  #verified = new Map<string, AccessTokenClaims>();

  constructor(deps: TokenPolicyDeps) {
    this.#deps = deps;
    this.#keys = createLocalJWKSet({ keys: deps.signingKeys.map(publicJwk) });
  }

  /**
   * Who may learn about a token (RFC 7662 §4): the client it was issued to, the introspection
   * client of an API it is for, and a client granted `introspect` on Postern's own API. Tokens of
   * a client that was disabled or deleted are inactive for everyone.
   */
  async mayIntrospect(callerId: string, tokenClientId: string, aud: unknown, iat?: number, extra?: { lin?: unknown; gid?: unknown }): Promise<boolean> {
    const { directory } = this.#deps;
    const owner = await directory.client(tokenClientId);
    if (!owner?.enabled || predatesCutOff(owner, iat)) return false;
    // An exchanged opaque token (a JWT's lineage is checked with its revocation).
    if (extra && (await this.lineageRevoked({ ...extra, iat }))) return false;
    if (callerId === tokenClientId) return true;
    const caller = await directory.client(callerId);
    if (caller?.grants.get(POSTERN_API)?.scopes.has(INTROSPECT_SCOPE)) return true;
    for (const identifier of audiences(aud)) {
      if ((await directory.api(identifier))?.introspectionClientId === callerId) return true;
    }
    return false;
  }

  /** RFC 7009 §2.1: a client may revoke only the tokens issued to it. */
  mayRevoke(callerId: string, tokenClientId: string): void {
    if (callerId !== tokenClientId) {
      throw new errors.UnauthorizedClient('client is not authorized to revoke the presented token');
    }
  }

  /** Verifies a JWT access token of ours; undefined when it is not one, or no longer valid. */
  async #verify(token: string): Promise<AccessTokenClaims | undefined> {
    const now = Math.floor(Date.now() / 1000);
    const remembered = this.#verified.get(token);
    if (remembered) {
      if (remembered.exp! > now) return remembered;
      this.#verified.delete(token);
      return undefined;
    }
    const verified = await verifyAccessTokenJwt(token, this.#keys, this.#deps.issuer);
    if (!verified) return undefined;
    const payload = verified.claims;
    if (verified.usableNow) {
      if (this.#verified.size >= VERIFIED_CACHE_SIZE) this.#verified.delete(this.#verified.keys().next().value!);
      // A copy: the token may be cut from a larger request body, which the key must not keep.
      this.#verified.set(detach(token), payload);
    }
    return payload;
  }

  /** Revoked by its jti, or, for a person's token, through its grant (`gid`), or through its lineage. */
  async #isRevoked(claims: AccessTokenClaims): Promise<boolean> {
    const { directory } = this.#deps;
    if (await directory.isRevoked(claims.jti!)) return true;
    return this.lineageRevoked(claims);
  }

  /**
   * Whether anything a token came from is revoked: the person's grant (`gid`), and for an
   * exchanged token (RFC 8693) every token before it in the chain, and every client of the chain
   * disabled, deleted or cut off since. Read from the Directory, which every process keeps current.
   */
  async lineageRevoked(claims: { gid?: unknown; lin?: unknown; iat?: number }): Promise<boolean> {
    const { directory } = this.#deps;
    if (typeof claims.gid === 'string' && (await directory.isRevoked(revokedGrantJti(claims.gid)))) return true;
    if (claims.lin === undefined) return false;
    if (!isLineage(claims.lin)) return true;
    for (const key of claims.lin.t) if (await directory.isRevoked(key)) return true;
    for (const clientId of claims.lin.c) {
      const client = await directory.client(clientId);
      if (!client?.enabled || predatesCutOff(client, claims.iat)) return true;
    }
    return false;
  }

  /**
   * A JWT access token of ours that is usable now, whatever its audience: signature, issuer,
   * type and expiry, not revoked (itself, its grant, its lineage), its client enabled and the
   * token newer than the client's cut-off. The subject and actor tokens of an exchange.
   */
  async activeJwt(token: string): Promise<AccessTokenClaims | undefined> {
    const claims = await this.#verify(token);
    if (!claims?.jti || !claims.client_id || (await this.#isRevoked(claims))) return undefined;
    const client = await this.#deps.directory.client(claims.client_id);
    if (!client?.enabled || predatesCutOff(client, claims.iat)) return undefined;
    return claims;
  }

  async introspectJwt(callerId: string, token: string): Promise<Record<string, unknown>> {
    const claims = await this.#verify(token);
    if (!claims?.jti || !claims.client_id) return { active: false };
    if (await this.#isRevoked(claims)) return { active: false };
    if (!(await this.mayIntrospect(callerId, claims.client_id, claims.aud, claims.iat))) return { active: false };
    return {
      active: true,
      scope: claims.scope,
      client_id: claims.client_id,
      sub: claims.sub,
      aud: claims.aud,
      iss: claims.iss,
      exp: claims.exp,
      iat: claims.iat,
      nbf: claims.nbf,
      jti: claims.jti,
      token_type: claims.cnf?.jkt ? 'DPoP' : 'Bearer',
      roles: claims.roles,
      cnf: claims.cnf,
      act: claims.act,
    };
  }

  /**
   * A JWT access token of ours for `audience` that is usable now: signature, issuer, type and
   * expiry, not revoked, its client enabled and the token newer than the client's cut-off. The
   * admin API accepts exactly these; undefined for anything else.
   */
  async verifyAccessToken(token: string, audience: string, certificateThumbprint?: string): Promise<AccessTokenClaims | undefined> {
    const claims = await this.usableJwt(token, audience);
    // RFC 9449 §7.2: a DPoP-bound token presented as a plain Bearer token is refused; the admin
    // API takes no proofs. RFC 8705 §3: a certificate-bound token is accepted only over a
    // connection presenting that very certificate.
    if (!claims || claims.cnf?.jkt) return undefined;
    const boundTo = claims.cnf?.['x5t#S256'];
    if (claims.cnf && (!boundTo || boundTo !== certificateThumbprint)) return undefined;
    return claims;
  }

  /**
   * A JWT access token of ours for `audience`, usable now, whatever it is bound to (the caller
   * checks the binding): signature, issuer, type and expiry (remembered, as for introspection),
   * not revoked, its client enabled and the token newer than the client's cut-off.
   */
  async usableJwt(token: string, audience: string): Promise<AccessTokenClaims | undefined> {
    const claims = await this.#verify(token);
    if (!claims?.jti || !claims.client_id || !audiences(claims.aud).includes(audience)) return undefined;
    if (await this.#isRevoked(claims)) return undefined;
    const client = await this.#deps.directory.client(claims.client_id);
    if (!client?.enabled || predatesCutOff(client, claims.iat)) return undefined;
    return claims;
  }

  /** Whether a token of `clientId` issued at `iat` still counts: the client enabled, no cut-off since. */
  async clientStillTrusts(clientId: string, iat: number | undefined): Promise<boolean> {
    const client = await this.#deps.directory.client(clientId);
    return Boolean(client?.enabled) && !predatesCutOff(client!, iat);
  }

  /**
   * A usable access token for `audience` (verifyAccessToken) and what it allows now: the scopes
   * it carries that its holder still holds. A token records what was granted when it was issued;
   * a role taken away since must count from the next request (a demoted admin is no admin), and a
   * role gaining a scope since must not widen a token issued without it. A client's grants come
   * from the Directory, which the change feed keeps current on every process; a person's are
   * read from the database, which is always current.
   */
  async authorizeAccessToken(token: string, audience: string, certificateThumbprint?: string): Promise<AuthorizedCaller | undefined> {
    const claims = await this.verifyAccessToken(token, audience, certificateThumbprint);
    // RFC 9068 §2.2: sub is the person a token was issued to, or the client's own id.
    if (!claims || typeof claims.sub !== 'string') return undefined;
    const clientId = claims.client_id!;
    const userId = claims.sub !== clientId ? claims.sub : undefined;
    let held: Set<string> | undefined;
    if (userId) {
      const person = await currentPersonGrants(this.#deps.db, userId, audience);
      // A person disabled or deleted since: the token is no longer theirs to use.
      if (!person) return undefined;
      held = person.scopes;
    } else {
      held = (await this.#deps.directory.client(clientId))?.grants.get(audience)?.scopes;
    }
    const scopes = (claims.scope ?? '').split(' ').filter((scope) => scope && held?.has(scope));
    return { clientId, ...(userId ? { userId } : {}), scopes };
  }

  /** Records the jti as revoked until the token would have expired; other processes are told. */
  async revokeJwt(callerId: string, token: string): Promise<void> {
    const claims = await this.#verify(token);
    // RFC 7009 §2.2: an invalid or expired token needs no revocation and is not an error.
    if (!claims?.jti || !claims.client_id || !claims.exp) return;
    this.mayRevoke(callerId, claims.client_id);
    const { db } = this.#deps;
    const jti = claims.jti;
    const exp = claims.exp;
    // Answer only once every process sharing the database knows (RFC 7009 §2.2: the token must
    // not be usable after a successful response).
    await writeAndPropagate(db, { kind: 'revoked', jti, exp }, async (trx) => {
      await insertRevokedToken(trx, { jti, clientId: claims.client_id!, expiresAt: new Date(exp * 1000) });
    });
  }

  /**
   * An opaque access token is being revoked (the provider deletes it): tokens exchanged from it
   * carry its key (a digest) in their lineage, so the key goes on the revocation list until the
   * token would have expired, and every process knows before the answer (RFC 7009 §2.2).
   */
  async recordOpaqueRevocation(token: { kind?: string; jti?: string; clientId?: string; exp?: number }): Promise<void> {
    if ((token.kind !== 'AccessToken' && token.kind !== 'ClientCredentials') || !token.jti || !token.clientId || !token.exp) return;
    const jti = opaqueTokenKey(token.jti);
    const { exp, clientId } = token;
    await writeAndPropagate(this.#deps.db, { kind: 'revoked', jti, exp }, async (trx) => {
      await insertRevokedToken(trx, { jti, clientId, expiresAt: new Date(exp * 1000) });
    });
  }

  /** Koa middleware for the provider: answers for JWTs where the provider refuses them. */
  middleware() {
    return async (ctx: KoaContextWithOIDC, next: () => Promise<void>) => {
      await next();
      const route = ctx.oidc?.route;
      if (route !== 'introspection' && route !== 'revocation' && route !== 'token') return;
      const body = ctx.body as { error?: string; error_description?: string } | undefined;
      const unauthenticated = (ctx.status === 400 && body?.error === 'invalid_request'
        && body.error_description === NO_CLIENT_AUTHENTICATION)
        || (ctx.status === 401 && body?.error === 'invalid_client' && body.error_description === AUTHENTICATION_REQUIRED);
      if (unauthenticated) {
        // RFC 6749 §5.2: a request without client authentication is invalid_client, 401.
        ctx.status = 401;
        ctx.set('WWW-Authenticate', `Basic realm="${this.#deps.issuer}"`);
        ctx.body = { error: 'invalid_client', error_description: AUTHENTICATION_REQUIRED };
        return;
      }
      if (route === 'introspection' && ctx.status === 200) {
        // Opaque client-credentials tokens have no account; say what RFC 9068 JWTs say.
        const answer = ctx.body as { active?: boolean; sub?: string; client_id?: string; lin?: unknown; gid?: unknown };
        if (answer.active && !answer.sub && answer.client_id) answer.sub = answer.client_id;
        // Postern's own bookkeeping, as JWT introspection leaves it out too.
        delete answer.lin;
        delete answer.gid;
        return;
      }
      const client = ctx.oidc.client;
      const token = (ctx.oidc.params as { token?: unknown } | undefined)?.token;
      if (route === 'token' || ctx.status !== 400 || body?.error !== 'unsupported_token_type') return;
      if (!client || typeof token !== 'string') return;
      if (route === 'introspection') {
        ctx.body = await this.introspectJwt(client.clientId, token);
        ctx.status = 200;
      } else {
        try {
          await this.revokeJwt(client.clientId, token);
          ctx.status = 200;
          ctx.body = '';
        } catch (error) {
          if (!(error instanceof errors.OIDCProviderError)) throw error;
          ctx.status = error.statusCode;
          ctx.body = { error: error.error, error_description: error.error_description };
        }
      }
    };
  }
}
