// postern roles ...
import { Command } from 'commander';
import { invalid } from '../services/errors.ts';
// Each command loads the service when it runs: help and usage errors load no database code.
import type * as roles from '../services/roles.ts';
import { action, collect } from './context.ts';
import { fields, table } from './output.ts';

/** "https://orders.internal orders:read orders:write" -> { api, scopes } */
function parseGrant(value: string): roles.ScopeGrant {
  const [api, ...scopes] = value.trim().split(/\s+/);
  if (!api || scopes.length === 0) {
    throw invalid(`a grant is "<api> <scope> [scope...]", got "${value}"`, 'grant');
  }
  return { api, scopes };
}

function show(role: roles.RoleView): string {
  return fields([
    ['id', role.id],
    ['name', role.name],
    ['description', role.description],
    ['grants', role.grants.map((g) => `${g.api} ${g.scopes.join(' ')}`).join('\n        ') || '(none)'],
    ['clients', role.clients.join(' ') || '(none)'],
    ['users', role.users.join(' ') || '(none)'],
  ]);
}

/** Exactly one of --client and --user. */
function holder(opts: { client?: string; user?: string }): { kind: 'client' | 'user'; ref: string } {
  if (opts.client !== undefined && opts.user === undefined) return { kind: 'client', ref: opts.client };
  if (opts.user !== undefined && opts.client === undefined) return { kind: 'user', ref: opts.user };
  throw invalid('name exactly one of --client <client> and --user <user>', 'client', 'user');
}

export function rolesCommand(): Command {
  const command = new Command('roles').description('roles: named sets of API scopes, assigned to clients and people');

  command.command('create')
    .description('create a role')
    .argument('<name>', 'role name')
    .option('--description <text>', 'what the role is for')
    .option('--grant <grant>', 'scopes to grant: "<api> <scope> [scope...]" (repeatable)', collect, [])
    .action(action(async ({ db, out, audit }, name: string, opts: { description?: string; grant: string[] }) => {
      const roles = await import('../services/roles.ts');
      const role = await roles.createRole(db, {
        name, description: opts.description, grants: opts.grant.map(parseGrant),
      }, audit);
      out.print(role, (value) => `role created\n${show(value)}`);
    }));

  command.command('list')
    .description('list roles')
    .action(action(async ({ db, out }) => {
      const roles = await import('../services/roles.ts');
      out.print(await roles.listRoles(db), (list) => table(
        ['NAME', 'GRANTS', 'CLIENTS'],
        list.map((role) => [
          role.name,
          role.grants.map((g) => `${g.api} ${g.scopes.join(' ')}`).join('; '),
          String(role.clients.length),
        ]),
      ));
    }));

  command.command('show')
    .description('show a role')
    .argument('<role>', 'id or name')
    .action(action(async ({ db, out }, ref: string) => {
      const roles = await import('../services/roles.ts');
      out.print(await roles.getRole(db, ref), show);
    }));

  command.command('delete')
    .description('delete a role (clients lose what it granted)')
    .argument('<role>', 'id or name')
    .action(action(async ({ db, out, audit }, ref: string) => {
      const roles = await import('../services/roles.ts');
      out.print(await roles.deleteRole(db, ref, audit), (role) => `role ${role.name} deleted`);
    }));

  command.command('grant')
    .description('grant scopes of an API to a role')
    .argument('<role>', 'id or name')
    .argument('<api>', 'API id, identifier or name')
    .argument('<scopes...>', 'scopes of that API')
    .action(action(async ({ db, out, audit }, ref: string, api: string, scopes: string[]) => {
      const roles = await import('../services/roles.ts');
      out.print(await roles.grantScopes(db, ref, { api, scopes }, audit), (role) => `scopes granted\n${show(role)}`);
    }));

  command.command('ungrant')
    .description('take scopes of an API back from a role')
    .argument('<role>', 'id or name')
    .argument('<api>', 'API id, identifier or name')
    .argument('<scopes...>', 'scopes of that API')
    .action(action(async ({ db, out, audit }, ref: string, api: string, scopes: string[]) => {
      const roles = await import('../services/roles.ts');
      out.print(await roles.ungrantScopes(db, ref, { api, scopes }, audit), (role) => `scopes taken back\n${show(role)}`);
    }));

  command.command('assign')
    .description('assign a role to a client or a person')
    .argument('<role>', 'id or name')
    .option('--client <client>', 'client id or name')
    .option('--user <user>', 'user id or username')
    .action(action(async ({ db, out, audit }, ref: string, opts: { client?: string; user?: string }) => {
      const roles = await import('../services/roles.ts');
      const target = holder(opts);
      const role = target.kind === 'client'
        ? await roles.assignRoleToClient(db, ref, target.ref, audit)
        : await roles.assignRoleToUser(db, ref, target.ref, audit);
      out.print(role, (value) => `role ${value.name} assigned to ${target.kind === 'user' ? 'user ' : ''}${target.ref}`);
    }));

  command.command('unassign')
    .description('remove a role from a client or a person')
    .argument('<role>', 'id or name')
    .option('--client <client>', 'client id or name')
    .option('--user <user>', 'user id or username')
    .action(action(async ({ db, out, audit }, ref: string, opts: { client?: string; user?: string }) => {
      const roles = await import('../services/roles.ts');
      const target = holder(opts);
      const role = target.kind === 'client'
        ? await roles.unassignRoleFromClient(db, ref, target.ref, audit)
        : await roles.unassignRoleFromUser(db, ref, target.ref, audit);
      out.print(role, (value) => `role ${value.name} removed from ${target.kind === 'user' ? 'user ' : ''}${target.ref}`);
    }));

  return command;
}
