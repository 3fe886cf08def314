// The access token of a request a gateway asks the decision endpoint about (docs/gateways.md):
// who presents it and what they hold NOW. JWTs are checked locally on the introspection fast
// path (TokenPolicy.usableJwt: signature remembered, revocation list, client state); opaque
// tokens are looked up in the store through the provider's models. A bound token must come with
// its key: a DPoP proof of the original method and URL (RFC 9449 §7), or the certificate the
// gateway forwards (RFC 8705 §3). Roles and scopes come from the caller's current grants, never
// from the token's claims.
import Provider from 'oidc-provider';
import { checkDpopProof, PROOF_MAX_AGE_SECONDS } from '../domain/dpop-proof.ts';
import { actorChain, isLineage } from '../domain/token-exchange.ts';
import type { Db } from '../db/tables.ts';
import { listRoleNamesOfUser } from '../store/users.ts';
import { currentPersonGrants } from './accounts.ts';
import type { Directory } from './directory.ts';
import type { TokenPolicy } from './token-policy.ts';
import type { GateCaller, GateTokenRequest, GateTokenResult } from '../domain/gate-request.ts';

interface TokenFacts {
  clientId: string;
  subject: string;
  scope: string;
  expiresAt: number;
  jkt?: string;
  x5t?: string;
  /** The actors of a delegated (exchanged) token, outermost first. */
  actors?: string[];
  /** For an exchanged token, the client the first token of its chain was issued to. */
  rootClientId?: string;
}

/** Proof jtis seen, per process, until their proofs are too old to be taken anyway. */
const MAX_SEEN_PROOFS = 50_000;

type OpaqueModel = {
  isValid: boolean; clientId: string; accountId?: string; scope?: string; aud?: string | string[];
  exp?: number; iat?: number; jkt?: string; 'x5t#S256'?: string; grantId?: string;
  extra?: { act?: unknown; lin?: unknown; gid?: unknown };
};

export class GateTokens {
  #provider: Provider;
  #tokenPolicy: TokenPolicy;
  #directory: Directory;
  #db: Db;
  #seenProofs = new Map<string, number>();

  constructor(deps: { provider: Provider; tokenPolicy: TokenPolicy; directory: Directory; db: Db }) {
    this.#provider = deps.provider;
    this.#tokenPolicy = deps.tokenPolicy;
    this.#directory = deps.directory;
    this.#db = deps.db;
  }

  async check(request: GateTokenRequest): Promise<GateTokenResult> {
    const [scheme, token, extra] = (request.authorization ?? '').split(' ');
    const kind = scheme?.toLowerCase();
    if (!request.authorization || (kind !== 'bearer' && kind !== 'dpop')) return { ok: false, scheme: 'Bearer' };
    const named = kind === 'dpop' ? 'DPoP' : 'Bearer';
    const invalid = (description: string, error: 'invalid_token' | 'invalid_dpop_proof' | 'invalid_request' = 'invalid_token') =>
      ({ ok: false as const, scheme: named as 'Bearer' | 'DPoP', error, description });
    if (!token || extra !== undefined || token.length > 8192) return invalid('the Authorization header is malformed', 'invalid_request');
    const facts = isJwt(token) ? await this.#jwtFacts(token, request.audience) : await this.#opaqueFacts(token, request.audience);
    if (!facts) return invalid('the access token is invalid, expired or revoked, or not for this API');
    let senderConstrained: GateCaller['senderConstrained'] = null;
    if (facts.jkt) {
      // RFC 9449 §7.2: a DPoP-bound token comes with the DPoP scheme and a proof by its key.
      if (named !== 'DPoP') return invalid('this access token is DPoP-bound: present it with the DPoP scheme and a proof');
      const problem = await this.#checkProof(request, token, facts.jkt);
      if (problem) return invalid(problem, 'invalid_dpop_proof');
      senderConstrained = 'dpop';
    } else if (named === 'DPoP') {
      return invalid('this access token is not DPoP-bound: present it with the Bearer scheme');
    }
    if (facts.x5t) {
      // RFC 8705 §3: only over a connection presenting that very certificate.
      if (facts.x5t !== request.certificateThumbprint) return invalid('this access token is bound to a certificate the request did not present');
      senderConstrained = 'mtls';
    }
    const held = await this.#currentGrants(facts, request.audience);
    if (!held) return invalid('the holder of this access token is disabled or deleted');
    const scopes = facts.scope.split(' ').filter((scope) => scope && held.scopes.has(scope));
    return {
      ok: true,
      caller: {
        clientId: facts.clientId, subject: facts.subject, scopes, roles: held.roles, senderConstrained,
        expiresAt: facts.expiresAt, actors: facts.actors ?? [],
      },
    };
  }

