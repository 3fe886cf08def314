// APIs in the console: create, scopes and their consent descriptions, token format, lifetime,
// signing algorithm, DPoP and mTLS binding, delete.
import type Koa from 'koa';
import * as apis from '../../services/apis.ts';
import {
  auditOf, ConsolePageError, field, noticeOf, queryText, readChange, redirectTo, render, serviceMessage,
  type ConsoleDeps, type ConsolePages,
} from './kit.ts';

/** One scope a line: its name, then (after a space) the words the consent page shows for it. */
function scopeLines(text: string): { scopes: string[]; descriptions: Record<string, string> } {
  const scopes: string[] = [];
  const descriptions: Record<string, string> = {};
  for (const line of text.split(/\r?\n/).map((each) => each.trim()).filter(Boolean)) {
    const [name, ...words] = line.split(/\s+/);
    scopes.push(name!);
    if (words.length) descriptions[name!] = words.join(' ');
  }
  return { scopes, descriptions };
}

const ttlOf = (form: URLSearchParams) => {
  const value = field(form, 'accessTokenTtl');
  if (!/^[0-9]{1,7}$/.test(value)) throw new ConsolePageError(400, 'The token lifetime is a number of seconds.');
  return Number(value);
};

async function listPage(deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  const q = queryText(ctx, 'q')?.toLowerCase();
  const all = await apis.listApis(deps.db);
  const items = q ? all.filter((api) => api.identifier.toLowerCase().includes(q) || api.name.toLowerCase().includes(q)) : all;
  render(ctx, 'apis', {
    title: 'APIs', section: 'apis', items, q, notice: noticeOf(ctx), algs: apis.ACCESS_TOKEN_ALGS, formats: apis.TOKEN_FORMATS, form: {}, ...extra,
  }, { status });
}

async function detail(deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  const api = await apis.getApi(deps.db, ctx.params.id!);
  render(ctx, 'api', {
    title: api.name, section: 'apis', api, notice: noticeOf(ctx), algs: apis.ACCESS_TOKEN_ALGS, formats: apis.TOKEN_FORMATS, ...extra,
  }, { status });
}

export function registerApiPages(pages: ConsolePages, deps: ConsoleDeps): void {
  pages.get('/apis', (ctx) => listPage(deps, ctx));
  pages.post('/apis', async (ctx) => {
    const form = await readChange(deps, ctx);
    try {
      const { scopes, descriptions } = scopeLines(field(form, 'scopes'));
      const api = await apis.createApi(deps.db, {
        identifier: field(form, 'identifier'), name: field(form, 'name') || undefined, scopes, scopeDescriptions: descriptions,
        tokenFormat: field(form, 'tokenFormat'), signingAlg: field(form, 'signingAlg'), accessTokenTtl: ttlOf(form),
        requireDpop: form.get('requireDpop') === 'on', requireMtls: form.get('requireMtls') === 'on',
      }, auditOf(deps, ctx));
      redirectTo(ctx, `/apis/${encodeURIComponent(api.id)}`, `API ${api.identifier} created.`);
    } catch (error) {
      if (error instanceof ConsolePageError) throw error;
      await listPage(deps, ctx, { error: serviceMessage(error), form: Object.fromEntries(form) }, 400);
    }
  });
  pages.get('/apis/:id', (ctx) => detail(deps, ctx));
  pages.post('/apis/:id', async (ctx) => {
    const form = await readChange(deps, ctx);
    try {
      const current = await apis.getApi(deps.db, ctx.params.id!);
      const { scopes, descriptions } = scopeLines(field(form, 'scopes'));
      const scopeDescriptions: Record<string, string | null> = {};
      for (const scope of scopes) scopeDescriptions[scope] = descriptions[scope] ?? null;
      const api = await apis.updateApi(deps.db, current.id, {
        ...(current.system ? {} : { name: field(form, 'name') || current.name }),
        addScopes: scopes.filter((scope) => !current.scopes.includes(scope)),
        removeScopes: current.scopes.filter((scope) => !scopes.includes(scope)),
        scopeDescriptions,
        tokenFormat: field(form, 'tokenFormat'), signingAlg: field(form, 'signingAlg'), accessTokenTtl: ttlOf(form),
        requireDpop: form.get('requireDpop') === 'on', requireMtls: form.get('requireMtls') === 'on',
      }, auditOf(deps, ctx));
      redirectTo(ctx, `/apis/${encodeURIComponent(api.id)}`, 'Saved.');
    } catch (error) {
      if (error instanceof ConsolePageError) throw error;
      await detail(deps, ctx, { error: serviceMessage(error) }, 400);
    }
  });
  pages.post('/apis/:id/delete', async (ctx) => {
    const form = await readChange(deps, ctx);
    const api = await apis.getApi(deps.db, ctx.params.id!);
    if (field(form, 'confirm') !== api.identifier) throw new ConsolePageError(400, `To delete this API, type its identifier (${api.identifier}) exactly.`);
    try {
      await apis.deleteApi(deps.db, api.id, auditOf(deps, ctx));
    } catch (error) {
      await detail(deps, ctx, { error: serviceMessage(error) }, 400);
      return;
    }
    redirectTo(ctx, '/apis', `API ${api.identifier} deleted.`);
  });
}
