// `postern routes check`: which rule covers a request, and, given a token, whether its holder
// passes: the token verified as introspection verifies it (domain/access-tokens.ts), then
// revocation, the client's state, and the roles and scopes its holder holds NOW (a role taken away
// since the token was issued counts at once).
import { createLocalJWKSet, type JWK } from 'jose';
import type { Db } from '../db/tables.ts';
import { tokenAudiences, verifyAccessTokenJwt } from '../domain/access-tokens.ts';
import { revokedGrantJti } from '../domain/crypto.ts';
import { evaluateRule, RouteTable, type RouteCaller, type RouteDecision, type RouteRule } from '../domain/routes.ts';
import { findClientById } from '../store/clients.ts';
import { listPublishedSigningKeys } from '../store/keys.ts';
import { isTokenRevoked } from '../store/revocations.ts';
import { listClientGrants, listRolesOfClient } from '../store/roles.ts';
import { findUserById, listRoleNamesOfUser, listUserGrants } from '../store/users.ts';
import { listRouteRules } from '../store/routes.ts';
import { invalid } from './errors.ts';

export interface RouteCheck {
  request: { host: string; method: string; path: string };
  rule: RouteRule | null;
  /** Why no rule: the host has none (a gateway denies), or none of its rules covers the request. */
  reason?: 'no-rules-for-host' | 'no-rule-matched';
  /** With a rule: the decision (no token given: as for a request without one). */
  decision: RouteDecision;
  /** What the token was found to be, when one was given. */
  caller?: RouteCaller | null;
  /** Why the token does not count, when it does not. */
  tokenProblem?: string;
}

/** A request as `--method DELETE --url https://orders.example/orders/7` names it. */
export function parseCheckedRequest(method: string, url: string): RouteCheck['request'] {
  const parsed = URL.parse(url);
  if (!parsed || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')) throw invalid(`--url must be an http(s) URL, got "${url}"`, 'url');
  if (!/^[A-Za-z-]{1,32}$/.test(method)) throw invalid(`"${method}" is not an HTTP method`, 'method');
  // URL gives the host lowercased without a default port, and the path with dot segments resolved.
  return { host: parsed.host, method: method.toUpperCase(), path: parsed.pathname };
}

async function callerOf(db: Db, token: string, issuer: string, api: string): Promise<{ caller: RouteCaller | null; problem?: string }> {
  const keys = (await listPublishedSigningKeys(db, new Date())).map((row) => row.public_jwk as JWK);
  const verified = await verifyAccessTokenJwt(token, createLocalJWKSet({ keys }), issuer);
  if (!verified?.usableNow) return { caller: null, problem: 'the token is not a valid, unexpired access token of this issuer' };
  const claims = verified.claims;
  if (await isTokenRevoked(db, claims.jti!)) return { caller: null, problem: 'the token was revoked' };
  if (typeof claims.gid === 'string' && (await isTokenRevoked(db, revokedGrantJti(claims.gid)))) return { caller: null, problem: 'the token\'s grant was revoked' };
  const clientId = claims.client_id!;
  const client = await findClientById(db, clientId);
  if (!client?.enabled) return { caller: null, problem: `the client ${clientId} is disabled or deleted` };
  if (client.tokens_revoked_before && (claims.iat === undefined || claims.iat * 1000 < client.tokens_revoked_before.getTime())) {
    return { caller: null, problem: `the client ${clientId}'s tokens issued before ${client.tokens_revoked_before.toISOString()} were revoked` };
  }
  const subject = typeof claims.sub === 'string' ? claims.sub : null;
  const person = subject !== null && subject !== clientId ? subject : null;
  let roles: string[];
  let held: Set<string>;
  if (person) {
    const user = await findUserById(db, person);
    if (!user?.enabled) return { caller: null, problem: 'the person the token was issued to is disabled or deleted' };
    roles = await listRoleNamesOfUser(db, person);
    held = new Set((await listUserGrants(db, person)).filter((row) => row.identifier === api).map((row) => row.scope));
  } else {
    roles = (await listRolesOfClient(db, clientId)).map((role) => role.name);
    held = new Set((await listClientGrants(db, clientId)).filter((row) => row.identifier === api).map((row) => row.scope));
  }
  const cnf = claims.cnf;
  return {
    caller: {
      clientId,
      subject,
      // What it carries and its holder still holds (as the admin API counts a token's scopes).
      scopes: (claims.scope ?? '').split(' ').filter((scope) => scope && held.has(scope)),
      roles,
      audiences: tokenAudiences(claims.aud),
      senderConstrained: cnf?.jkt ? 'dpop' : cnf?.['x5t#S256'] ? 'mtls' : null,
    },
  };
}

export async function checkRoute(db: Db, input: { method: string; url: string; token?: string }, issuer: string): Promise<RouteCheck> {
  const request = parseCheckedRequest(input.method, input.url);
  const match = new RouteTable(await listRouteRules(db)).match(request);
  if (match.rule === null) {
    return {
      request, rule: null, reason: match.reason,
      decision: { allow: false, status: 403, error: 'access_denied', why: match.reason === 'no-rules-for-host' ? `no rule names the host ${request.host}` : 'no rule of this host covers the request (default deny)' },
    };
  }
  const rule = match.rule;
  if (input.token === undefined) return { request, rule, decision: evaluateRule(rule, null) };
  const { caller, problem } = await callerOf(db, input.token, issuer, rule.api);
  const decision: RouteDecision = caller
    ? evaluateRule(rule, caller)
    : rule.public ? { allow: true } : { allow: false, status: 401, error: 'invalid_token', why: problem! };
  return { request, rule, decision, caller, ...(problem ? { tokenProblem: problem } : {}) };
}
