// People in the console: list and search, create, password (the policy's own messages, as the
// CLI shows them), enable and disable, end their sessions, roles.
import type Koa from 'koa';
import { assignRoleToUser, listRoleSummaries, unassignRoleFromUser } from '../../services/roles.ts';
import * as users from '../../services/users.ts';
import {
  auditOf, ConsolePageError, field, listPaging, noticeOf, PAGE_SIZE, queryText, readChange, recordChange, redirectTo, render, serviceMessage,
  type ConsoleDeps, type ConsolePages,
} from './kit.ts';

async function listPage(deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  const q = queryText(ctx, 'q');
  const paging = listPaging(ctx, '/people', { q });
  const page = await users.listUsersPage(deps.db, { limit: PAGE_SIZE, cursor: paging.cursor, usernamePrefix: q });
  render(ctx, 'people', {
    title: 'People', section: 'people', items: page.items, q, paging: paging.links(page.nextCursor), notice: noticeOf(ctx),
    roles: await listRoleSummaries(deps.db), form: {}, ...extra,
  }, { status });
}

async function detail(deps: ConsoleDeps, ctx: Koa.Context, extra: Record<string, unknown> = {}, status = 200): Promise<void> {
  const person = await users.getUser(deps.db, ctx.params.id!);
  const otherRoles = (await listRoleSummaries(deps.db)).map((role) => role.name).filter((name) => !person.roles.includes(name));
  render(ctx, 'person', { title: person.username, section: 'people', person, otherRoles, notice: noticeOf(ctx), ...extra }, { status });
}

const change = (deps: ConsoleDeps, work: Parameters<typeof recordChange>[3]) => recordChange(deps, 'people', detail, work);

export function registerPeoplePages(pages: ConsolePages, deps: ConsoleDeps): void {
  pages.get('/people', (ctx) => listPage(deps, ctx));
  pages.post('/people', async (ctx) => {
    const form = await readChange(deps, ctx);
    try {
      const person = await users.createUser(deps.db, {
        username: field(form, 'username'), password: form.get('password') ?? '',
        email: field(form, 'email') || null, name: field(form, 'name') || null, roles: form.getAll('roles'),
      }, auditOf(deps, ctx));
      redirectTo(ctx, `/people/${encodeURIComponent(person.id)}`, `${person.username} can sign in now.`);
    } catch (error) {
      // The form comes back without the password.
      const values = Object.fromEntries([...form].filter(([key]) => key !== 'password' && key !== 'csrf'));
      await listPage(deps, ctx, { error: serviceMessage(error), form: values }, 400);
    }
  });
  pages.get('/people/:id', (ctx) => detail(deps, ctx));
  pages.post('/people/:id/password', change(deps, async (ctx, form, id) => {
    const person = await users.setUserPassword(deps.db, id, form.get('password') ?? '', auditOf(deps, ctx));
    return `Password of ${person.username} set; their sessions ended.`;
  }));
  pages.post('/people/:id/enable', change(deps, async (ctx, _form, id) => {
    const person = await users.setUserEnabled(deps.db, id, true, auditOf(deps, ctx));
    return `${person.username} is enabled.`;
  }));
  pages.post('/people/:id/disable', change(deps, async (ctx, _form, id) => {
    const person = await users.setUserEnabled(deps.db, id, false, auditOf(deps, ctx));
    return `${person.username} is disabled; their sessions ended.`;
  }));
  pages.post('/people/:id/revoke-sessions', change(deps, async (ctx, _form, id) => {
    const result = await users.revokeUserSessions(deps.db, id, auditOf(deps, ctx));
    return `Sessions of ${result.user.username} ended (${result.revokedGrants} grants revoked).`;
  }));
  pages.post('/people/:id/roles', change(deps, async (ctx, form, id) => {
    const role = field(form, 'role');
    if (!role) throw new ConsolePageError(400, 'Choose a role.');
    const remove = form.get('action') === 'unassign';
    await (remove ? unassignRoleFromUser : assignRoleToUser)(deps.db, role, id, auditOf(deps, ctx));
    return remove ? `Role ${role} taken away.` : `Role ${role} assigned.`;
  }));
}
