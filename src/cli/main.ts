// The `postern` command line: the same services as the server, on the configured database.
// A run loads only the command it names (each command module brings its services, and a command
// should start in a fraction of a second); help for the whole tree loads every one.
import { CommanderError, type Command } from 'commander';
import { ServiceError } from '../services/errors.ts';
import { createProgram } from './program.ts';

/** Each top-level command, loaded on demand. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  apis: async () => (await import('./apis.ts')).apisCommand(),
  roles: async () => (await import('./roles.ts')).rolesCommand(),
  clients: async () => (await import('./clients.ts')).clientsCommand(),
  users: async () => (await import('./users.ts')).usersCommand(),
  migrate: async () => (await import('./system.ts')).migrateCommand(),
  tokens: async () => (await import('./system.ts')).tokensCommand(),
  keys: async () => (await import('./system.ts')).keysCommand(),
  admin: async () => (await import('./admin.ts')).adminCommand(),
  'registration-tokens': async () => (await import('./registration-tokens.ts')).registrationTokensCommand(),
  audit: async () => (await import('./audit.ts')).auditCommand(),
  issuers: async () => (await import('./issuers.ts')).issuersCommand(),
  routes: async () => (await import('./routes.ts')).routesCommand(),
};

/** The program for `argv`: with only the command it names, or every command (help, typos). */
async function programFor(argv: string[]): Promise<Command> {
  const name = argv.find((arg) => !arg.startsWith('-'));
  const load = name !== undefined && Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (load) return createProgram([await load()]);
  return (await import('./commands.ts')).buildProgram();
}

export async function runCli(argv: string[]): Promise<number> {
  try {
    await (await programFor(argv)).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander has printed the message (or the help/version, with exit code 0).
      return error.exitCode === 0 ? 0 : 2;
    }
    const message = error instanceof ServiceError || error instanceof Error ? error.message : String(error);
    process.stderr.write(`postern: ${message}\n`);
    return 1;
  }
}
