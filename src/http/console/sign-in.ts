// Signing in to the console: authorization code + PKCE with the console's own first-party app
// (migration 0016), through Postern's login page. Until the code is redeemed nothing is stored
// on the server: the state, nonce and PKCE verifier travel in a signed cookie of the browser.
// The session row is written only for a person who holds admin:read on urn:postern now.
import { createHash, randomBytes } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type Koa from 'koa';
import {
  CONSOLE_CLIENT_ID, consoleAuthorityOf, endConsoleSession, startConsoleSession,
} from '../../services/console-sessions.ts';
import { originOf } from '../pages.ts';
import {
  CONSOLE_PATH, ConsolePageError, FLOW_COOKIE, newCsrfSecret, readForm, render, SESSION_COOKIE,
  type ConsoleDeps, type ConsoleState,
} from './kit.ts';

const FLOW_SECONDS = 600;

interface Flow { state: string; verifier: string; nonce: string }

const random = () => randomBytes(32).toString('base64url');

export function consoleUrls(deps: Pick<ConsoleDeps, 'consoleOrigin'>) {
  return {
    redirectUri: `${deps.consoleOrigin}${CONSOLE_PATH}/callback`,
    postLogoutRedirectUri: `${deps.consoleOrigin}${CONSOLE_PATH}/signed-out`,
  };
}

function cookieOptions(deps: ConsoleDeps, maxAgeSeconds?: number) {
  // Lax: the browser comes back from the login page by a redirect that may start on another
  // host of the deployment. Changes need a CSRF token bound to the session besides.
  return {
    signed: true, httpOnly: true, sameSite: 'lax' as const, secure: deps.secureCookies, path: CONSOLE_PATH, overwrite: true,
    ...(maxAgeSeconds ? { maxAge: maxAgeSeconds * 1000 } : {}),
  };
}

export function clearCookie(deps: ConsoleDeps, ctx: Koa.Context, name: string): void {
  ctx.cookies.set(name, '', { ...cookieOptions(deps), maxAge: 0 });
}

/** GET /console/login: to the login page, with a fresh state, nonce and PKCE verifier. */
export function startSignIn(deps: ConsoleDeps): Koa.Middleware {
  return (ctx) => {
    // The cookie must be set where the browser comes back: on the console's own origin.
    if (`${ctx.protocol}://${ctx.host}` !== deps.consoleOrigin) {
      ctx.status = 303;
      ctx.redirect(`${deps.consoleOrigin}${CONSOLE_PATH}/login`);
      return;
    }
    const flow: Flow = { state: random(), verifier: random(), nonce: random() };
    ctx.cookies.set(FLOW_COOKIE, Buffer.from(JSON.stringify(flow)).toString('base64url'), cookieOptions(deps, FLOW_SECONDS));
    const auth = new URL(`${deps.issuer}/auth`);
    const params = {
      client_id: CONSOLE_CLIENT_ID, response_type: 'code', scope: 'openid', redirect_uri: consoleUrls(deps).redirectUri,
      state: flow.state, nonce: flow.nonce, code_challenge_method: 'S256',
      code_challenge: createHash('sha256').update(flow.verifier).digest('base64url'),
    };
    for (const [key, value] of Object.entries(params)) auth.searchParams.set(key, value);
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(auth.href);
  };
}

function readFlow(ctx: Koa.Context): Flow | undefined {
  const raw = ctx.cookies.get(FLOW_COOKIE, { signed: true });
  if (!raw) return undefined;
  try {
    const flow = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as Partial<Flow>;
    return typeof flow.state === 'string' && typeof flow.verifier === 'string' && typeof flow.nonce === 'string' ? flow as Flow : undefined;
  } catch {
    return undefined;
  }
}

const AGAIN = 'The sign-in did not complete. Open the console again to start over.';

