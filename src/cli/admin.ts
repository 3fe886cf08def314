// postern admin bootstrap
import { Command } from 'commander';
import { DEFAULT_ADMIN_NAME } from '../domain/postern-api.ts';
import { action } from './context.ts';
import { fields } from './output.ts';

export function adminCommand(): Command {
  const command = new Command('admin').description('administration of Postern itself (the admin API)');

  command.command('bootstrap')
    .description('create the first admin client (admin:read admin:write on urn:postern); prints its secret once')
    .option('--name <name>', `client name (default ${DEFAULT_ADMIN_NAME})`)
    .option('--force', 'create another admin client even though one exists')
    .action(action(async ({ db, out, audit }, opts: { name?: string; force?: boolean }) => {
      // Loaded when the command runs: help and usage errors load no database code.
      const { bootstrapAdmin } = await import('../services/admin.ts');
      const result = await bootstrapAdmin(db, { name: opts.name, force: opts.force }, audit);
      out.print(
        {
          clientId: result.client.clientId,
          clientSecret: result.clientSecret,
          name: result.client.name,
          role: result.role,
          resource: result.resource,
        },
        (value) => `admin client created\n${fields([
          ['client_id', value.clientId],
          ['client_secret', value.clientSecret],
          ['name', value.name],
          ['role', value.role],
        ])}\n\nStore the secret now: it is shown only once and Postern keeps only a hash.\n`
          + `Get an admin token with grant_type=client_credentials and resource=${value.resource}.`,
      );
    }));

  return command;
}
