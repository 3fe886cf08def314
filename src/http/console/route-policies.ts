// Route policies in the console (docs/routes.md): the rules of each API, filtered by API, host
// and path, a page at a time; create one, change one, delete one by typing its id, and check
// which rule covers a request and what it decides for a caller without a token. The service
// checks every rule whole (the API's scopes, roles and clients that exist, no tie with another
// rule); its refusals are form errors.
import type Koa from 'koa';
import { listApis } from '../../services/apis.ts';
import { invalid } from '../../services/errors.ts';
import type { Page } from '../../services/paging.ts';
import { checkRoute, type RouteCheck } from '../../services/route-check.ts';
import * as routes from '../../services/routes.ts';
import {
  auditOf, ConsolePageError, field, listPaging, noticeOf, PAGE_SIZE, queryText, readChange, redirectTo, refusalStatus, render, serviceMessage,
  type ConsoleDeps, type ConsolePages,
} from './kit.ts';

const SENDER = ['dpop', 'mtls', 'any'] as const;
const METHODS = /^[A-Za-z-]{1,32}$/;

/** Names separated by spaces, commas or lines. */
const words = (value: string) => value.split(/[\s,]+/).filter(Boolean);

function whole(form: URLSearchParams, name: string, label: string): number | null {
  const value = field(form, name);
  if (!value) return null;
  if (!/^[0-9]{1,9}$/.test(value)) throw invalid(`${label} is a whole number, or empty for none`, name);
  return Number(value);
}

/** Everything of a rule but its API, from the form (a rule's edit form is the whole rule). */
function ruleFields(form: URLSearchParams): Omit<routes.RouteInput, 'api'> {
  const sender = field(form, 'senderConstrained');
  if (sender && !(SENDER as readonly string[]).includes(sender)) throw invalid('Choose how tokens must be bound.', 'senderConstrained');
  return {
    host: field(form, 'host') || null,
    methods: words(field(form, 'methods')),
    path: field(form, 'path'),
    public: form.get('public') === 'on',
    scopesAll: words(field(form, 'scopesAll')),
    scopesAny: words(field(form, 'scopesAny')),
    roles: words(field(form, 'roles')),
    clients: words(field(form, 'clients')),
    senderConstrained: (sender || null) as routes.RouteInput['senderConstrained'],
    rateLimitPerMinute: whole(form, 'rateLimitPerMinute', 'The rate limit'),
    cacheSeconds: whole(form, 'cacheSeconds', 'The cache time'),
  };
}

/** A stored rule as its edit form's values. */
function formOf(rule: routes.RouteView): Record<string, string> {
  return {
    host: rule.host ?? '', methods: rule.methods.join(' '), path: rule.path, ...(rule.public ? { public: 'on' } : {}),
    scopesAll: rule.scopesAll.join(' '), scopesAny: rule.scopesAny.join(' '), roles: rule.roles.join(' '), clients: rule.clients.join(' '),
    senderConstrained: rule.senderConstrained ?? '', rateLimitPerMinute: rule.rateLimitPerMinute?.toString() ?? '',
    cacheSeconds: rule.cacheSeconds?.toString() ?? '',
  };
}

/** A form sent back with what was typed in it (never its CSRF token). */
const typed = (form: URLSearchParams) => Object.fromEntries([...form].filter(([key]) => key !== 'csrf'));

/** The request of the check form, if one was asked: method and URL, read from the query. */
async function checked(deps: ConsoleDeps, ctx: Koa.Context): Promise<{ check?: RouteCheck; checkError?: string; asked: Record<string, string> }> {
  const method = queryText(ctx, 'method', 32);
  const url = queryText(ctx, 'url', 2000);
  if (!method && !url) return { asked: {} };
  const asked = { method: method ?? '', url: url ?? '' };
  if (!method || !METHODS.test(method)) return { asked, checkError: 'Give an HTTP method, such as GET or DELETE.' };
  const parsed = url ? URL.parse(url) : null;
  if (!parsed || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')) {
    return { asked, checkError: 'Give the full URL of the request, starting with https:// or http://.' };
  }
  try {
    return { asked, check: await checkRoute(deps.db, { method, url: url! }, deps.issuer) };
  } catch (error) {
    return { asked, checkError: serviceMessage(error) };
  }
}

