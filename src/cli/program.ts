// The `postern` program around its commands: the global options, and usage errors printed as
// every other error. Each command lives in a module of its own, loaded only when it is run.
import { Command } from 'commander';

/** Usage errors, like every other error: one line, `postern: <what is wrong>`. */
function writeUsageError(text: string, write: (text: string) => void): void {
  write(`postern: ${text.replace(/^error: /, '').trim()} (see --help)\n`);
}

export function createProgram(commands: Command[]): Command {
  const program = new Command('postern')
    .description('Postern: OAuth 2.0 authorization server for service-to-service traffic.\n'
      + 'Uses DATABASE_URL, or the embedded database in POSTERN_DATA_DIR (default .postern-data).')
    .option('--json', 'print JSON for scripts')
    .exitOverride()
    .configureOutput({ outputError: writeUsageError });
  for (const command of commands) program.addCommand(command);
  // Subcommands get the same exit and error handling.
  const configure = (command: Command) => {
    command.exitOverride().configureOutput({ outputError: writeUsageError });
    command.commands.forEach(configure);
  };
  program.commands.forEach(configure);
  return program;
}