/** The person the code was issued for: the code redeemed at the token endpoint, the ID token checked. */
async function redeem(deps: ConsoleDeps, jwks: ReturnType<typeof createRemoteJWKSet>, code: string, flow: Flow): Promise<string> {
  const response = await fetch(`${deps.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code, redirect_uri: consoleUrls(deps).redirectUri,
      code_verifier: flow.verifier, client_id: CONSOLE_CLIENT_ID,
    }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = await response.json().catch(() => ({})) as { id_token?: unknown; error?: string };
  if (!response.ok || typeof body.id_token !== 'string') {
    deps.logger.warn({ status: response.status, error: body.error }, 'console sign-in: the code was not redeemed');
    throw new ConsolePageError(400, AGAIN);
  }
  // OpenID Connect Core §3.1.3.7: issuer, audience, signature, and the nonce of this browser.
  const { payload } = await jwtVerify(body.id_token, jwks, { issuer: deps.issuer, audience: CONSOLE_CLIENT_ID });
  if (payload.nonce !== flow.nonce || typeof payload.sub !== 'string') throw new ConsolePageError(400, AGAIN);
  return payload.sub;
}

/** GET /console/callback: redeems the code, and starts a session for an administrator only. */
export function finishSignIn(deps: ConsoleDeps): Koa.Middleware {
  const jwks = createRemoteJWKSet(new URL(`${deps.issuer}/jwks`));
  return async (ctx) => {
    const flow = readFlow(ctx);
    clearCookie(deps, ctx, FLOW_COOKIE);
    const state = typeof ctx.query.state === 'string' ? ctx.query.state : undefined;
    if (!flow || state !== flow.state) throw new ConsolePageError(400, AGAIN);
    if (typeof ctx.query.error === 'string' || typeof ctx.query.code !== 'string') {
      throw new ConsolePageError(400, 'The sign-in was cancelled or refused. Open the console again to start over.');
    }
    const userId = await redeem(deps, jwks, ctx.query.code, flow);
    const who = await consoleAuthorityOf(deps.db, userId);
    if (!who?.canRead) {
      deps.audit.record({
        type: 'admin.access_denied', actor: { type: 'user', id: userId }, outcome: 'failure', clientId: CONSOLE_CLIENT_ID,
        sourceAddress: ctx.ip, requestId: ctx.state.requestId, details: { reason: 'not_an_administrator', status: 403, path: ctx.path },
      });
      notAnAdministrator(deps, ctx, who?.username);
      return;
    }
    const csrfSecret = newCsrfSecret();
    const { sessionId } = await startConsoleSession(deps.db, deps.artifactKey, userId, csrfSecret, deps.session);
    ctx.cookies.set(SESSION_COOKIE, sessionId, cookieOptions(deps));
    deps.audit.record({
      type: 'console.signed_in', actor: { type: 'user', id: userId }, clientId: CONSOLE_CLIENT_ID,
      sourceAddress: ctx.ip, requestId: ctx.state.requestId, details: { username: who.username, scopes: who.canWrite ? ['admin:read', 'admin:write'] : ['admin:read'] },
    });
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(`${CONSOLE_PATH}`);
  };
}

/** The page for a person without the role: says so, and offers to end their sign-in session. */
export function notAnAdministrator(deps: ConsoleDeps, ctx: Koa.Context, username?: string): void {
  render(ctx, 'not-admin', { title: 'Not an administrator', username, endSession: endSessionForm(deps) }, {
    status: 403, formTargets: [originOf(deps.issuer)!],
  });
}

function endSessionForm(deps: ConsoleDeps) {
  return { action: `${deps.issuer}/session/end`, clientId: CONSOLE_CLIENT_ID, postLogoutRedirectUri: consoleUrls(deps).postLogoutRedirectUri };
}

/**
 * POST /console/logout: the console session ends here; the page then sends the browser to end
 * the sign-in session too (OpenID Connect RP-Initiated Logout, by a form naming the app and where to come back: no
 * token in the URL, so no id_token_hint; Postern's own page asks the person to confirm).
 */
export function signOut(deps: ConsoleDeps): Koa.Middleware {
  return async (ctx) => {
    await readForm(deps, ctx);
    const state = ctx.state.console as ConsoleState;
    await endConsoleSession(deps.db, deps.artifactKey, state.sessionId);
    clearCookie(deps, ctx, SESSION_COOKIE);
    deps.audit.record({
      type: 'console.signed_out', actor: { type: 'user', id: state.who.userId }, clientId: CONSOLE_CLIENT_ID,
      sourceAddress: ctx.ip, requestId: ctx.state.requestId, details: { username: state.who.username },
    });
    ctx.state.console = undefined;
    render(ctx, 'signing-out', { title: 'Signing out', endSession: endSessionForm(deps) }, { formTargets: [originOf(deps.issuer)!] });
  };
}
