// Which API a token is for, and which scopes it carries. oidc-provider silently drops scopes a
// resource server does not know and issues scope-less tokens when none is asked for; Postern
// instead grants exactly what the client's roles allow on that API, and refuses the rest.
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { Db } from '../db/tables.ts';
import { personGrants } from './accounts.ts';
import type { ApiEntry, Directory } from './directory.ts';
import { INTROSPECT_SCOPE, POSTERN_API } from '../domain/postern-api.ts';

export { INTROSPECT_SCOPE, POSTERN_API };

const DPOP_PROOF_REQUIRED = 'a DPoP proof is required for this';
const CERTIFICATE_REQUIRED = 'a client certificate is required for this';

function isClientCredentials(ctx: KoaContextWithOIDC): boolean {
  // Stryker disable next-line ConditionalExpression,OptionalChaining: only token requests have a grant_type, and the provider always sets params
  return ctx.oidc.route === 'token' && ctx.oidc.params?.grant_type === 'client_credentials';
}

/**
 * The person a token is being issued to at the token endpoint (authorization_code and
 * refresh_token grants), from the code or refresh token being used.
 */
function tokenAccountId(ctx: KoaContextWithOIDC): string | undefined {
  // Stryker disable next-line ConditionalExpression: elsewhere no code or refresh token is among the entities either
  if (ctx.oidc.route !== 'token') return undefined;
  const entities = ctx.oidc.entities as { AuthorizationCode?: { accountId?: string }; RefreshToken?: { accountId?: string } };
  // Stryker disable next-line OptionalChaining: asked only for a code or a refresh token, and a code is first
  return entities.AuthorizationCode?.accountId ?? entities.RefreshToken?.accountId;
}

export function resourceServerInfo(api: ApiEntry, scopes: Iterable<string>) {
  return {
    scope: [...scopes].join(' '),
    audience: api.identifier,
    accessTokenTTL: api.accessTokenTtl,
    accessTokenFormat: api.tokenFormat,
    ...(api.tokenFormat === 'jwt' ? { jwt: { sign: { alg: api.signingAlg } } } : {}),
  };
}

/**
 * RFC 8705 §3: tokens for an API that requires it must be bound to the client's certificate.
 * The provider binds a client's tokens when the client is registered for it (require mTLS,
 * `tls_client_certificate_bound_access_tokens`), so the client must be, and must present one.
 * Refused as invalid_request before anything is issued, like a missing DPoP proof.
 */
function checkCertificateBinding(ctx: KoaContextWithOIDC, api: ApiEntry, hasCertificate: boolean): void {
  // Stryker disable next-line OptionalChaining: at the token endpoint the client is always known
  const bindsTokens = (ctx.oidc.client as { tlsClientCertificateBoundAccessTokens?: boolean } | undefined)
    ?.tlsClientCertificateBoundAccessTokens === true;
  if (api.requireMtls && !bindsTokens) {
    throw new errors.InvalidRequest('tokens for this resource must be bound to a client certificate (RFC 8705), '
      + 'and this client is not registered for certificate-bound tokens');
  }
  if (!hasCertificate && (api.requireMtls || bindsTokens)) {
    throw new errors.InvalidRequest(`${CERTIFICATE_REQUIRED} ${api.requireMtls ? 'resource' : 'client'} (RFC 8705)`);
  }
}

/**
 * The API a token request names, refused whatever the client's roles when it is unknown, or when
 * the request lacks the proof or certificate the API or client requires. Asked by
 * getResourceServerInfo, and for codes and refresh tokens before they are spent
 * (redemption-check.ts): all of it can be cured by a retry.
 */
