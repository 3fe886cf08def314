// postern clients ...
import { Command, Option } from 'commander';
import * as clients from '../services/clients.ts';
import { action, collect, words } from './context.ts';
import { fields, parseDuration, table } from './output.ts';

function show(client: clients.ClientView): string {
  return fields([
    ['client_id', client.clientId],
    ['name', client.name],
    ['enabled', client.enabled ? 'yes' : 'no'],
    ['grant types', client.grantTypes.join(' ')],
    ['auth method', client.tokenEndpointAuthMethod],
    ['roles', client.roles.join(' ') || '(none)'],
    ['secrets', client.secrets.map((s) => `${s.id} (created ${s.createdAt}${s.expiresAt ? `, expires ${s.expiresAt}` : ''})`).join('\n         ')],
  ]);
}

const SECRET_NOTICE = 'Store the secret now: it is shown only once and Postern keeps only a hash.';

export function clientsCommand(): Command {
  const command = new Command('clients').description('clients: services that get tokens with their own credentials');

  command.command('create')
    .description('register a client; prints its client_id and a new secret once')
    .requiredOption('--name <name>', 'unique name')
    .option('--grant <grant>', 'grant type (repeatable; default client_credentials)', collect, [])
    .option('--role <role>', 'role to assign (repeatable)', collect, [])
    .addOption(new Option('--auth-method <method>', 'how it authenticates at the token endpoint')
      .choices([...clients.AUTH_METHODS]).default('client_secret_basic'))
    .action(action(async ({ db, out, audit }, opts: { name: string; grant: string[]; role: string[]; authMethod: string }) => {
      const result = await clients.createClient(db, {
        name: opts.name,
        grantTypes: words(opts.grant),
        roles: words(opts.role),
        tokenEndpointAuthMethod: opts.authMethod,
      }, audit);
      out.print(
        { ...result.client, clientSecret: result.clientSecret },
        () => `client created\n${show(result.client)}\nclient_secret: ${result.clientSecret}\n\n${SECRET_NOTICE}`,
      );
    }));

  command.command('list')
    .description('list clients')
    .action(action(async ({ db, out }) => {
      out.print(await clients.listClients(db), (list) => table(
        ['CLIENT_ID', 'NAME', 'ENABLED', 'GRANTS', 'ROLES'],
        list.map((c) => [c.clientId, c.name, c.enabled ? 'yes' : 'no', c.grantTypes.join(' '), c.roles.join(' ')]),
      ));
    }));

  command.command('show')
    .description('show a client')
    .argument('<client>', 'client id or name')
    .action(action(async ({ db, out }, ref: string) => {
      out.print(await clients.getClient(db, ref), show);
    }));

  for (const [name, enabled] of [['enable', true], ['disable', false]] as const) {
    command.command(name)
      .description(enabled ? 'let a disabled client get tokens again' : 'refuse the client at once (its tokens stop introspecting as active)')
      .argument('<client>', 'client id or name')
      .action(action(async ({ db, out, audit }, ref: string) => {
        out.print(await clients.setClientEnabled(db, ref, enabled, audit), (c) => `client ${c.name} ${name}d`);
      }));
  }

  command.command('delete')
    .description('delete a client, its secrets and role assignments')
    .argument('<client>', 'client id or name')
    .action(action(async ({ db, out, audit }, ref: string) => {
      out.print(await clients.deleteClient(db, ref, audit), (c) => `client ${c.name} deleted`);
    }));

  command.command('rotate-secret')
    .description('issue a new secret; the old ones keep working for --keep-old-for (default: they stop now)')
    .argument('<client>', 'client id or name')
    .option('--keep-old-for <duration>', 'overlap during which the old secrets still work (e.g. 24h)', parseDuration, 0)
    .action(action(async ({ db, out, audit }, ref: string, opts: { keepOldFor: number }) => {
      const result = await clients.rotateClientSecret(db, ref, opts.keepOldFor, new Date(), audit);
      out.print(
        { ...result.client, clientSecret: result.clientSecret, oldSecretsExpireAt: result.oldSecretsExpireAt },
        () => `secret rotated for ${result.client.name}\nclient_secret: ${result.clientSecret}\n`
          + `old secrets stop working at ${result.oldSecretsExpireAt}\n\n${SECRET_NOTICE}`,
      );
    }));

  return command;
}
