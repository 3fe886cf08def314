// The admin console (/console): server-rendered pages over the same services as the admin API
// and the CLI, acting with the signed-in person's authority as it is now. Every page sends a
// strict CSP (own assets only, no inline code), every change needs a CSRF token of the session
// and admin:write, and nothing is stored for a browser that has not signed in.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import Router from '@koa/router';
import type Koa from 'koa';
import compose from 'koa-compose';
import { STRICT_ROUTING } from '../../domain/endpoints.ts';
import { consoleAuthorityOf, endConsoleSession, resumeConsoleSession } from '../../services/console-sessions.ts';
import { ServiceError } from '../../services/errors.ts';
import { registerApiPages } from './apis.ts';
import { registerAuditPages } from './audit.ts';
import { registerClientPages } from './clients.ts';
import {
  CONSOLE_PATH, ConsolePageError, errorPage, render, securityHeaders, SESSION_COOKIE, type ConsoleDeps, type ConsolePages, type ConsoleState,
} from './kit.ts';
import { registerKeyPages } from './keys.ts';
import { registerOverview } from './overview.ts';
import { registerPeoplePages } from './people.ts';
import { registerRegistrationPages } from './registration.ts';
import { registerRolePages } from './roles.ts';
import { registerRoutePolicyPages } from './route-policies.ts';
import { registerTrustedIssuerPages } from './trusted-issuers.ts';
import { clearCookie, finishSignIn, notAnAdministrator, signOut, startSignIn } from './sign-in.ts';

const ASSETS = fileURLToPath(new URL('../../../views/console/assets', import.meta.url));
const ASSET_TYPES: Record<string, string> = { 'console.css': 'text/css; charset=utf-8', 'console.js': 'text/javascript; charset=utf-8', 'favicon.svg': 'image/svg+xml' };

/** Files read once; a fixed list, so no path from a request reaches the file system. */
function assetRoutes(router: Router): void {
  for (const [name, type] of Object.entries(ASSET_TYPES)) {
    const body = fs.readFileSync(`${ASSETS}/${name}`);
    router.get(`${CONSOLE_PATH}/assets/${name}`, (ctx) => {
      ctx.set('Cache-Control', 'public, max-age=300');
      ctx.set('X-Content-Type-Options', 'nosniff');
      ctx.type = type;
      ctx.body = body;
    });
  }
}

/** Failures are pages: a service's refusal says what was wrong, ours says nothing internal. */
function pageErrors(deps: ConsoleDeps): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (error instanceof ConsolePageError) {
        errorPage(ctx, error.status, error.status === 403 ? 'Not allowed' : 'That did not work', error.message);
        return;
      }
      if (error instanceof ServiceError) {
        const status = { invalid_input: 400, not_found: 404, conflict: 409, forbidden: 403 }[error.code];
        errorPage(ctx, status, status === 404 ? 'Not found' : 'That did not work', error.message);
        return;
      }
      deps.logger.error({ err: error, requestId: ctx.state.requestId }, 'console page failed');
      errorPage(ctx, 500, 'Something went wrong', 'Something went wrong on our side. Try again in a moment.');
    }
  };
}

/**
 * Every page past sign-in: a live session of a person who may read the console now. Without
 * one, a page sends the browser to sign in (and stores nothing); a person who lost the role is
 * signed out of the console.
 */
function requireSignIn(deps: ConsoleDeps): Koa.Middleware {
  return async (ctx, next) => {
    const sessionId = ctx.cookies.get(SESSION_COOKIE, { signed: true });
    const session = await resumeConsoleSession(deps.db, deps.artifactKey, sessionId, deps.session);
    if (!session) {
      if (sessionId) clearCookie(deps, ctx, SESSION_COOKIE);
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new ConsolePageError(401, 'Your console session has ended. Sign in again.');
      render(ctx, 'sign-in', { title: 'Sign in', expired: Boolean(sessionId) }, { status: ctx.path === CONSOLE_PATH ? 200 : 401 });
      return;
    }
    const who = await consoleAuthorityOf(deps.db, session.userId);
    if (!who?.canRead) {
      await endConsoleSession(deps.db, deps.artifactKey, sessionId);
      clearCookie(deps, ctx, SESSION_COOKIE);
      notAnAdministrator(deps, ctx, who?.username);
      return;
    }
    ctx.state.console = { sessionId: sessionId!, csrfSecret: session.csrfSecret, who } satisfies ConsoleState;
    await next();
  };
}

export function consoleRouter(deps: ConsoleDeps): Router {
  // Full paths, no prefix: the router's prefix cannot name the console's own root.
  const router = new Router(STRICT_ROUTING);
  const at = (path: string) => `${CONSOLE_PATH}${path}`;
  assetRoutes(router);
  router.get(at('/login'), startSignIn(deps));
  router.get(at('/callback'), finishSignIn(deps));
  router.get(at('/signed-out'), (ctx) => render(ctx, 'signed-out', { title: 'Signed out' }));
  const signedIn = requireSignIn(deps);
  router.post(at('/logout'), signedIn, signOut(deps));
  const pages: ConsolePages = {
    get: (path, handler) => { router.get(at(path), signedIn, handler); },
    post: (path, handler) => { router.post(at(path), signedIn, handler); },
  };
  for (const register of [registerOverview, registerApiPages, registerRolePages, registerClientPages,
    registerPeoplePages, registerKeyPages, registerAuditPages, registerRegistrationPages, registerRoutePolicyPages,
    registerTrustedIssuerPages]) register(pages, deps);
  return router;
}

/** The console as one middleware: answers everything under /console, passes anything else on. */
export function consoleMiddleware(deps: ConsoleDeps): Koa.Middleware {
  const router = consoleRouter(deps);
  const stack = compose([pageErrors(deps), router.routes(), router.allowedMethods()] as Koa.Middleware[]);
  return async (ctx, next) => {
    if (ctx.path !== CONSOLE_PATH && !ctx.path.startsWith(`${CONSOLE_PATH}/`)) return next();
    await stack(ctx, async () => {});
    if (ctx.body === undefined && (ctx.status === 404 || ctx.status === 405)) {
      const status = ctx.status;
      securityHeaders(ctx);
      errorPage(ctx, status, status === 404 ? 'Not found' : 'Not allowed', status === 404 ? 'There is no such page in the console.' : 'This page does not take that method.');
    }
  };
}
