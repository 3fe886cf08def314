// The plain token exchange (RFC 8693), answered in front of the provider: a service
// authenticating with its client secret (Basic or in the body; or a federated client whose
// platform token federated-client-auth.ts verified just before), trading a JWT access token of
// Postern's for a JWT of another API, with nothing else in play: no actor_token, no DPoP proof,
// no client certificate, no DPoP- or certificate-bound client or API, no network allow-list, no
// parameter beyond grant_type, subject_token, subject_token_type (an access token),
// requested_token_type (an access token), resource, audience, scope and the credentials.
//
// The rules are token-exchange.ts's own (checkRequest, targetOf, subjectHoldings, grantedScopes,
// the subject token read by exchange-subjects.ts as the provider path reads it), taken in the same
// order; every refusal, and anything this file does not know, goes to the provider untouched (the
// body is put back on the stream), which then answers it, so every error response still comes
// from the provider. The token is the one the provider would issue (same claims, same key, same
// header), the answer the same JSON and headers, and the exchange recorded and counted the same
// way (the token.exchanged audit record, the issuance count and metrics).
// test/token-exchange-fast-path.test.ts sends a table of requests to a server with this path and
// one without and compares the answers.
import type { IncomingMessage } from 'node:http';
import { errors } from 'oidc-provider';
import type Provider from 'oidc-provider';
import type { Db } from '../db/tables.ts';
import type { AuditSink } from '../domain/audit-events.ts';
import type { KeySet } from '../domain/signing-keys.ts';
import { actDepth, TOKEN_EXCHANGE_GRANT, TOKEN_TYPES, type ActClaim, type Lineage } from '../domain/token-exchange.ts';
import type { Directory } from './directory.ts';
import { looksLikeJwt, readPresentedToken } from './exchange-subjects.ts';
import { callerOf, plainClient, readPlainForm, SCOPE_LIST, type FastPath } from './fast-path-request.ts';
import { canSign, signAccessToken, signingKeys, tokenId } from './fast-path-tokens.ts';
import { checkRequest, grantedScopes, recordExchange, subjectHoldings, targetOf, type Params } from './token-exchange.ts';
import type { TokenPolicy } from './token-policy.ts';

const ALLOWED_PARAMS = new Set([
  'grant_type', 'subject_token', 'subject_token_type', 'requested_token_type', 'resource', 'audience', 'scope',
  'client_id', 'client_secret',
]);

export interface ExchangeFastPathOptions {
  /** For the subject token's reader, which needs it for opaque tokens only (never read here). */
  provider: Provider;
  db: Db;
  directory: Directory;
  tokenPolicy: TokenPolicy;
  audit: AuditSink;
  /** The provider's key set: it signs with the one signing key of each type (jwks.ts). */
  keys: KeySet;
  issuer: string;
  /** The token endpoint's path. */
  path: string;
  maxBodyBytes: number;
  /** How many exchanges a chain may hold (as token-exchange.ts is told). */
  maxDepth: number;
  /** Whether the request presents a TLS client certificate (mutual TLS is the provider's). */
  hasCertificate(req: IncomingMessage): boolean;
  /** Told of each token issued here, as the provider's issuance events tell (audit count, metrics). */
  onIssued(clientId: string, api: string): void;
}

/** A refusal of token-exchange.ts's rules: the provider path gives the answer. */
const refused = (error: unknown) => error instanceof errors.OIDCProviderError;

