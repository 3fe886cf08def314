// Server-rendered pages (views/*.eta, auto-escaped) with the headers every sign-in page sends:
// no caching, a strict Content-Security-Policy with a per-response nonce for the inline style,
// no framing, no sniffing, no referrer.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';
import type { Context } from 'koa';

const VIEWS = fileURLToPath(new URL('../../views', import.meta.url));

export interface Pages {
  /**
   * Renders `views/<template>.eta`. `formTargets` are origins a form on the page may lead to
   * (CSP form-action also governs the redirects that follow a submission).
   */
  render(ctx: Context, template: string, data: Record<string, unknown>, options?: { status?: number; formTargets?: string[] }): void;
  /** A page that says what went wrong, and nothing internal. */
  error(ctx: Context, status: number, error: { heading?: string; message: string; code?: string }): void;
}

export function createPages(): Pages {
  const eta = new Eta({ views: VIEWS, cache: true, autoEscape: true, autoTrim: false });

  const render: Pages['render'] = (ctx, template, data, options = {}) => {
    const nonce = randomBytes(16).toString('base64');
    const formAction = ["'self'", ...(options.formTargets ?? [])].join(' ');
    ctx.status = options.status ?? 200;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
    ctx.set('Content-Security-Policy', [
      "default-src 'none'",
      `style-src 'nonce-${nonce}'`,
      `form-action ${formAction}`,
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ].join('; '));
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.body = eta.render(template, { ...data, nonce });
  };

  return {
    render,
    error(ctx, status, error) {
      render(ctx, 'error', {
        heading: error.heading ?? 'Something went wrong',
        message: error.message,
        code: error.code,
        requestId: ctx.state?.requestId,
      }, { status });
    },
  };
}

/** The origin of a URL, for CSP form-action; undefined when it has none worth naming. */
export function originOf(url: unknown): string | undefined {
  if (typeof url !== 'string') return undefined;
  const parsed = URL.parse(url);
  if (!parsed) return undefined;
  // A private-use scheme (native apps) has an opaque origin: allow the scheme itself.
  return parsed.origin !== 'null' ? parsed.origin : parsed.protocol;
}

type OidcContext = Context & { oidc?: { params?: Record<string, unknown> } };

/** The pages oidc-provider renders itself (errors in browser flows, logout), in our views. */
export function providerPages(pages: Pages) {
  return {
    error(ctx: OidcContext, out: { error: string; error_description?: string }) {
      const status = ctx.status >= 400 ? ctx.status : 400;
      const internal = status >= 500 || out.error === 'server_error';
      pages.error(ctx, status, {
        heading: internal ? 'Something went wrong' : 'This sign-in request cannot continue',
        // The provider's descriptions are written for people and hold no internal detail; ours
        // for a server error is fixed.
        message: internal ? 'Something went wrong on our side. Try again in a moment.' : (out.error_description ?? out.error),
        code: out.error,
      });
    },
    logout(ctx: OidcContext, form: { action: string; xsrf: string; clientName?: string }) {
      const target = originOf(ctx.oidc?.params?.post_logout_redirect_uri);
      pages.render(ctx, 'logout', form, { formTargets: target ? [target] : [] });
    },
    loggedOut(ctx: OidcContext) {
      pages.render(ctx, 'logged-out', {});
    },
  };
}
