// What every page of the admin console shares: its headers (a strict CSP, no framing, no
// caching), its cookies, CSRF tokens bound to the session, form reading, and the refusals.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import Tokens from 'csrf';
import { Eta } from 'eta';
import type Koa from 'koa';
import getRawBody from 'raw-body';
import type { Db } from '../../db/tables.ts';
import type { ArtifactKey } from '../../domain/artifact-hashing.ts';
import { auditAs, type AuditSink } from '../../domain/audit-events.ts';
import type { Keyring } from '../../services/keys.ts';
import type { IssuerRules } from '../../services/trusted-issuers.ts';
import { CONSOLE_CLIENT_ID, type ConsoleAuthority, type ConsoleSessionSettings } from '../../services/console-sessions.ts';
import { ServiceError } from '../../services/errors.ts';
import type { Logger } from '../../platform/logger.ts';

export const CONSOLE_PATH = '/console';
export const SESSION_COOKIE = 'postern.console';
export const FLOW_COOKIE = 'postern.console.flow';

export interface ConsoleDeps {
  db: Db;
  audit: AuditSink;
  logger: Logger;
  artifactKey: ArtifactKey;
  keyring: Keyring;
  /** The issuer (its /auth, /token and /session/end are the sign-in's). */
  issuer: string;
  /** Where browsers reach the console: an origin (config CONSOLE_URL, or the listener's). */
  consoleOrigin: string;
  secureCookies: boolean;
  maxBodyBytes: number;
  session: ConsoleSessionSettings;
  keyRotation: { rotationDays: number; propagationSeconds: number };
  /** Development allows trusted issuers on plain http loopback URLs; absent: production's rules. */
  issuerRules?: IssuerRules;
  /** Tells this process to load the signing keys now (the others are told by the change feed). */
  reloadKeys(): Promise<void>;
}

/** The signed-in person, on ctx.state.console for every page behind sign-in. */
export interface ConsoleState {
  sessionId: string;
  csrfSecret: string;
  who: ConsoleAuthority;
}

/** Where a section adds its pages: each behind sign-in (a live session of a reader). */
export interface ConsolePages {
  get(path: string, handler: Koa.Middleware): void;
  post(path: string, handler: Koa.Middleware): void;
}

/** The signed-in person of a page behind sign-in. */
export const signedIn = (ctx: Koa.Context) => ctx.state.console as ConsoleState;

/** The audit sink of a change, bound to the signed-in person, through the console's app. */
export function auditOf(deps: ConsoleDeps, ctx: Koa.Context): AuditSink {
  return auditAs(deps.audit, {
    actor: { type: 'user', id: signedIn(ctx).who.userId }, clientId: CONSOLE_CLIENT_ID,
    sourceAddress: ctx.ip, requestId: ctx.state.requestId,
  });
}