async function listPage(deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  const api = queryText(ctx, 'api');
  const host = queryText(ctx, 'host');
  const path = queryText(ctx, 'path');
  const paging = listPaging(ctx, '/route-policies', { api, host, path });
  const apis = (await listApis(deps.db)).filter((each) => !each.system);
  let page: Page<routes.RouteView> = { items: [], nextCursor: null };
  let filterError: string | undefined;
  try {
    page = await routes.listRoutesPage(deps.db, { api, host, pathPrefix: path, limit: PAGE_SIZE, cursor: paging.cursor });
  } catch (error) {
    filterError = serviceMessage(error);
    status = Math.max(status, 400);
  }
  const check = await checked(deps, ctx);
  if (check.checkError) status = Math.max(status, 400);
  render(ctx, 'route-policies', {
    title: 'Route policies', section: 'route-policies', items: page.items, paging: paging.links(page.nextCursor), apis, api, host, path,
    filterError, ...check, notice: noticeOf(ctx), form: {}, senders: SENDER, ...extra,
  }, { status });
}

async function detail(deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  const rule = await routes.getRoute(deps.db, ctx.params.id!);
  render(ctx, 'route-policy', {
    title: `Rule ${rule.id}`, section: 'route-policies', rule, form: formOf(rule), senders: SENDER, notice: noticeOf(ctx), ...extra,
  }, { status });
}

export function registerRoutePolicyPages(pages: ConsolePages, deps: ConsoleDeps): void {
  pages.get('/route-policies', (ctx) => listPage(deps, ctx));
  pages.post('/route-policies', async (ctx) => {
    const form = await readChange(deps, ctx);
    try {
      const rule = await routes.createRoute(deps.db, { api: field(form, 'api'), ...ruleFields(form) }, auditOf(deps, ctx));
      redirectTo(ctx, `/route-policies/${encodeURIComponent(rule.id)}`, `Rule ${rule.id} created.`);
    } catch (error) {
      const message = serviceMessage(error);
      await listPage(deps, ctx, { error: message, form: typed(form) }, refusalStatus(error));
    }
  });
  pages.get('/route-policies/:id', (ctx) => detail(deps, ctx));
  // The whole rule but its API, checked whole again by the service, as the admin API's PATCH is.
  pages.post('/route-policies/:id', async (ctx) => {
    const form = await readChange(deps, ctx);
    const current = await routes.getRoute(deps.db, ctx.params.id!);
    try {
      await routes.updateRoute(deps.db, current.id, ruleFields(form), auditOf(deps, ctx));
    } catch (error) {
      await detail(deps, ctx, { error: serviceMessage(error), form: typed(form) }, refusalStatus(error));
      return;
    }
    redirectTo(ctx, `/route-policies/${encodeURIComponent(current.id)}`, `Rule ${current.id} saved.`);
  });
  pages.post('/route-policies/:id/delete', async (ctx) => {
    const form = await readChange(deps, ctx);
    const rule = await routes.getRoute(deps.db, ctx.params.id!);
    if (field(form, 'confirm') !== rule.id) throw new ConsolePageError(400, `To delete this rule, type its id (${rule.id}) exactly.`);
    try {
      await routes.deleteRoute(deps.db, rule.id, auditOf(deps, ctx));
    } catch (error) {
      await detail(deps, ctx, { error: serviceMessage(error) }, refusalStatus(error));
      return;
    }
    redirectTo(ctx, '/route-policies', `Rule ${rule.id} deleted (${rule.methods.join(',') || 'any method'} ${rule.path}).`);
  });
}
