// The provider's browser-facing endpoints answer every failure with a page. The provider renders
// its own errors there (renderError), but an error thrown while it handles one (parameters that
// are not a request's, on a resume URL) would escape it and become the outer app's JSON 500.
import type Koa from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { ProviderPages } from './configuration.ts';

/** Routes a person's browser reaches (the provider's names, src/domain/endpoints.ts). */
export const BROWSER_ROUTES = new Set([
  'authorization', 'resume', 'end_session', 'end_session_confirm', 'end_session_success', 'code_verification', 'device_resume',
]);

/**
 * On a browser route, an error the provider did not answer itself is an error page: 400 when it
 * escaped the provider's own error handling (which runs only for a request it already refused),
 * logged with the request id so that a fault of ours is still seen.
 */
export function browserErrorPages(pages: ProviderPages, onEscaped: (ctx: KoaContextWithOIDC, error: unknown) => void): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      const oidcCtx = ctx as unknown as KoaContextWithOIDC;
      const route = oidcCtx.oidc?.route;
      if (!route || !BROWSER_ROUTES.has(route)) throw error;
      onEscaped(oidcCtx, error);
      const given = (error as { status?: unknown; expose?: unknown }).status;
      ctx.status = typeof given === 'number' && given >= 400 && given < 500 ? given : 400;
      ctx.set('Cache-Control', 'no-store');
      pages.error(oidcCtx, { error: 'invalid_request', error_description: 'This request cannot be completed. Go back to the app and start again.' });
    }
  };
}
