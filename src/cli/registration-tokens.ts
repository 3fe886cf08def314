// postern registration-tokens create|list|revoke
import { Command } from 'commander';
// Each command loads the service when it runs: help and usage errors load no database code.
import type * as registration from '../services/registration.ts';
import { action, collect, words } from './context.ts';
import { fields, parseDuration, table } from './output.ts';

function show(token: registration.RegistrationTokenView): string {
  return fields([
    ['id', token.id],
    ['roles', token.roles.join(' ') || '(none)'],
    ['uses', `${token.uses} of ${token.maxUses}`],
    ['expires', token.expiresAt],
    ['state', token.state],
    ['description', token.description],
  ]);
}

function count(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new Error(`--max-uses must be a whole number, got "${value}"`);
  return n;
}

export function registrationTokensCommand(): Command {
  const command = new Command('registration-tokens')
    .description('initial access tokens with which services register themselves (RFC 7591, docs/registration.md)');

  command.command('create')
    .description('make a token; prints it once. A client registered with it gets exactly its roles')
    .option('--role <role>', 'role the registered clients get (repeatable)', collect, [])
    .option('--max-uses <n>', 'how many clients it may register (default 1)', count, 1)
    .option('--ttl <duration>', 'how long it may be used (e.g. 30m, 1h, 7d; default 1h)', parseDuration, 3600)
    .option('--description <text>', 'what it is for (e.g. the pipeline using it)')
    .action(action(async ({ db, out, audit }, opts: { role: string[]; maxUses: number; ttl: number; description?: string }) => {
      const registration = await import('../services/registration.ts');
      const result = await registration.createRegistrationToken(db, {
        roles: words(opts.role), maxUses: opts.maxUses, ttlSeconds: opts.ttl, description: opts.description,
      }, audit);
      out.print(
        { ...result.registrationToken, token: result.token },
        () => `registration token created\n${show(result.registrationToken)}\ntoken:       ${result.token}\n\n`
          + 'Store the token now: it is shown only once and Postern keeps only a hash.\n'
          + 'Register with: POST <issuer>/reg, Authorization: Bearer <token>, body {"client_name": "..."}',
      );
    }));

  command.command('list')
    .description('list registration tokens (never their values)')
    .action(action(async ({ db, out }) => {
      const registration = await import('../services/registration.ts');
      out.print(await registration.listRegistrationTokens(db), (list) => table(
        ['ID', 'ROLES', 'USES', 'EXPIRES', 'STATE', 'DESCRIPTION'],
        list.map((t) => [t.id, t.roles.join(' '), `${t.uses}/${t.maxUses}`, t.expiresAt, t.state, t.description ?? '']),
      ));
    }));

  command.command('revoke')
    .description('stop a token from registering more clients (clients it registered stay)')
    .argument('<id>', 'token id (rt_...)')
    .action(action(async ({ db, out, audit }, id: string) => {
      const registration = await import('../services/registration.ts');
      out.print(await registration.revokeRegistrationToken(db, id, audit), (t) => `registration token ${t.id} revoked`);
    }));

  return command;
}
