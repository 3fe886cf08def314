// The sign-in pages behind oidc-provider's interaction API: login, consent, cancel. Every form
// carries a CSRF token; every failure is a page that says what to do, never a stack. The pages
// decide nothing themselves: a login attempt is services/login.ts's, a consent is the plan of
// services/consent.ts, and the provider's side is a SignInFlow (oidc/interactions.ts, wired by
// app.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import Router from '@koa/router';
import Tokens from 'csrf';
import type Koa from 'koa';
import getRawBody from 'raw-body';
import type { Db } from '../db/tables.ts';
import { INTERACTION_PATH, STRICT_ROUTING } from '../domain/endpoints.ts';
import type { Interaction } from '../domain/interaction.ts';
import type { Logger } from '../platform/logger.ts';
import { describeConsent, type ConsentPlan } from '../services/consent.ts';
import type { LoginAttempt, LoginOutcome } from '../services/login.ts';
import { originOf, type Pages } from './pages.ts';

/** What the pages need of the protocol engine (oidc/interactions.ts interactionFlow). */
export interface SignInFlow {
  /** The interaction of this browser; undefined when it has none. */
  find(req: IncomingMessage, res: ServerResponse): Promise<Interaction | undefined>;
  /** The app a person signs in to. */
  client(clientId: string): Promise<{ name: string; firstParty: boolean }>;
  /** Records a consent: `{ grantId }` of a new grant, `{}` for an extended one, undefined when it is gone. */
  grant(interaction: Interaction, plan: ConsentPlan): Promise<{ grantId?: string } | undefined>;
  /** Ends the interaction; resolves where the browser goes next. */
  finish(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>): Promise<string>;
}

export interface InteractionDeps {
  flow: SignInFlow;
  db: Db;
  pages: Pages;
  /** Decides a login attempt and records it (services/login.ts attemptLogin). */
  login(attempt: LoginAttempt): Promise<LoginOutcome>;
  logger: Logger;
  issuerPath: string;
  secureCookies: boolean;
  maxBodyBytes: number;
}

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

/** What every handler of the sign-in pages shares. */
interface PageKit {
  deps: InteractionDeps;
  /** Where the pages live, and the path of their CSRF cookie. */
  cookiePath: string;
}

/**
 * A route's handler whose failures are pages. Wrapped route by route rather than with
 * router.use(), whose layer may match other paths than the routes do: a route reached without
 * it would answer a PageError with a 500.
 */
function page(kit: PageKit, handler: (ctx: Koa.Context) => Promise<void>): Koa.Middleware {
  return async (ctx) => {
    try {
      await handler(ctx);
    } catch (error) {
      if (error instanceof PageError) {
        kit.deps.pages.error(ctx, error.status, { message: error.message, code: error.code });
        return;
      }
      kit.deps.logger.error({ err: error, requestId: ctx.state.requestId }, 'sign-in page failed');
      kit.deps.pages.error(ctx, 500, { message: 'Something went wrong on our side. Try again in a moment.', code: 'server_error' });
    }
  };
}

function csrfToken(kit: PageKit, ctx: Koa.Context): string {
  let secret = ctx.cookies.get(CSRF_COOKIE, { signed: true });
  if (!secret) {
    secret = tokens.secretSync();
    ctx.cookies.set(CSRF_COOKIE, secret, {
      signed: true, httpOnly: true, sameSite: 'strict', secure: kit.deps.secureCookies, path: kit.cookiePath, overwrite: true,
    });
  }
  return tokens.create(secret);
}

