// postern roles ...
import { Command } from 'commander';
import { invalid } from '../services/errors.ts';
import * as roles from '../services/roles.ts';
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
  ]);
}

export function rolesCommand(): Command {
  const command = new Command('roles').description('roles: named sets of API scopes, assigned to clients');

  command.command('create')
    .description('create a role')
    .argument('<name>', 'role name')
    .option('--description <text>', 'what the role is for')
    .option('--grant <grant>', 'scopes to grant: "<api> <scope> [scope...]" (repeatable)', collect, [])
    .action(action(async ({ db, out, audit }, name: string, opts: { description?: string; grant: string[] }) => {
      const role = await roles.createRole(db, {
        name, description: opts.description, grants: opts.grant.map(parseGrant),
      }, audit);
      out.print(role, (value) => `role created\n${show(value)}`);
    }));

  command.command('list')
    .description('list roles')
    .action(action(async ({ db, out }) => {
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
      out.print(await roles.getRole(db, ref), show);
    }));

  command.command('delete')
    .description('delete a role (clients lose what it granted)')
    .argument('<role>', 'id or name')
    .action(action(async ({ db, out, audit }, ref: string) => {
      out.print(await roles.deleteRole(db, ref, audit), (role) => `role ${role.name} deleted`);
    }));

  command.command('grant')
    .description('grant scopes of an API to a role')
    .argument('<role>', 'id or name')
    .argument('<api>', 'API id, identifier or name')
    .argument('<scopes...>', 'scopes of that API')
    .action(action(async ({ db, out, audit }, ref: string, api: string, scopes: string[]) => {
      out.print(await roles.grantScopes(db, ref, { api, scopes }, audit), (role) => `scopes granted\n${show(role)}`);
    }));

  command.command('ungrant')
    .description('take scopes of an API back from a role')
    .argument('<role>', 'id or name')
    .argument('<api>', 'API id, identifier or name')
    .argument('<scopes...>', 'scopes of that API')
    .action(action(async ({ db, out, audit }, ref: string, api: string, scopes: string[]) => {
      out.print(await roles.ungrantScopes(db, ref, { api, scopes }, audit), (role) => `scopes taken back\n${show(role)}`);
    }));

  command.command('assign')
    .description('assign a role to a client')
    .argument('<role>', 'id or name')
    .requiredOption('--client <client>', 'client id or name')
    .action(action(async ({ db, out, audit }, ref: string, opts: { client: string }) => {
      out.print(await roles.assignRoleToClient(db, ref, opts.client, audit), (role) => `role ${role.name} assigned to ${opts.client}`);
    }));

  command.command('unassign')
    .description('remove a role from a client')
    .argument('<role>', 'id or name')
    .requiredOption('--client <client>', 'client id or name')
    .action(action(async ({ db, out, audit }, ref: string, opts: { client: string }) => {
      out.print(await roles.unassignRoleFromClient(db, ref, opts.client, audit), (role) => `role ${role.name} removed from ${opts.client}`);
    }));

  return command;
}
