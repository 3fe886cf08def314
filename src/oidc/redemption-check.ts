// Refusals that come before an authorization code or a refresh token is spent.
//
// oidc-provider consumes a code, or rotates a refresh token, after its own checks (client, PKCE,
// redirect_uri, scope, DPoP and certificate bindings) but before it resolves the resource of the
// access token and asks getResourceServerInfo about it. Whatever is refused there (an unknown or
// ungranted resource, a proof or certificate the API requires) used to spend the token: the
// client's corrected retry then looked like a replay, and reuse detection revoked the whole grant
// (RFC 9700 §4.14.2). Here the same rules run at the moment the provider consumes, after all its
// own checks and in the same order of refusals, so a request that would be refused spends nothing.
//
// A code stays good for one exchange: nothing is issued until it is consumed, atomically, and
// RFC 6749 §4.1.2 forbids using a code twice, not asking twice for what it grants. The provider
// itself leaves a code unspent when PKCE, redirect_uri or the client's binding is wrong.
import { calculateJwkThumbprint, decodeProtectedHeader } from 'jose';
import Provider, { errors, type Adapter, type KoaContextWithOIDC } from 'oidc-provider';
import type { Directory } from './directory.ts';
import { requireApi } from './resource-policy.ts';

/** What a code and a refresh token say about the tokens they may give. */
interface Source {
  resource?: string | string[];
  resourceIndicators: Set<string>;
  scopes: Set<string>;
  /** RFC 9449 §10: the code may only be exchanged with a proof signed by this key. */
  dpopJkt?: string;
}

const SPENDABLE = new Set(['AuthorizationCode', 'RefreshToken']);

/**
 * The resource the provider will issue the access token for, or undefined for userinfo. The
 * provider's own rule with Postern's settings (userinfo on, useGrantedResource off, and a
 * defaultResource that makes no choice outside client_credentials), refusing what it refuses.
 */
function resourceToIssue(ctx: KoaContextWithOIDC, source: Source, scopes: Set<string>): string | undefined {
  const requested = (ctx.oidc.params as { resource?: string | string[] }).resource;
  let resource: string | string[];
  if (requested) {
    resource = requested;
  } else if (!source.resource || source.resource.length === 0 || scopes.has('openid')) {
    return undefined;
  } else {
    resource = source.resource;
  }
  // RFC 8707 §2.2: one access token, one resource, and only one the grant holds.
  if (Array.isArray(resource)) {
    throw new errors.InvalidTarget('only a single resource indicator value must be requested/resolved during Access Token Request');
  }
  if (!source.resourceIndicators.has(resource)) throw new errors.InvalidTarget();
  return resource;
}

/** RFC 9449 §10: a code bound with dpop_jkt needs a proof by that key (already verified). */
async function checkCodeBinding(ctx: KoaContextWithOIDC, jkt: string): Promise<void> {
  const proof = ctx.get('DPoP');
  if (!proof) throw new errors.InvalidRequest('a DPoP proof is required for this authorization code (RFC 9449 §10)');
  const { jwk } = decodeProtectedHeader(proof);
  if (!jwk || await calculateJwkThumbprint(jwk) !== jkt) {
    throw new errors.InvalidGrant('DPoP proof key thumbprint does not match dpop_jkt');
  }
}

export function redemptionCheck(directory: Directory, hasCertificate: (ctx: KoaContextWithOIDC) => boolean) {
  return async (ctx: KoaContextWithOIDC): Promise<void> => {
    const params = ctx.oidc.params as { grant_type?: string; code?: string; scope?: string };
    let source: Source | undefined;
    let scopes: Set<string> | undefined;
    if (params.grant_type === 'refresh_token') {
      source = ctx.oidc.entities.RefreshToken as unknown as Source | undefined;
      scopes = params.scope ? ctx.oidc.requestParamScopes : source?.scopes;
    } else if (params.grant_type === 'authorization_code' && params.code) {
      // The provider keeps the code to itself until it is consumed; this finds it again.
      source = await ctx.oidc.provider.AuthorizationCode.find(params.code, { ignoreExpiration: true }) as unknown as Source | undefined;
      scopes = source?.scopes;
      if (source?.dpopJkt) await checkCodeBinding(ctx, source.dpopJkt);
    }
    if (!source || !scopes) return;
    const resource = resourceToIssue(ctx, source, scopes);
    if (resource) await requireApi(ctx, directory, resource, hasCertificate);
  };
}

/**
 * The provider's storage, with `check` run before a code or refresh token is consumed at the
 * token endpoint (the request is the provider's current context). A refusal leaves it unspent.
 */
export function checkBeforeConsuming(
  factory: (model: string) => Adapter,
  check: (ctx: KoaContextWithOIDC) => Promise<void>,
): (model: string) => Adapter {
  return (model) => {
    const adapter = factory(model);
    if (!SPENDABLE.has(model)) return adapter;
    return {
      upsert: (id, payload, expiresIn) => adapter.upsert(id, payload, expiresIn),
      find: (id) => adapter.find(id),
      findByUid: (uid) => adapter.findByUid(uid),
      findByUserCode: (userCode) => adapter.findByUserCode(userCode),
      destroy: (id) => adapter.destroy(id),
      revokeByGrantId: (grantId) => adapter.revokeByGrantId(grantId),
      consume: async (id) => {
        const ctx = Provider.ctx;
        if (ctx?.oidc?.route === 'token') await check(ctx);
        await adapter.consume(id);
      },
    };
  };
}
