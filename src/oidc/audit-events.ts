// What the provider reports to the audit log: refused token requests and registration failures
// (its error events say which requests; what is recorded is the answer the client finally got,
// after Postern's own middleware reworded or replaced it), successful revocations (it emits no
// event for them), and token issuance, which is only counted (no write on the token path).
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { auditGrantType, type AuditSink } from '../domain/audit-events.ts';

interface ProviderError { error?: string; error_description?: string; statusCode?: number }

const where = (ctx: KoaContextWithOIDC) => ({
  sourceAddress: ctx.ip,
  requestId: (ctx.state?.requestId as string | undefined) ?? null,
});

/**
 * The client a refused request is about: the one the provider found for the id it named (it may
 * still have failed to authenticate). An id that names no client is not recorded: it is the
 * caller's free choice, and refusals are counted per client (aggregationKeys), so each made-up id
 * would be a row of its own.
 */
function foundClientId(ctx: KoaContextWithOIDC): string | undefined {
  return ctx.oidc?.client?.clientId;
}

type FailureType = 'token.failure' | 'registration.failure';

/**
 * Records a refused request as the client was answered: the final status and JSON error, which
 * may differ from the provider's error (a JWT refused as unsupported_token_type and then
 * introspected by TokenPolicy is no failure at all; a replayed DPoP proof is answered
 * invalid_dpop_proof, not invalid_grant).
 */
function recordFailure(sink: AuditSink, ctx: KoaContextWithOIDC, type: FailureType, error: ProviderError): void {
  // server_error is logged with its stack by the caller; the audit log records refusals.
  if (ctx.status < 400 || ctx.status >= 500) return;
  const body = ctx.body as { error?: unknown; error_description?: unknown } | undefined;
  const answer = body && typeof body === 'object' && typeof body.error === 'string'
    ? { error: body.error, description: typeof body.error_description === 'string' ? body.error_description : undefined }
    : { error: error.error, description: error.error_description };
  const clientId = foundClientId(ctx);
  sink.record({
    type,
    actor: clientId ? { type: 'client', id: clientId } : { type: 'anonymous' },
    outcome: 'failure',
    ...where(ctx),
    details: {
      error: answer.error,
      errorDescription: answer.description,
      status: ctx.status,
      route: ctx.oidc?.route,
      // The caller writes grant_type: a served one or `other`, so it cannot key new counts.
      grantType: auditGrantType((ctx.oidc?.params as { grant_type?: unknown } | undefined)?.grant_type),
    },
  });
}

export function auditProviderEvents(provider: Provider, sink: AuditSink): void {
  // Which requests were refused, and how; recorded once their answer is final (below).
  const refused = new WeakMap<object, { type: FailureType; error: ProviderError }>();
  const failure = (type: FailureType) => (ctx: KoaContextWithOIDC, error: ProviderError) => {
    if (error?.statusCode && error.statusCode < 500) refused.set(ctx, { type, error });
  };
  // RFC 6749 §5.2 errors of the token endpoint: invalid_client, invalid_grant, invalid_scope, ...
  provider.on('grant.error', failure('token.failure'));
  provider.on('revocation.error', failure('token.failure'));
  provider.on('introspection.error', failure('token.failure'));
  const on = provider.on.bind(provider) as (event: string, listener: (...args: never[]) => void) => void;
  for (const event of ['registration_create.error', 'registration_read.error', 'registration_update.error', 'registration_delete.error']) {
    on(event, failure('registration.failure'));
  }

  const issued = (token: { clientId?: string }) => {
    if (token.clientId) sink.countTokenIssued(token.clientId);
  };
  for (const event of ['access_token.issued', 'access_token.saved', 'client_credentials.issued', 'client_credentials.saved']) {
    on(event, issued);
  }

  provider.use(async (koaCtx, next) => {
    await next();
    const ctx = koaCtx as unknown as KoaContextWithOIDC;
    const failed = refused.get(ctx);
    if (failed) recordFailure(sink, ctx, failed.type, failed.error);
    // RFC 7009 §2.2: 200 means revoked (or not a valid token); the token itself is never recorded.
    if (ctx.oidc?.route === 'revocation' && ctx.status === 200 && ctx.oidc.client) {
      const hint = (ctx.oidc.params as { token_type_hint?: unknown } | undefined)?.token_type_hint;
      sink.record({
        type: 'token.revoked',
        actor: { type: 'client', id: ctx.oidc.client.clientId },
        ...where(ctx),
        details: { tokenTypeHint: typeof hint === 'string' ? hint : undefined },
      });
    }
  });
}
