// The `postern` command line: the same services as the server, on the configured database.
import { Command, CommanderError } from 'commander';
import { ServiceError } from '../services/errors.ts';
import { adminCommand } from './admin.ts';
import { auditCommand } from './audit.ts';
import { apisCommand } from './apis.ts';
import { clientsCommand } from './clients.ts';
import { registrationTokensCommand } from './registration-tokens.ts';
import { rolesCommand } from './roles.ts';
import { routesCommand } from './routes.ts';
import { usersCommand } from './users.ts';
import { keysCommand, migrateCommand, tokensCommand } from './system.ts';

/** Usage errors, like every other error: one line, `postern: <what is wrong>`. */
function writeUsageError(text: string, write: (text: string) => void): void {
  write(`postern: ${text.replace(/^error: /, '').trim()} (see --help)\n`);
}

export function buildProgram(): Command {
  const program = new Command('postern')
    .description('Postern: OAuth 2.0 authorization server for service-to-service traffic.\n'
      + 'Uses DATABASE_URL, or the embedded database in POSTERN_DATA_DIR (default .postern-data).')
    .option('--json', 'print JSON for scripts')
    .exitOverride()
    .configureOutput({ outputError: writeUsageError });
  for (const command of [apisCommand(), rolesCommand(), clientsCommand(), usersCommand(), migrateCommand(), tokensCommand(), keysCommand(),
    adminCommand(), registrationTokensCommand(), auditCommand(), routesCommand()]) {
    program.addCommand(command);
  }
  // Subcommands get the same exit and error handling.
  const configure = (command: Command) => {
    command.exitOverride().configureOutput({ outputError: writeUsageError });
    command.commands.forEach(configure);
  };
  program.commands.forEach(configure);
  return program;
}

export async function runCli(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
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
