// postern users ...
import { Command } from 'commander';
import { invalid } from '../services/errors.ts';
// Each command loads the service when it runs: help and usage errors load no database code.
import type * as users from '../services/users.ts';
import { decodeCleanUtf8 } from '../domain/text.ts';
import { action } from './context.ts';
import { fields, table } from './output.ts';

function show(user: users.UserView): string {
  return fields([
    ['id', user.id],
    ['username', user.username],
    ['email', user.email ? `${user.email}${user.emailVerified ? ' (verified)' : ''}` : null],
    ['name', user.name],
    ['enabled', user.enabled ? 'yes' : 'no'],
    ['roles', user.roles.join(' ') || '(none)'],
    ['password set', user.passwordChangedAt],
    ['created', user.createdAt],
  ]);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = decodeCleanUtf8(Buffer.concat(chunks));
  if (text === undefined) throw invalid('the password on standard input holds a NUL byte or is not UTF-8 text', 'password');
  // One trailing newline is the end of the line, not part of the password.
  return text.replace(/\r?\n$/, '');
}

/** The new password: from stdin with --password-stdin, else asked twice without echo. */
async function newPassword(fromStdin: boolean): Promise<string> {
  if (fromStdin) return readStdin();
  if (!process.stdin.isTTY) {
    throw invalid('no terminal to ask for the password: pipe it with --password-stdin', 'password');
  }
  // Loaded only to ask: a command given its password, or none, does not load it.
  const { read } = await import('read');
  const first = await read({ prompt: 'Password: ', silent: true, replace: '' });
  const second = await read({ prompt: 'Repeat password: ', silent: true, replace: '' });
  if (first !== second) throw invalid('the passwords do not match', 'password');
  return first;
}

export function usersCommand(): Command {
  const command = new Command('users').description('people who sign in through the browser');

  command.command('create')
    .description('create a person; asks for the password twice, or reads it with --password-stdin')
    .argument('<username>', 'unique username (letters, digits, ".", "_", "-")')
    .option('--email <email>', 'email address')
    .option('--name <name>', 'full name, shown to apps with the profile scope')
    .option('--password-stdin', 'read the password from standard input')
    .action(action(async ({ db, out, audit }, username: string, opts: { email?: string; name?: string; passwordStdin?: boolean }) => {
      const users = await import('../services/users.ts');
      const password = await newPassword(Boolean(opts.passwordStdin));
      const user = await users.createUser(db, { username, password, email: opts.email, name: opts.name }, audit);
      out.print(user, (value) => `user created\n${show(value)}`);
    }));

  command.command('list')
    .description('list people')
    .action(action(async ({ db, out }) => {
      const users = await import('../services/users.ts');
      out.print(await users.listUsers(db), (list) => table(
        ['USERNAME', 'EMAIL', 'ENABLED', 'ROLES'],
        list.map((u) => [u.username, u.email ?? '', u.enabled ? 'yes' : 'no', u.roles.join(' ')]),
      ));
    }));

  command.command('show')
    .description('show a person')
    .argument('<user>', 'user id or username')
    .action(action(async ({ db, out, audit }, ref: string) => {
      const users = await import('../services/users.ts');
      out.print(await users.getUser(db, ref), show);
    }));

  command.command('update')
    .description("change a person's email or name")
    .argument('<user>', 'user id or username')
    .option('--email <email>', 'new email address (marked unverified)')
    .option('--email-verified', 'mark the email address verified')
    .option('--name <name>', 'new full name')
    .action(action(async ({ db, out, audit }, ref: string, opts: { email?: string; emailVerified?: boolean; name?: string }) => {
      const users = await import('../services/users.ts');
      out.print(await users.updateUser(db, ref, opts, audit), (value) => `user updated\n${show(value)}`);
    }));

  for (const [name, enabled] of [['enable', true], ['disable', false]] as const) {
    command.command(name)
      .description(enabled ? 'let a disabled person sign in again' : 'refuse sign-in and end every session and grant at once')
      .argument('<user>', 'user id or username')
      .action(action(async ({ db, out, audit }, ref: string) => {
        const users = await import('../services/users.ts');
        out.print(await users.setUserEnabled(db, ref, enabled, audit), (u) => `user ${u.username} ${name}d`);
      }));
  }

  command.command('set-password')
    .description("set a person's password (asked twice, or --password-stdin); their sessions end")
    .argument('<user>', 'user id or username')
    .option('--password-stdin', 'read the password from standard input')
    .action(action(async ({ db, out, audit }, ref: string, opts: { passwordStdin?: boolean }) => {
      const users = await import('../services/users.ts');
      const password = await newPassword(Boolean(opts.passwordStdin));
      out.print(await users.setUserPassword(db, ref, password, audit), (u) => `password set for ${u.username}`);
    }));

  command.command('revoke-sessions')
    .description("end every session of a person and revoke their grants and tokens")
    .argument('<user>', 'user id or username')
    .action(action(async ({ db, out, audit }, ref: string) => {
      const users = await import('../services/users.ts');
      const result = await users.revokeUserSessions(db, ref, audit);
      out.print(result, (r) => `sessions of ${r.user.username} ended; ${r.revokedGrants} grant(s) revoked`);
    }));

  command.command('delete')
    .description('delete a person, their roles, sessions and grants')
    .argument('<user>', 'user id or username')
    .action(action(async ({ db, out, audit }, ref: string) => {
      const users = await import('../services/users.ts');
      out.print(await users.deleteUser(db, ref, audit), (u) => `user ${u.username} deleted`);
    }));

  return command;
}
