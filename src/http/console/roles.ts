// Roles in the console: what each grants per API, who holds it (clients and people, a page at
// a time, searched by name), assign and unassign, create and delete.
import type Koa from 'koa';
import { listApis } from '../../services/apis.ts';
import { listClientsPage } from '../../services/clients.ts';
import * as roles from '../../services/roles.ts';
import { listUsersPage } from '../../services/users.ts';
import {
  auditOf, ConsolePageError, field, listPaging, noticeOf, PAGE_SIZE, queryText, readChange, recordChange, redirectTo, render, serviceMessage,
  type ConsoleDeps, type ConsolePages,
} from './kit.ts';

async function listPage(deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  const q = queryText(ctx, 'q')?.toLowerCase();
  const all = await roles.listRoleSummaries(deps.db);
  const items = q ? all.filter((role) => role.name.toLowerCase().includes(q)) : all;
  render(ctx, 'roles', { title: 'Roles', section: 'roles', items, q, notice: noticeOf(ctx), form: {}, ...extra }, { status });
}

/**
 * A role's page: its grants, and who holds it, clients and people each a page at a time (a
 * cursor each, `clients` and `people`), searched by name prefix.
 */
async function detail(deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  const role = await roles.getRoleSummary(deps.db, ctx.params.id!);
  const q = queryText(ctx, 'q');
  const path = `/roles/${encodeURIComponent(role.id)}`;
  const clientPaging = listPaging(ctx, path, { q, people: queryText(ctx, 'people', 400) }, 'clients');
  const peoplePaging = listPaging(ctx, path, { q, clients: clientPaging.cursor }, 'people');
  const [apis, holders, people] = await Promise.all([
    listApis(deps.db),
    listClientsPage(deps.db, { role: role.id, namePrefix: q, limit: PAGE_SIZE, cursor: clientPaging.cursor }),
    listUsersPage(deps.db, { role: role.id, usernamePrefix: q, limit: PAGE_SIZE, cursor: peoplePaging.cursor }),
  ]);
  render(ctx, 'role', {
    title: role.name, section: 'roles', role, apis, q, notice: noticeOf(ctx),
    clients: holders.items, clientPages: clientPaging.links(holders.nextCursor),
    people: people.items, peoplePages: peoplePaging.links(people.nextCursor), ...extra,
  }, { status });
}

const change = (deps: ConsoleDeps, work: Parameters<typeof recordChange>[3]) => recordChange(deps, 'roles', detail, work);

export function registerRolePages(pages: ConsolePages, deps: ConsoleDeps): void {
  pages.get('/roles', (ctx) => listPage(deps, ctx));
  pages.post('/roles', async (ctx) => {
    const form = await readChange(deps, ctx);
    try {
      const role = await roles.createRole(deps.db, { name: field(form, 'name'), description: field(form, 'description') || undefined }, auditOf(deps, ctx));
      redirectTo(ctx, `/roles/${encodeURIComponent(role.id)}`, `Role ${role.name} created.`);
    } catch (error) {
      await listPage(deps, ctx, { error: serviceMessage(error), form: Object.fromEntries(form) }, 400);
    }
  });
  pages.get('/roles/:id', (ctx) => detail(deps, ctx));
  pages.post('/roles/:id/grant', change(deps, async (ctx, form, id) => {
    const grant = { api: field(form, 'api'), scopes: form.getAll('scopes') };
    if (form.get('action') === 'remove') {
      await roles.ungrantScopes(deps.db, id, grant, auditOf(deps, ctx));
      return `Removed ${grant.scopes.join(', ')}.`;
    }
    await roles.grantScopes(deps.db, id, grant, auditOf(deps, ctx));
    return `Granted ${grant.scopes.join(', ')}.`;
  }));
  pages.post('/roles/:id/holders', change(deps, async (ctx, form, id) => {
    const kind = field(form, 'kind');
    const who = field(form, 'who');
    if (!who) throw new ConsolePageError(400, 'Name the client or person.');
    const remove = form.get('action') === 'unassign';
    const audit = auditOf(deps, ctx);
    if (kind === 'client') await (remove ? roles.unassignRoleFromClient : roles.assignRoleToClient)(deps.db, id, who, audit);
    else if (kind === 'user') await (remove ? roles.unassignRoleFromUser : roles.assignRoleToUser)(deps.db, id, who, audit);
    else throw new ConsolePageError(400, 'Choose a client or a person.');
    return remove ? `${who} no longer holds this role.` : `${who} holds this role now.`;
  }));
  pages.post('/roles/:id/delete', async (ctx) => {
    const form = await readChange(deps, ctx);
    const role = await roles.getRole(deps.db, ctx.params.id!);
    if (field(form, 'confirm') !== role.name) throw new ConsolePageError(400, `To delete this role, type its name (${role.name}) exactly.`);
    await roles.deleteRole(deps.db, role.id, auditOf(deps, ctx));
    redirectTo(ctx, '/roles', `Role ${role.name} deleted.`);
  });
}
