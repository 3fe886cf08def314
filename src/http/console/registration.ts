// Registration tokens (RFC 7591 initial access tokens) in the console: list, create (the value
// shown once), revoke. Route policies and trusted issuers get their pages here when they land.
import type Koa from 'koa';
import * as registration from '../../services/registration.ts';
import { listRoleSummaries } from '../../services/roles.ts';
import {
  auditOf, ConsolePageError, field, noticeOf, readChange, redirectTo, render, serviceMessage, type ConsoleDeps, type ConsolePages,
} from './kit.ts';

async function listPage(deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  render(ctx, 'registration-tokens', {
    title: 'Registration tokens', section: 'registration', notice: noticeOf(ctx),
    items: await registration.listRegistrationTokens(deps.db), roles: await listRoleSummaries(deps.db), form: {}, ...extra,
  }, { status });
}

const number = (form: URLSearchParams, name: string, label: string) => {
  const value = field(form, name);
  if (!/^[0-9]{1,9}$/.test(value)) throw new ConsolePageError(400, `${label} is a whole number.`);
  return Number(value);
};

export function registerRegistrationPages(pages: ConsolePages, deps: ConsoleDeps): void {
  pages.get('/registration-tokens', (ctx) => listPage(deps, ctx));
  pages.post('/registration-tokens', async (ctx) => {
    const form = await readChange(deps, ctx);
    let created: registration.RegistrationTokenWithValue;
    try {
      created = await registration.createRegistrationToken(deps.db, {
        roles: form.getAll('roles'), maxUses: number(form, 'maxUses', 'Uses'),
        ttlSeconds: number(form, 'ttlHours', 'Hours') * 3600, description: field(form, 'description') || undefined,
      }, auditOf(deps, ctx));
    } catch (error) {
      if (error instanceof ConsolePageError) throw error;
      await listPage(deps, ctx, { error: serviceMessage(error), form: Object.fromEntries(form) }, 400);
      return;
    }
    // Shown in this response only (no-store), never stored or put in a URL.
    render(ctx, 'registration-token-created', {
      title: 'Registration token created', section: 'registration', token: created.token, view: created.registrationToken,
      registrationUrl: `${deps.issuer}/reg`,
    });
  });
  pages.post('/registration-tokens/:id/revoke', async (ctx) => {
    await readChange(deps, ctx);
    try {
      await registration.revokeRegistrationToken(deps.db, ctx.params.id!, auditOf(deps, ctx));
    } catch (error) {
      await listPage(deps, ctx, { error: serviceMessage(error) }, 400);
      return;
    }
    redirectTo(ctx, '/registration-tokens', 'Token revoked.');
  });
}
