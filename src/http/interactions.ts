// The sign-in pages behind oidc-provider's interaction API: login, consent, cancel. Every form
// carries a CSRF token; every failure is a page that says what to do, never a stack.
import Router from '@koa/router';
import Tokens from 'csrf';
import type Koa from 'koa';
import type Provider from 'oidc-provider';
import getRawBody from 'raw-body';
import type { AuditSink } from '../domain/audit-events.ts';
import type { Db } from '../db/tables.ts';
import type { Logger } from '../platform/logger.ts';
import type { Metrics } from '../platform/metrics.ts';
import { INTERACTION_PATH, STRICT_ROUTING } from '../domain/endpoints.ts';
import { describeConsent } from '../services/consent.ts';
import type { LoginProtection } from '../services/login-protection.ts';
import { authenticateUser } from '../services/users.ts';
import { originOf, type Pages } from './pages.ts';

export interface InteractionDeps {
  /** The provider now serving (it is rebuilt when signing keys change). */
  provider(): Provider;
  db: Db;
  pages: Pages;
  protection: LoginProtection;
  logger: Logger;
  issuerPath: string;
  secureCookies: boolean;
  maxBodyBytes: number;
  /** login.success, login.failure and login.lockout go here. */
  audit: AuditSink;
  /** Logins by outcome, and lockouts. */
  metrics: Pick<Metrics, 'logins' | 'lockouts'>;
}

type Details = Awaited<ReturnType<Provider['interactionDetails']>>;
interface ConsentDetails { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> }

const CSRF_COOKIE = 'postern.csrf';
const tokens = new Tokens();

