// What a refused token request tells the client. The provider answers some refusals with a bare
// `invalid_grant`, "grant request is invalid", although nothing is wrong with the grant: the
// request lacks a DPoP proof or a client certificate that the client, the code or the refresh
// token is bound to, which the client can add and retry (nothing was spent). RFC 6749 §5.2 calls
// a request missing what it needs invalid_request; the docs promise these words. And a replayed
// DPoP proof is invalid_dpop_proof (RFC 9449 §11.1), not a bad grant.
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { REFUSAL_DETAILS } from './provider-texts.ts';

interface Answer { error: string; error_description: string }
interface ProviderError { error_detail?: string }

const proofRequired = (what: string, section = '') =>
  ({ error: 'invalid_request', error_description: `a DPoP proof is required for this ${what} (RFC 9449${section})` });
const certificateRequired = (what: string) =>
  ({ error: 'invalid_request', error_description: `a client certificate is required for this ${what} (RFC 8705)` });

/** The answer for a refusal the provider words too vaguely, by its (never shown) detail. */
function answerFor(ctx: KoaContextWithOIDC, error: ProviderError): Answer | undefined {
  const client = ctx.oidc?.client as { tlsClientCertificateBoundAccessTokens?: boolean } | undefined;
  switch (error.error_detail) {
    case REFUSAL_DETAILS.dpopReplay:
      return { error: 'invalid_dpop_proof', error_description: 'this DPoP proof was used before (RFC 9449 §11.1)' };
    // The client requires DPoP (dpop_bound_access_tokens, RFC 9449 §5.2).
    case REFUSAL_DETAILS.dpopMissing:
      return proofRequired('client');
    // A public client's refresh token, bound to the key it first used (RFC 9449 §5). With a proof
    // by another key the grant is what is wrong: invalid_grant stays.
    case REFUSAL_DETAILS.jktMismatch:
      return ctx.get('DPoP') ? undefined : proofRequired('refresh token', ' §5');
    // RFC 8705 §3: the client's tokens are bound to its certificate, or this refresh token is.
    case REFUSAL_DETAILS.certificateMissing:
      return certificateRequired(client?.tlsClientCertificateBoundAccessTokens ? 'client' : 'refresh token');
    default:
      return undefined;
  }
}

/** Replaces the provider's answer to the refusals above at the token endpoint. */
export function tokenErrorAnswers(provider: Provider) {
  const answers = new WeakMap<object, Answer>();
  provider.on('grant.error', (ctx: KoaContextWithOIDC, error: ProviderError) => {
    const answer = answerFor(ctx, error);
    if (answer) answers.set(ctx, answer);
  });
  return async (ctx: KoaContextWithOIDC, next: () => Promise<void>) => {
    await next();
    const answer = answers.get(ctx);
    if (answer && ctx.status === 400) ctx.body = answer;
  };
}