export class ConsolePageError extends Error {
  status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const tokens = new Tokens();
export const newCsrfSecret = () => tokens.secretSync();

const VIEWS = fileURLToPath(new URL('../../../views/console', import.meta.url));
const eta = new Eta({ views: VIEWS, cache: true, autoEscape: true, autoTrim: false });

export interface RenderOptions { status?: number; formTargets?: string[] }

export function securityHeaders(ctx: Koa.Context, formTargets: string[] = []): string {
  const nonce = randomBytes(16).toString('base64');
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Pragma', 'no-cache');
  ctx.set('Content-Security-Policy', [
    "default-src 'none'",
    // Every asset is Postern's own, served from /console/assets.
    "style-src 'self'",
    "script-src 'self'",
    "img-src 'self'",
    "connect-src 'none'",
    `form-action ${["'self'", ...formTargets].join(' ')}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; '));
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
  return nonce;
}

/** Renders views/console/<template>.eta with the layout's data (who, csrf, the section). */
export function render(ctx: Koa.Context, template: string, data: Record<string, unknown>, options: RenderOptions = {}): void {
  const nonce = securityHeaders(ctx, options.formTargets);
  const state = ctx.state.console as ConsoleState | undefined;
  ctx.status = options.status ?? 200;
  ctx.type = 'html';
  ctx.body = eta.render(template, {
    base: CONSOLE_PATH,
    who: state?.who,
    canWrite: state?.who.canWrite ?? false,
    csrf: state ? tokens.create(state.csrfSecret) : undefined,
    nonce,
    ...data,
  });
}

export function errorPage(ctx: Koa.Context, status: number, heading: string, message: string): void {
  render(ctx, 'message', { title: heading, heading, message, requestId: ctx.state.requestId }, { status });
}

/** Reads a urlencoded form whose CSRF token belongs to this session. */
export async function readForm(deps: ConsoleDeps, ctx: Koa.Context): Promise<URLSearchParams> {
  const state = ctx.state.console as ConsoleState | undefined;
  if (!state) throw new ConsolePageError(401, 'Your console session has ended. Sign in again.');
  if (!ctx.is('application/x-www-form-urlencoded')) throw new ConsolePageError(415, 'The form was not sent as a form.');
  let text: string;
  try {
    text = await getRawBody(ctx.req, { limit: deps.maxBodyBytes, encoding: 'utf8' });
  } catch {
    throw new ConsolePageError(413, 'The form could not be read.');
  }
  const form = new URLSearchParams(text);
  const token = form.get('csrf');
  if (!token || !tokens.verify(state.csrfSecret, token)) {
    throw new ConsolePageError(403, 'The form has expired or did not come from this console. Reload the page and try again.');
  }
  return form;
}

/** A change: needs admin:write now, and a form from this session. */
export async function readChange(deps: ConsoleDeps, ctx: Koa.Context): Promise<URLSearchParams> {
  const form = await readForm(deps, ctx);
  const state = ctx.state.console as ConsoleState;
  if (!state.who.canWrite) {
    deps.audit.record({
      type: 'admin.access_denied', actor: { type: 'user', id: state.who.userId }, outcome: 'failure',
      sourceAddress: ctx.ip, requestId: ctx.state.requestId,
      details: { reason: 'insufficient_scope', status: 403, method: ctx.method, path: ctx.path, scopes: ['admin:write'] },
    });
    throw new ConsolePageError(403, 'You can read the console but not change anything: that takes the admin:write scope on urn:postern.');
  }
  return form;
}

export const field = (form: URLSearchParams, name: string) => (form.get(name) ?? '').trim();
export const lines = (value: string) => value.split(/[\r\n,]+/).map((each) => each.trim()).filter(Boolean);

/** A service's refusal as the message a person reads; anything else is ours, and rethrown. */
export function serviceMessage(error: unknown): string {
  if (error instanceof ServiceError) return error.message;
  throw error;
}

/** The status of a service's refusal shown on a form: a 4xx, never a 500. */
export const refusalStatus = (error: unknown): number =>
  (error instanceof ServiceError ? { invalid_input: 400, not_found: 404, conflict: 409, forbidden: 403 }[error.code] : 400);

/**
 * A change on one record's page (`/{section}/:id`): the work's notice is shown on the page it
 * redirects back to; a service's refusal is shown on the page itself, by `detail`, with 400.
 */
export function recordChange(
  deps: ConsoleDeps,
  section: string,
  detail: (deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown>, status: number) => Promise<void>,
  work: (ctx: Koa.Context, form: URLSearchParams, id: string) => Promise<string>,
): Koa.Middleware {
  return async (ctx) => {
    const form = await readChange(deps, ctx);
    let notice: string;
    try {
      notice = await work(ctx, form, ctx.params.id!);
    } catch (error) {
      if (error instanceof ConsolePageError) throw error;
      await detail(deps, ctx, { error: serviceMessage(error) }, 400);
      return;
    }
    redirectTo(ctx, `/${section}/${encodeURIComponent(ctx.params.id!)}`, notice);
  };
}

/** 303 to a page of the console, with a notice to show there (in the query, never a secret). */
export function redirectTo(ctx: Koa.Context, path: string, notice?: string): void {
  ctx.status = 303;
  ctx.redirect(`${CONSOLE_PATH}${path}${notice ? `${path.includes('?') ? '&' : '?'}notice=${encodeURIComponent(notice)}` : ''}`);
}

/** The notice of a redirect, shown as text (auto-escaped), bounded. */
export const noticeOf = (ctx: Koa.Context) => (typeof ctx.query.notice === 'string' ? ctx.query.notice.slice(0, 300) : undefined);

export const queryText = (ctx: Koa.Context, name: string, max = 200): string | undefined => {
  const value = ctx.query[name];
  return typeof value === 'string' && value.trim() ? value.trim().slice(0, max) : undefined;
};

/** Rows a list of the console shows at once. */
export const PAGE_SIZE = 25;

/** The links of a list read a page at a time: back to its first page, on to the next. */
export interface PageLinks { first?: string; next?: string }

/**
 * Cursor paging of a list at `path`: the cursor the query asks for (value `name`: a page may
 * hold more than one list), and, once the page is read, the links to its first and next pages.
 * The links keep `kept`, the list's search and filters and the cursors of other lists on the
 * page; empty values are left out.
 */
export function listPaging(ctx: Koa.Context, path: string, kept: Record<string, string | undefined>, name = 'cursor', max = 400) {
  const cursor = queryText(ctx, name, max);
  const href = (extra: Record<string, string>) => {
    const query = new URLSearchParams({ ...Object.fromEntries(Object.entries(kept).filter(([, value]) => value)) as Record<string, string>, ...extra });
    return `${CONSOLE_PATH}${path}${query.size ? `?${query}` : ''}`;
  };
  return {
    cursor,
    links: (nextCursor: string | null): PageLinks => ({
      first: cursor ? href({}) : undefined,
      next: nextCursor ? href({ [name]: nextCursor }) : undefined,
    }),
  };
}
