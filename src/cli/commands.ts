// Every command of `postern`, for the help that lists them all (and for tests of the whole tree).
import type { Command } from 'commander';
import { adminCommand } from './admin.ts';
import { auditCommand } from './audit.ts';
import { apisCommand } from './apis.ts';
import { clientsCommand } from './clients.ts';
import { issuersCommand } from './issuers.ts';
import { createProgram } from './program.ts';
import { registrationTokensCommand } from './registration-tokens.ts';
import { rolesCommand } from './roles.ts';
import { routesCommand } from './routes.ts';
import { usersCommand } from './users.ts';
import { keysCommand, migrateCommand, tokensCommand } from './system.ts';

export function allCommands(): Command[] {
  return [apisCommand(), rolesCommand(), clientsCommand(), usersCommand(), migrateCommand(), tokensCommand(), keysCommand(),
    adminCommand(), registrationTokensCommand(), auditCommand(), issuersCommand(), routesCommand()];
}

export function buildProgram(): Command {
  return createProgram(allCommands());
}
