// The plain client-credentials request, answered without the provider's detour: a service
// authenticating with its client secret (Basic or in the body), asking for a JWT for one API with
// scopes its roles grant, and nothing else in play: no DPoP proof, no client certificate, no
// assertion, no network allow-list, no certificate- or DPoP-bound client or API, no parameter
// beyond grant_type, scope, resource and the credentials. A federated client (a platform token as
// its assertion) counts as plain once federated-client-auth.ts, in front of this, has verified
// the token (signature, lifetime, audience, single-use jti, binding) and put its proof in place
// of the assertion: the proof is then its secret, as the provider's compareClientSecret takes it.
// The token is what the provider would issue (same claims, same key, same header), the answer the
// same JSON and headers, and the issuance counted the same way (audit count and metrics).
// Everything else, and every failure, goes to the provider untouched (the body is put back on the
// stream), so every error response still comes from the provider.
// test/client-credentials-fast-path.test.ts and test/federated-fast-path.test.ts send tables of
// requests to a server with this path and one without and compare the answers.
import type { IncomingMessage } from 'node:http';
import type { KeySet } from '../domain/signing-keys.ts';
import type { ApiEntry, ClientEntry, Directory } from './directory.ts';
import { callerOf, plainClient, readPlainForm, SCOPE_LIST, type FastPath } from './fast-path-request.ts';
import { canSign, signAccessToken, signingKeys, tokenId } from './fast-path-tokens.ts';

const ALLOWED_PARAMS = new Set(['grant_type', 'scope', 'resource', 'client_id', 'client_secret']);

export interface ClientCredentialsFastPathOptions {
  directory: Directory;
  /** The provider's key set: it signs with the one signing key of each type (jwks.ts). */
  keys: KeySet;
  issuer: string;
  /** The token endpoint's path. */
  path: string;
  maxBodyBytes: number;
  /** The provider's own scopes (OpenID scopes): requests naming one are the provider's. */
  providerScopes: ReadonlySet<string>;
  /** Whether the request presents a TLS client certificate (mutual TLS is the provider's). */
  hasCertificate(req: IncomingMessage): boolean;
  /** Told of each token issued here, as the provider's issuance events tell (audit, metrics). */
  onIssued(clientId: string, api: string): void;
}

/** The scopes the token carries, as resource-policy.ts and the provider decide them; undefined: not plain. */
function grantedScopes(client: ClientEntry, api: ApiEntry, raw: string | null, providerScopes: ReadonlySet<string>): string[] | undefined {
  const granted = client.grants.get(api.identifier)?.scopes;
  if (!granted?.size) return undefined;
  if (raw === null || raw === '') return [...granted];
  if (!SCOPE_LIST.test(raw)) return undefined;
  const requested = [...new Set(raw.split(' '))];
  for (const scope of requested) {
    if (providerScopes.has(scope) || !api.scopes.has(scope) || !granted.has(scope)) return undefined;
  }
  return requested;
}

export function clientCredentialsFastPath(options: ClientCredentialsFastPathOptions): FastPath {
  const { directory, issuer, path, maxBodyBytes, providerScopes } = options;
  const keys = signingKeys(options.keys);
  return async (request) => {
    const params = await readPlainForm(request, path, maxBodyBytes, ALLOWED_PARAMS);
    if (!params || params.get('grant_type') !== 'client_credentials' || options.hasCertificate(request.req)) return undefined;
    const caller = callerOf(request.authorization, params);
    if (!caller) return undefined;
    const client = await directory.client(caller.clientId);
    if (!plainClient(client, caller, Date.now(), request.req, 'client_credentials')) return undefined;
    // No resource: the client's only API (resource-policy.ts defaultResource).
    let resource = params.get('resource');
    if (resource === null) {
      if (client.grants.size !== 1) return undefined;
      [resource] = client.grants.keys() as unknown as [string];
    }
    // RFC 8707 §2: an absolute URI without a fragment; the provider words the refusals.
    if (resource.includes('#') || !URL.canParse(resource)) return undefined;
    const api = await directory.api(resource);
    if (!api || api.tokenFormat !== 'jwt' || api.requireDpop || api.requireMtls) return undefined;
    const scopes = grantedScopes(client, api, params.get('scope'), providerScopes);
    const signing = keys.get(api.signingAlg);
    if (!scopes || !canSign(signing)) return undefined;

    // The claims in the order oidc-provider writes them (lib/models/formats/jwt.js), with
    // Postern's extra claims first (configuration.ts tokenClaims).
    const roles = client.grants.get(api.identifier)?.roles;
    const iat = Math.floor(Date.now() / 1000);
    const scope = scopes.join(' ') || undefined;
    const payload = {
      roles: roles ? [...roles].sort() : [],
      jti: tokenId(),
      sub: client.clientId,
      iat,
      exp: iat + api.accessTokenTtl,
      scope,
      client_id: client.clientId,
      iss: issuer,
      aud: api.identifier,
    };
    const token = await signAccessToken(signing, payload);

    options.onIssued(client.clientId, api.identifier);
    return {
      status: 200,
      body: { access_token: token, expires_in: api.accessTokenTtl, token_type: 'Bearer', ...(scope ? { scope } : {}) },
      clientId: client.clientId,
    };
  };
}