async function readForm(kit: PageKit, ctx: Koa.Context): Promise<URLSearchParams> {
  if (!ctx.is('application/x-www-form-urlencoded')) throw new PageError(415, 'invalid_request', 'The form was not sent as a form.');
  let text: string;
  try {
    text = await getRawBody(ctx.req, { limit: kit.deps.maxBodyBytes, encoding: 'utf8' });
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
async function currentInteraction(kit: PageKit, ctx: Koa.Context, prompt?: string): Promise<Interaction> {
  const interaction = await kit.deps.flow.find(ctx.req, ctx.res);
  if (!interaction || interaction.uid !== ctx.params.uid || (prompt && interaction.prompt !== prompt)) {
    throw new PageError(400, 'invalid_request', EXPIRED);
  }
  return interaction;
}

async function finish(kit: PageKit, ctx: Koa.Context, result: Record<string, unknown>): Promise<void> {
  const returnTo = await kit.deps.flow.finish(ctx.req, ctx.res, result);
  ctx.status = 303;
  ctx.redirect(returnTo);
}

/** Forms may lead back to the app (CSP form-action also governs the redirects that follow). */
const formTargets = (interaction: Interaction) => [originOf(interaction.params.redirect_uri)].filter(Boolean) as string[];

function renderLogin(
  kit: PageKit, ctx: Koa.Context, interaction: Interaction, name: string,
  extra: { status?: number; error?: string; username?: string } = {},
): void {
  kit.deps.pages.render(ctx, 'login', {
    clientName: name,
    csrf: csrfToken(kit, ctx),
    action: `${kit.cookiePath}/${interaction.uid}/login`,
    abortAction: `${kit.cookiePath}/${interaction.uid}/abort`,
    username: extra.username ?? String(interaction.params.login_hint ?? ''),
    error: extra.error,
  }, { status: extra.status, formTargets: formTargets(interaction) });
}

/** Records the consent: what the person's roles allow is granted, the rest refused. */
async function grantConsent(kit: PageKit, ctx: Koa.Context, interaction: Interaction): Promise<void> {
  const plan = await describeConsent(kit.deps.db, interaction.accountId!, interaction.consentRequest);
  const granted = await kit.deps.flow.grant(interaction, plan);
  if (!granted) throw new PageError(400, 'invalid_request', EXPIRED);
  await finish(kit, ctx, { consent: granted });
}

/** GET /:uid: the login form, or the consent screen (none for first-party apps). */
async function showInteraction(kit: PageKit, ctx: Koa.Context): Promise<void> {
  const interaction = await currentInteraction(kit, ctx);
  const { name, firstParty } = await kit.deps.flow.client(String(interaction.params.client_id));
  if (interaction.prompt === 'login') {
    renderLogin(kit, ctx, interaction, name);
    return;
  }
  if (interaction.prompt !== 'consent') throw new PageError(400, 'invalid_request', EXPIRED);
  if (firstParty) {
    // First-party apps are the deployer's own: no consent screen.
    await grantConsent(kit, ctx, interaction);
    return;
  }
  const consent = await describeConsent(kit.deps.db, interaction.accountId!, interaction.consentRequest);
  kit.deps.pages.render(ctx, 'consent', {
    clientName: name,
    username: consent.username,
    items: consent.items,
    dropped: consent.resources.flatMap((r) => r.refused),
    csrf: csrfToken(kit, ctx),
    action: `${kit.cookiePath}/${interaction.uid}/confirm`,
  }, { formTargets: formTargets(interaction) });
}

/** POST /:uid/login: the attempt is decided by the login service; the page shows its outcome. */
async function submitLogin(kit: PageKit, ctx: Koa.Context): Promise<void> {
  const interaction = await currentInteraction(kit, ctx, 'login');
  const form = await readForm(kit, ctx);
  const username = (form.get('username') ?? '').trim();
  const password = form.get('password') ?? '';
  const clientId = String(interaction.params.client_id);
  const { name } = await kit.deps.flow.client(clientId);
  if (!username || !password) {
    renderLogin(kit, ctx, interaction, name, { status: 400, error: 'Enter your username and password.', username });
    return;
  }
  const outcome = await kit.deps.login({ username, password, sourceAddress: ctx.ip, clientId, requestId: ctx.state.requestId as string });
  if (outcome.kind === 'throttled') {
    ctx.set('Retry-After', String(outcome.retryAfterSeconds));
    renderLogin(kit, ctx, interaction, name, {
      status: 429, username,
      error: `Too many failed sign-in attempts. Try again in ${formatWait(outcome.retryAfterSeconds)}.`,
    });
    return;
  }
  if (outcome.kind === 'refused') {
    renderLogin(kit, ctx, interaction, name, {
      status: 401, username,
      // The same words whether the username exists or not.
      error: outcome.locked ? 'Wrong username or password. Too many failed attempts: sign-in is paused for a while.'
        : 'Wrong username or password.',
    });
    return;
  }
  await finish(kit, ctx, { login: { accountId: outcome.user.id } });
}

/** POST /:uid/confirm: allowed, the consent is recorded; refused, the app gets access_denied. */
async function submitConsent(kit: PageKit, ctx: Koa.Context): Promise<void> {
  const interaction = await currentInteraction(kit, ctx, 'consent');
  const form = await readForm(kit, ctx);
  if (form.get('decision') !== 'allow') {
    await finish(kit, ctx, { error: 'access_denied', error_description: 'the person did not allow access' });
    return;
  }
  await grantConsent(kit, ctx, interaction);
}

/** POST /:uid/abort: the person cancelled. */
async function abortInteraction(kit: PageKit, ctx: Koa.Context): Promise<void> {
  await currentInteraction(kit, ctx);
  await readForm(kit, ctx);
  await finish(kit, ctx, { error: 'access_denied', error_description: 'the person cancelled the sign-in' });
}

export function interactionRoutes(deps: InteractionDeps): Koa.Middleware {
  const kit: PageKit = { deps, cookiePath: `${deps.issuerPath}${INTERACTION_PATH}` };
  // Exact paths only (src/domain/endpoints.ts): the sign-in limit counts these and no other spelling.
  const router = new Router({ prefix: kit.cookiePath, ...STRICT_ROUTING });
  router.get('/:uid', page(kit, (ctx) => showInteraction(kit, ctx)));
  router.post('/:uid/login', page(kit, (ctx) => submitLogin(kit, ctx)));
  router.post('/:uid/confirm', page(kit, (ctx) => submitConsent(kit, ctx)));
  router.post('/:uid/abort', page(kit, (ctx) => abortInteraction(kit, ctx)));
  return router.routes() as Koa.Middleware;
}