export function exchangeFastPath(options: ExchangeFastPathOptions): FastPath {
  const { directory, tokenPolicy, path, maxBodyBytes } = options;
  const keys = signingKeys(options.keys);
  return async (request) => {
    const form = await readPlainForm(request, path, maxBodyBytes, ALLOWED_PARAMS);
    if (!form || form.get('grant_type') !== TOKEN_EXCHANGE_GRANT || options.hasCertificate(request.req)) return undefined;
    const caller = callerOf(request.authorization, form);
    if (!caller) return undefined;
    const client = await directory.client(caller.clientId);
    if (!plainClient(client, caller, Date.now(), request.req, TOKEN_EXCHANGE_GRANT)) return undefined;
    const clientId = client.clientId;
    // The provider takes an empty parameter for an absent one (its Params).
    const value = (name: string) => form.get(name) || undefined;
    const params: Params = {
      subject_token: value('subject_token'), subject_token_type: value('subject_token_type'),
      requested_token_type: value('requested_token_type'), resource: value('resource'), audience: value('audience'),
      scope: value('scope'),
    };
    // Postern's own access tokens as JWTs; trusted issuers' JWTs and opaque tokens are the provider's.
    if (params.subject_token_type !== TOKEN_TYPES.accessToken || !params.subject_token || !looksLikeJwt(params.subject_token)) return undefined;
    if (params.scope !== undefined && !SCOPE_LIST.test(params.scope)) return undefined;
    const metadata = client.metadata as { subject_type?: unknown };
    if (metadata.subject_type === 'pairwise') return undefined;

    try {
      checkRequest(params, true);
      const subject = await readPresentedToken(options.provider, tokenPolicy, directory, params.subject_token, params.subject_token_type);
      if (!subject || typeof subject === 'string') return undefined;
      let owned = false;
      for (const aud of subject.aud) if ((await directory.api(aud))?.ownerClientId === clientId) owned = true;
      if (!owned) return undefined;
      const mayAct = subject.mayAct as { sub?: unknown } | undefined;
      if (mayAct !== undefined && (typeof mayAct !== 'object' || mayAct === null || mayAct.sub !== clientId)) return undefined;
      const depth = (subject.lineage?.c.length ?? 0) + 1;
      if (depth > options.maxDepth) return undefined;
      const impersonate = client.mayImpersonate;
      const act: ActClaim | undefined = impersonate ? subject.act : { sub: clientId, ...(subject.act ? { act: subject.act } : {}) };
      if (actDepth(act) > options.maxDepth) return undefined;

      const api = await directory.api(targetOf(params, client));
      const permitted = api && client.exchange.get(api.identifier);
      if (!api || !permitted) return undefined;
      // Bound tokens (DPoP, RFC 9449; certificates, RFC 8705 §3) are the provider path's.
      const bound = client.metadata as { dpop_bound_access_tokens?: unknown; tls_client_certificate_bound_access_tokens?: unknown };
      if (api.requireDpop || api.requireMtls || bound.dpop_bound_access_tokens || bound.tls_client_certificate_bound_access_tokens) return undefined;
      if (api.tokenFormat !== 'jwt') return undefined;
      const signing = keys.get(api.signingAlg);
      if (!canSign(signing)) return undefined;

      const held = await subjectHoldings(options, subject, api);
      const scopes = grantedScopes(params.scope, api, permitted, held.scopes);
      const iat = Math.floor(Date.now() / 1000);
      const ttl = Math.min(api.accessTokenTtl, subject.exp - iat);
      if (ttl <= 0) return undefined;
      const lineage: Lineage = {
        t: [...(subject.lineage?.t ?? []), subject.key].filter(Boolean),
        c: [...(subject.lineage?.c ?? []), subject.clientId],
      };
      // The claims in the order oidc-provider writes them (lib/models/formats/jwt.js), Postern's
      // extra claims first as token-exchange.ts gives them (configuration.ts tokenClaims).
      const scope = scopes.join(' ');
      const payload = {
        roles: held.roles,
        ...(act ? { act } : {}),
        lin: lineage,
        ...(subject.gid ? { gid: subject.gid } : {}),
        jti: tokenId(),
        sub: subject.sub,
        iat,
        exp: iat + ttl,
        scope: scope || undefined,
        client_id: clientId,
        iss: options.issuer,
        aud: api.identifier,
      };
      const token = await signAccessToken(signing, payload);

      options.onIssued(clientId, api.identifier);
      recordExchange(options.audit, request, { clientId, api, subject: subject.sub, act, scopes, impersonate });
      return {
        status: 200,
        body: { access_token: token, issued_token_type: TOKEN_TYPES.accessToken, token_type: 'Bearer', expires_in: ttl, scope },
        clientId,
      };
    } catch (error) {
      if (refused(error)) return undefined;
      throw error;
    }
  };
}