/** A problem to show on the error page with this status (a stale or forged interaction, say). */
class PageError extends Error {
  status: number;
  code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const EXPIRED = 'This sign-in page has expired or was already used. Go back to the app and sign in again.';

function formatWait(seconds: number): string {
  return seconds < 90 ? `${seconds} second${seconds === 1 ? '' : 's'}` : `${Math.ceil(seconds / 60)} minutes`;
}

export function interactionRoutes(deps: InteractionDeps): Koa.Middleware {
  const cookiePath = `${deps.issuerPath}${INTERACTION_PATH}`;
  // Exact paths only (src/domain/endpoints.ts): the sign-in limit counts these and no other spelling.
  const router = new Router({ prefix: cookiePath, ...STRICT_ROUTING });

  /**
   * A route's handler whose failures are pages. Wrapped route by route rather than with
   * router.use(), whose layer may match other paths than the routes do: a route reached without
   * it would answer a PageError with a 500.
   */
  function page(handler: (ctx: Koa.Context) => Promise<void>): Koa.Middleware {
    return async (ctx) => {
      try {
        await handler(ctx);
      } catch (error) {
        if (error instanceof PageError) {
          deps.pages.error(ctx, error.status, { message: error.message, code: error.code });
          return;
        }
        deps.logger.error({ err: error, requestId: ctx.state.requestId }, 'sign-in page failed');
        deps.pages.error(ctx, 500, { message: 'Something went wrong on our side. Try again in a moment.', code: 'server_error' });
      }
    };
  }

  function csrfToken(ctx: Koa.Context): string {
    let secret = ctx.cookies.get(CSRF_COOKIE, { signed: true });
    if (!secret) {
      secret = tokens.secretSync();
      ctx.cookies.set(CSRF_COOKIE, secret, {
        signed: true, httpOnly: true, sameSite: 'strict', secure: deps.secureCookies, path: cookiePath, overwrite: true,
      });
    }
    return tokens.create(secret);
  }

  async function readForm(ctx: Koa.Context): Promise<URLSearchParams> {
    if (!ctx.is('application/x-www-form-urlencoded')) throw new PageError(415, 'invalid_request', 'The form was not sent as a form.');
    let text: string;
    try {
      text = await getRawBody(ctx.req, { limit: deps.maxBodyBytes, encoding: 'utf8' });
    } catch {
      throw new PageError(413, 'invalid_request', 'The form could not be read.');
    }
    const form = new URLSearchParams(text);
    const secret = ctx.cookies.get(CSRF_COOKIE, { signed: true });
    const token = form.get('csrf');
    if (!secret || !token || !tokens.verify(secret, token)) {
      throw new PageError(403, 'invalid_request', 'The form has expired or did not come from this page. Go back to the app and sign in again.');
    }
    return form;
  }

  /** The interaction the browser is in, which must be the one in the URL and at `prompt`. */
  async function interaction(ctx: Koa.Context, prompt?: string): Promise<Details> {
    let details: Details;
    try {
      details = await deps.provider().interactionDetails(ctx.req, ctx.res);
    } catch {
      throw new PageError(400, 'invalid_request', EXPIRED);
    }
    if (details.uid !== ctx.params.uid || (prompt && details.prompt.name !== prompt)) {
      throw new PageError(400, 'invalid_request', EXPIRED);
    }
    return details;
  }

  /** The app the person is signing in to: the name to show, and whether it is first-party. */
  async function clientOf(details: Details): Promise<{ name: string; firstParty: boolean }> {
    const client = await deps.provider().Client.find(String(details.params.client_id));
    return {
      name: client?.clientName ?? String(details.params.client_id),
      firstParty: (client as { first_party?: boolean } | undefined)?.first_party === true,
    };
  }

  async function finish(ctx: Koa.Context, result: Record<string, unknown>): Promise<void> {
    const returnTo = await deps.provider().interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(returnTo);
  }

  function renderLogin(ctx: Koa.Context, details: Details, name: string, extra: { status?: number; error?: string; username?: string } = {}) {
    deps.pages.render(ctx, 'login', {
      clientName: name,
      csrf: csrfToken(ctx),
      action: `${cookiePath}/${details.uid}/login`,
      abortAction: `${cookiePath}/${details.uid}/abort`,
      username: extra.username ?? String(details.params.login_hint ?? ''),
      error: extra.error,
    }, { status: extra.status, formTargets: [originOf(details.params.redirect_uri)].filter(Boolean) as string[] });
  }

  /** Records the consent: what the person's roles allow is granted, the rest refused. */
  async function grantConsent(details: Details): Promise<string | undefined> {
    const provider = deps.provider();
    const accountId = details.session!.accountId;
    const clientId = String(details.params.client_id);
    const grant = details.grantId ? await provider.Grant.find(details.grantId) : new provider.Grant({ accountId, clientId });
    if (!grant) throw new PageError(400, 'invalid_request', EXPIRED);
    const consent = await describeConsent(deps.db, accountId, details.prompt.details as ConsentDetails);
    if (consent.oidcScopes.length) grant.addOIDCScope(consent.oidcScopes.join(' '));
    if (consent.oidcClaims.length) grant.addOIDCClaims(consent.oidcClaims);
    for (const resource of consent.resources) {
      if (resource.granted.length) grant.addResourceScope(resource.identifier, resource.granted.join(' '));
      // Refused scopes count as answered, so the person is not asked again for them.
      if (resource.refused.length) grant.rejectResourceScope(resource.identifier, resource.refused.join(' '));
    }
    const grantId = await grant.save();
    return details.grantId ? undefined : grantId;
  }

  router.get('/:uid', page(async (ctx) => {
    const details = await interaction(ctx);
    const { name, firstParty } = await clientOf(details);
    if (details.prompt.name === 'login') {
      renderLogin(ctx, details, name);
      return;
    }
    if (details.prompt.name !== 'consent') throw new PageError(400, 'invalid_request', EXPIRED);
    if (firstParty) {
      // First-party apps are the deployer's own: no consent screen.
      const grantId = await grantConsent(details);
      await finish(ctx, { consent: grantId ? { grantId } : {} });
      return;
    }
    const accountId = details.session!.accountId;
    const consent = await describeConsent(deps.db, accountId, details.prompt.details as ConsentDetails);
    deps.pages.render(ctx, 'consent', {
      clientName: name,
      username: consent.username,
      items: consent.items,
      dropped: consent.resources.flatMap((r) => r.refused),
      csrf: csrfToken(ctx),
      action: `${cookiePath}/${details.uid}/confirm`,
    }, { formTargets: [originOf(details.params.redirect_uri)].filter(Boolean) as string[] });
  }));

  /** A login event: who (when known), from where, for which app; never the password. */
  function recordLogin(ctx: Koa.Context, details: Details, event: {
    type: 'login.success' | 'login.failure' | 'login.lockout'; username: string; userId?: string; reason?: string;
  }): void {
    deps.metrics.logins.inc({ outcome: event.type.slice('login.'.length) });
    if (event.type === 'login.lockout') deps.metrics.lockouts.inc();
    deps.audit.record({
      type: event.type,
      actor: event.userId ? { type: 'user', id: event.userId } : { type: 'anonymous' },
      outcome: event.type === 'login.success' ? 'success' : 'failure',
      clientId: String(details.params.client_id),
      userId: event.userId ?? null,
      sourceAddress: ctx.ip,
      requestId: ctx.state.requestId as string,
      details: { username: event.username.slice(0, 100), ...(event.reason ? { reason: event.reason } : {}) },
    });
  }

  router.post('/:uid/login', page(async (ctx) => {
    const details = await interaction(ctx, 'login');
    const form = await readForm(ctx);
    const username = (form.get('username') ?? '').trim();
    const password = form.get('password') ?? '';
    const { name } = await clientOf(details);
    if (!username || !password) {
      renderLogin(ctx, details, name, { status: 400, error: 'Enter your username and password.', username });
      return;
    }
    const gate = await deps.protection.check(username, ctx.ip);
    if (!gate.allowed) {
      // Attempts while locked are failures anyone can repeat at will (counted, docs/audit.md);
      // login.lockout is the attempt that locked.
      if (gate.locked) recordLogin(ctx, details, { type: 'login.failure', username, reason: 'locked' });
      ctx.set('Retry-After', String(gate.retryAfterSeconds));
      renderLogin(ctx, details, name, {
        status: 429, username,
        error: `Too many failed sign-in attempts. Try again in ${formatWait(gate.retryAfterSeconds)}.`,
      });
      return;
    }
    const user = await authenticateUser(deps.db, username, password);
    if (!user) {
      const { locked } = await deps.protection.recordFailure(username, ctx.ip);
      recordLogin(ctx, details, { type: locked ? 'login.lockout' : 'login.failure', username });
      renderLogin(ctx, details, name, {
        status: 401, username,
        // The same words whether the username exists or not.
        error: locked ? 'Wrong username or password. Too many failed attempts: sign-in is paused for a while.'
          : 'Wrong username or password.',
      });
      return;
    }
    await deps.protection.recordSuccess(username);
    recordLogin(ctx, details, { type: 'login.success', username: user.username, userId: user.id });
    await finish(ctx, { login: { accountId: user.id } });
  }));

  router.post('/:uid/confirm', page(async (ctx) => {
    const details = await interaction(ctx, 'consent');
    const form = await readForm(ctx);
    if (form.get('decision') !== 'allow') {
      await finish(ctx, { error: 'access_denied', error_description: 'the person did not allow access' });
      return;
    }
    const grantId = await grantConsent(details);
    await finish(ctx, { consent: grantId ? { grantId } : {} });
  }));

  router.post('/:uid/abort', page(async (ctx) => {
    await interaction(ctx);
    await readForm(ctx);
    await finish(ctx, { error: 'access_denied', error_description: 'the person cancelled the sign-in' });
  }));

  return router.routes() as Koa.Middleware;
}