export async function requireApi(
  ctx: KoaContextWithOIDC, directory: Directory, resource: string, hasCertificate: (ctx: KoaContextWithOIDC) => boolean,
): Promise<ApiEntry> {
  const api = await directory.api(resource);
  if (!api) throw new errors.InvalidTarget('unknown resource');
  if (ctx.oidc.route !== 'token') return api;
  if (!ctx.get('DPoP')) {
    // RFC 9449 §5: a DPoP-bound token needs a proof with the request; without one no token is
    // issued rather than a Bearer token. The request lacks what it needs: RFC 6749 §5.2
    // invalid_request (the provider's own check for clients would say invalid_grant although
    // nothing is wrong with the grant). A proof that is present but invalid is the provider's to
    // refuse (invalid_dpop_proof).
    if (api.requireDpop) throw new errors.InvalidRequest(`${DPOP_PROOF_REQUIRED} resource (RFC 9449)`);
    // Stryker disable next-line OptionalChaining: at the token endpoint the client is always known
    if ((ctx.oidc.client as { dpopBoundAccessTokens?: boolean } | undefined)?.dpopBoundAccessTokens) {
      throw new errors.InvalidRequest(`${DPOP_PROOF_REQUIRED} client (RFC 9449)`);
    }
  }
  checkCertificateBinding(ctx, api, hasCertificate(ctx));
  return api;
}

export function resourceIndicators(directory: Directory, db: Db, hasCertificate: (ctx: KoaContextWithOIDC) => boolean) {
  return {
    enabled: true,

    // No `resource`: the client's only API. RFC 8707 §2: invalid_target when it cannot be chosen.
    async defaultResource(ctx: KoaContextWithOIDC, client: { clientId: string }, oneOf?: string) {
      if (!isClientCredentials(ctx)) return oneOf;
      const entry = await directory.client(client.clientId);
      // Stryker disable next-line OptionalChaining,ArrayDeclaration: the client authenticated a moment ago, so the directory has it
      const apis = [...(entry?.grants.keys() ?? [])];
      if (apis.length === 1) return apis[0];
      if (apis.length === 0) throw new errors.InvalidTarget('this client is not granted any scope on any API');
      throw new errors.InvalidTarget('this client may call several APIs: name one with the resource parameter');
    },

    async getResourceServerInfo(ctx: KoaContextWithOIDC, resource: string, client: { clientId: string }) {
      const api = await requireApi(ctx, directory, resource, hasCertificate);
      if (!isClientCredentials(ctx)) {
        // A person's tokens carry what their roles grant now: a role taken away since consent
        // is gone from the next token. The consent page already left out what they lack.
        const accountId = tokenAccountId(ctx);
        if (!accountId) return resourceServerInfo(api, api.scopes);
        const { scopes } = await personGrants(ctx, db, accountId, api.identifier);
        // Stryker disable next-line MethodExpression: personGrants reads only this API's scopes; the filter keeps it so if that changes
        return resourceServerInfo(api, [...scopes].filter((scope) => api.scopes.has(scope)));
      }

      const entry = await directory.client(client.clientId);
      // Stryker disable next-line OptionalChaining: the client authenticated a moment ago, so the directory has it
      const granted = entry?.grants.get(api.identifier)?.scopes;
      if (!granted?.size) throw new errors.InvalidTarget('this client is not granted any scope on this resource');

      const params = ctx.oidc.params as { scope?: string };
      const requested = (params.scope ?? '').split(' ').filter(Boolean);
      if (requested.length === 0) {
        // No scope: everything the client's roles grant on this API.
        params.scope = [...granted].join(' ');
      }
      // RFC 6749 §5.2 invalid_scope: never silently narrow what was asked for.
      for (const scope of requested) {
        if (!api.scopes.has(scope)) {
          throw new errors.InvalidScope(`scope "${scope}" is not defined by ${api.identifier}`, scope);
        }
        if (!granted.has(scope)) {
          throw new errors.InvalidScope(`scope "${scope}" is not granted to this client`, scope);
        }
      }
      return resourceServerInfo(api, granted);
    },

    // At the token endpoint a sign-in app names the API it wants a token for (RFC 8707 §2.2);
    // without `resource`, an OpenID request gets a token for userinfo (docs/users.md).
    async useGrantedResource() {
      return false;
    },
  };
}
