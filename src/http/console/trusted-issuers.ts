// Trusted issuers in the console (docs/workload-identity.md): the platforms whose tokens
// authenticate clients. List, create (discovery, a JWKS URL, or keys given once), enable and
// disable (a disabled issuer's tokens are refused at once everywhere), delete by typing the name:
// refused while clients are bound, with the service's message.
import type Koa from 'koa';
import { invalid } from '../../services/errors.ts';
import * as issuers from '../../services/trusted-issuers.ts';
import { ISSUER_KINDS } from '../../domain/trusted-issuers.ts';
import {
  auditOf, ConsolePageError, field, noticeOf, readChange, redirectTo, refusalStatus, render, serviceMessage,
  type ConsoleDeps, type ConsolePages,
} from './kit.ts';

const SOURCES = ['discovery', 'jwks_uri', 'static'] as const;
const rulesOf = (deps: ConsoleDeps): issuers.IssuerRules => deps.issuerRules ?? { development: false };

function issuerInput(form: URLSearchParams): issuers.IssuerInput {
  const source = field(form, 'source');
  const base = { name: field(form, 'name'), issuer: field(form, 'issuer'), kind: field(form, 'kind') as issuers.IssuerInput['kind'] };
  if (source === 'discovery') return { ...base, discovery: true };
  if (source === 'jwks_uri') return { ...base, jwksUri: field(form, 'jwksUri') };
  if (source !== 'static') throw invalid('Choose where the keys come from.', 'source');
  const text = field(form, 'jwks');
  try {
    return { ...base, jwks: JSON.parse(text) as unknown };
  } catch {
    throw invalid('The keys are not JSON: paste a JWK Set, {"keys": [...]}.', 'jwks');
  }
}

async function listPage(deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  render(ctx, 'trusted-issuers', {
    title: 'Trusted issuers', section: 'trusted-issuers', items: await issuers.listIssuers(deps.db), kinds: ISSUER_KINDS,
    development: rulesOf(deps).development, notice: noticeOf(ctx), form: { source: 'discovery' }, ...extra,
  }, { status });
}

async function detail(deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  const issuer = await issuers.getIssuer(deps.db, ctx.params.id!);
  render(ctx, 'trusted-issuer', { title: issuer.name, section: 'trusted-issuers', issuer, notice: noticeOf(ctx), ...extra }, { status });
}

export function registerTrustedIssuerPages(pages: ConsolePages, deps: ConsoleDeps): void {
  pages.get('/trusted-issuers', (ctx) => listPage(deps, ctx));
  pages.post('/trusted-issuers', async (ctx) => {
    const form = await readChange(deps, ctx);
    try {
      const issuer = await issuers.createIssuer(deps.db, issuerInput(form), rulesOf(deps), auditOf(deps, ctx));
      redirectTo(ctx, `/trusted-issuers/${encodeURIComponent(issuer.id)}`, `Trusted issuer ${issuer.name} created.`);
    } catch (error) {
      const message = serviceMessage(error);
      await listPage(deps, ctx, { error: message, form: Object.fromEntries(form) }, refusalStatus(error));
    }
  });
  pages.get('/trusted-issuers/:id', (ctx) => detail(deps, ctx));
  for (const action of ['enable', 'disable'] as const) {
    pages.post(`/trusted-issuers/:id/${action}`, async (ctx) => {
      await readChange(deps, ctx);
      const current = await issuers.getIssuer(deps.db, ctx.params.id!);
      try {
        await issuers.updateIssuer(deps.db, current.id, { enabled: action === 'enable' }, rulesOf(deps), auditOf(deps, ctx));
      } catch (error) {
        await detail(deps, ctx, { error: serviceMessage(error) }, refusalStatus(error));
        return;
      }
      redirectTo(ctx, `/trusted-issuers/${encodeURIComponent(current.id)}`,
        action === 'enable' ? `${current.name} is enabled.` : `${current.name} is disabled: its tokens are refused.`);
    });
  }
  pages.post('/trusted-issuers/:id/delete', async (ctx) => {
    const form = await readChange(deps, ctx);
    const issuer = await issuers.getIssuer(deps.db, ctx.params.id!);
    if (field(form, 'confirm') !== issuer.name) throw new ConsolePageError(400, `To delete this issuer, type its name (${issuer.name}) exactly.`);
    try {
      await issuers.deleteIssuer(deps.db, issuer.id, {}, auditOf(deps, ctx));
    } catch (error) {
      await detail(deps, ctx, { error: serviceMessage(error) }, refusalStatus(error));
      return;
    }
    redirectTo(ctx, '/trusted-issuers', `Trusted issuer ${issuer.name} deleted.`);
  });
}
