// Route policies in the console (docs/routes.md): the rules of each API, filtered by API and host;
// create one, delete one by typing its id, and check which rule covers a request and what it
// decides for a caller without a token. The service checks every rule whole (the API's scopes,
// roles and clients that exist, no tie with another rule); its refusals are form errors.
import type Koa from 'koa';
import { listApis } from '../../services/apis.ts';
import { invalid } from '../../services/errors.ts';
import { checkRoute, type RouteCheck } from '../../services/route-check.ts';
import * as routes from '../../services/routes.ts';
import {
  auditOf, ConsolePageError, field, noticeOf, queryText, readChange, redirectTo, refusalStatus, render, serviceMessage,
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

function ruleInput(form: URLSearchParams): routes.RouteInput {
  const sender = field(form, 'senderConstrained');
  if (sender && !(SENDER as readonly string[]).includes(sender)) throw invalid('Choose how tokens must be bound.', 'senderConstrained');
  return {
    api: field(form, 'api'),
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
  const apis = (await listApis(deps.db)).filter((each) => !each.system);
  let items: routes.RouteView[] = [];
  let filterError: string | undefined;
  try {
    items = await routes.listRoutes(deps.db, { api, host });
  } catch (error) {
    filterError = serviceMessage(error);
    status = Math.max(status, 400);
  }
  const check = await checked(deps, ctx);
  if (check.checkError) status = Math.max(status, 400);
  render(ctx, 'route-policies', {
    title: 'Route policies', section: 'route-policies', items, apis, api, host, filterError, ...check,
    notice: noticeOf(ctx), form: {}, senders: SENDER, ...extra,
  }, { status });
}

async function detail(deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  const rule = await routes.getRoute(deps.db, ctx.params.id!);
  render(ctx, 'route-policy', { title: `Rule ${rule.id}`, section: 'route-policies', rule, notice: noticeOf(ctx), ...extra }, { status });
}

export function registerRoutePolicyPages(pages: ConsolePages, deps: ConsoleDeps): void {
  pages.get('/route-policies', (ctx) => listPage(deps, ctx));
  pages.post('/route-policies', async (ctx) => {
    const form = await readChange(deps, ctx);
    try {
      const rule = await routes.createRoute(deps.db, ruleInput(form), auditOf(deps, ctx));
      redirectTo(ctx, `/route-policies/${encodeURIComponent(rule.id)}`, `Rule ${rule.id} created.`);
    } catch (error) {
      const message = serviceMessage(error);
      await listPage(deps, ctx, { error: message, form: Object.fromEntries(form) }, refusalStatus(error));
    }
  });
  pages.get('/route-policies/:id', (ctx) => detail(deps, ctx));
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