  async #jwtFacts(token: string, audience: string): Promise<TokenFacts | undefined> {
    const claims = await this.#tokenPolicy.usableJwt(token, audience);
    if (!claims || typeof claims.sub !== 'string' || typeof claims.exp !== 'number') return undefined;
    return {
      clientId: claims.client_id!, subject: claims.sub, scope: claims.scope ?? '', expiresAt: claims.exp,
      jkt: claims.cnf?.jkt, x5t: claims.cnf?.['x5t#S256'], actors: actorChain(claims.act),
      rootClientId: rootClientOf((claims as { lin?: unknown }).lin),
    };
  }

  /** An opaque token of the store: a person's (AccessToken) or a client's (ClientCredentials). */
  async #opaqueFacts(token: string, audience: string): Promise<TokenFacts | undefined> {
    // Only an API that issues opaque tokens has any to find: made-up tokens for the others cost
    // no query (anyone can send them, through the gateway, as fast as it forwards).
    if (!/^[A-Za-z0-9_-]{20,200}$/.test(token) || (await this.#directory.api(audience))?.tokenFormat !== 'opaque') return undefined;
    const [access, service] = await Promise.all([
      this.#provider.AccessToken.find(token) as Promise<OpaqueModel | undefined>,
      this.#provider.ClientCredentials.find(token) as Promise<OpaqueModel | undefined>,
    ]);
    const found = access ?? service;
    if (!found?.isValid || typeof found.exp !== 'number') return undefined;
    const aud = Array.isArray(found.aud) ? found.aud : [found.aud];
    if (!aud.includes(audience)) return undefined;
    if (found.grantId) {
      // As introspection does: the grant must still exist and be this token's.
      const grant = await this.#provider.Grant.find(found.grantId) as { clientId?: string; accountId?: string; isExpired?: boolean } | undefined;
      if (!grant || grant.isExpired || grant.clientId !== found.clientId || grant.accountId !== found.accountId) return undefined;
    }
    if (!(await this.#tokenPolicy.clientStillTrusts(found.clientId, found.iat))) return undefined;
    // An exchanged token (RFC 8693) keeps its act and lineage in the stored payload: revoking any
    // token of its chain, or disabling a client of it, makes it unusable here too.
    const extra = found.extra ?? {};
    if (await this.#tokenPolicy.lineageRevoked({ lin: extra.lin, gid: extra.gid, iat: found.iat })) return undefined;
    return {
      clientId: found.clientId, subject: found.accountId ?? found.clientId, scope: found.scope ?? '', expiresAt: found.exp,
      jkt: found.jkt, x5t: found['x5t#S256'], actors: actorChain(extra.act), rootClientId: rootClientOf(extra.lin),
    };
  }

  /** What is wrong with the request's DPoP proof for a token bound to `jkt`; undefined if nothing. */
  async #checkProof(request: GateTokenRequest, token: string, jkt: string): Promise<string | undefined> {
    const proof = request.dpop;
    if (!proof) return 'a DPoP proof is required with this access token';
    if (Array.isArray(proof) || proof.includes(',')) return 'exactly one DPoP proof is allowed';
    const now = Date.now();
    const checked = await checkDpopProof(proof, { method: request.method, url: request.url, accessToken: token, now });
    if ('error' in checked) return checked.error;
    if (checked.jkt !== jkt) return 'the DPoP proof is signed by another key than the token is bound to';
    // RFC 9449 §11.1: a proof is used once. Only proofs by the token's own key get here, so the
    // keys kept are the token holder's, and they leave once too old to be taken anyway.
    const key = `${jkt}:${checked.jti}`;
    if (this.#seenProofs.has(key)) return 'this DPoP proof was used already';
    if (this.#seenProofs.size >= MAX_SEEN_PROOFS) this.#sweepProofs(now);
    if (this.#seenProofs.size >= MAX_SEEN_PROOFS) return 'too many DPoP proofs at once; retry';
    this.#seenProofs.set(key, (checked.iat + PROOF_MAX_AGE_SECONDS) * 1000);
    return undefined;
  }

  #sweepProofs(now: number): void {
    for (const [key, until] of this.#seenProofs) if (until < now) this.#seenProofs.delete(key);
  }

  /** The scopes and roles the token's holder has on `audience` now. */
  async #currentGrants(facts: TokenFacts, audience: string): Promise<{ scopes: Set<string>; roles: string[] } | undefined> {
    // A service's own token, or one exchanged on a service's behalf (its subject is the client the
    // chain began with): the service's grants, as the exchange read them.
    if (facts.subject === facts.clientId || facts.subject === facts.rootClientId) {
      const client = await this.#directory.client(facts.subject);
      if (!client?.enabled) return undefined;
      return { scopes: client.grants.get(audience)?.scopes ?? new Set(), roles: [...client.roles].sort() };
    }
    const [person, roles] = await Promise.all([
      currentPersonGrants(this.#db, facts.subject, audience),
      listRoleNamesOfUser(this.#db, facts.subject),
    ]);
    return person ? { scopes: person.scopes, roles } : undefined;
  }
}

function rootClientOf(lin: unknown): string | undefined {
  return isLineage(lin) ? lin.c[0] : undefined;
}

/**
 * Three dot-separated parts: a JWT, for the JWT path, whose verification checks the rest (typ
 * at+jwt, RFC 9068 §2.1); an opaque token of ours has no dot. Structure only: decoding the header
 * here would cost every decision, though a token seen before is answered from the verified cache.
 */
function isJwt(token: string): boolean {
  const first = token.indexOf('.');
  const second = first < 0 ? -1 : token.indexOf('.', first + 1);
  return second > 0 && token.indexOf('.', second + 1) < 0;
}
