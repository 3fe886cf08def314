// postern migrate | tokens prune | keys ...
import { Command } from 'commander';
import { migrate, pendingMigrations } from '../db/migrator.ts';
import { generateKeyMaterial, listKeys, loadKeyMaterial } from '../services/keys.ts';
import { pruneExpired } from '../services/tokens.ts';
import { action } from './context.ts';
import { table } from './output.ts';

export function migrateCommand(): Command {
  return new Command('migrate')
    .description('apply pending database migrations (the server also does this when it starts)')
    .action(action(async ({ database, out }) => {
      // action() has migrated already; report what the database now has.
      const pending = await pendingMigrations(database);
      const applied = pending.length ? await migrate(database) : [];
      out.print({ applied, upToDate: true }, () => 'database schema is up to date');
    }));
}

export function tokensCommand(): Command {
  const command = new Command('tokens').description('stored tokens and codes');
  command.command('prune')
    .description('delete expired tokens, codes, sessions, revocation entries and client secrets')
    .action(action(async ({ db, out }) => {
      const result = await pruneExpired(db);
      out.print(result, (r) => `pruned ${r.artifacts} expired artifacts, ${r.revocations} revocation entries, ${r.clientSecrets} client secrets`);
    }));
  return command;
}

export function keysCommand(): Command {
  const command = new Command('keys').description('signing keys');
  command.command('generate')
    .description('create the signing keys and cookie keys (once, before the first production start)')
    .option('--if-missing', 'succeed without doing anything when keys exist (for deployment scripts)')
    .action(action(async ({ db, out }, opts: { ifMissing?: boolean }) => {
      if (opts.ifMissing && (await loadKeyMaterial(db))) {
        out.print({ created: false }, () => 'signing keys exist already; nothing to do');
        return;
      }
      const material = await generateKeyMaterial(db);
      const kids = material.signingKeys.map((key) => ({ kid: key.kid, alg: key.alg }));
      out.print(kids, (list) => `signing keys created\n${table(['KID', 'ALG'], list.map((k) => [k.kid, k.alg]))}`);
    }));
  command.command('list')
    .description('list signing keys (public information only)')
    .action(action(async ({ db, out }) => {
      out.print(await listKeys(db), (list) => table(
        ['KID', 'ALG', 'KTY', 'STATE', 'CREATED'],
        list.map((k) => [k.kid, k.alg, k.kty, k.state, k.createdAt]),
      ));
    }));
  return command;
}
