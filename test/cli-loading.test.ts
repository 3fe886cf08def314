// What a command loads. Each module costs a command part of its start (most of it, for a command
// that lists a few rows), so a command loads what it uses: help and usage errors no database
// code, and a command that hashes no password, signs nothing and speaks no OAuth none of argon2,
// jose or oidc-provider. Read from the packages a command resolves; nothing here is timed.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useCliStore } from './support/cli.ts';
import { onPostgres, slowSuitesRunHere } from './support/database.ts';
import { CLI, describeRun, ROOT, run, type Env } from './support/process.ts';

const TRACE = path.join(ROOT, 'test/support/loaded-packages.ts');

/** Runs `postern ...args`; returns its exit code and the packages it loaded. */
async function packagesOf(args: string[], env: Env): Promise<{ code: number | null; packages: string[] }> {
  const result = await run(['--import', TRACE, CLI, ...args], { env });
  const line = /loaded packages: (.*)\n$/.exec(result.stderr);
  expect(line, describeRun(args, result)).not.toBeNull();
  const packages = JSON.parse(line![1]!) as string[];
  // The trace works: every command loads its command-line parser.
  expect(packages, describeRun(args, result)).toContain('commander');
  return { code: result.code, packages };
}

const DATABASE = ['kysely', 'pg', '@electric-sql/pglite', 'zod'];
const UNUSED_BY_LISTS = ['argon2', 'jose', 'oidc-provider', 'koa'];

describe('what help and usage errors load', () => {
  it('no database code, configuration or protocol engine', async () => {
    // Help exits 0, a usage error 2 (a missing option, an unknown command); none opens a database.
    const runs: [string[], number][] = [[['--help'], 0], [['clients', '--help'], 0], [['clients', 'create'], 2], [['no-such-command'], 2]];
    for (const [args, exitCode] of runs) {
      const { code, packages } = await packagesOf(args, {});
      expect(code, args.join(' ')).toBe(exitCode);
      expect(packages.filter((name) => [...DATABASE, ...UNUSED_BY_LISTS].includes(name)), args.join(' ')).toEqual([]);
    }
  });
});

// Slow on the embedded database (a data folder opened per command); CI runs it on Postgres.
describe.runIf(slowSuitesRunHere)('what a command that lists loads', () => {
  const store = useCliStore('postern-loading-');

  it('the database, but no password hashing, signing or OAuth code', async () => {
    for (const args of [['clients', 'list'], ['users', 'list'], ['apis', 'list'], ['roles', 'list']]) {
      const { code, packages } = await packagesOf(args, store.env);
      expect(code, args.join(' ')).toBe(0);
      expect(packages, args.join(' ')).toContain(onPostgres ? 'pg' : '@electric-sql/pglite');
      // On Postgres, the embedded database is not loaded either.
      const unused = onPostgres ? [...UNUSED_BY_LISTS, '@electric-sql/pglite'] : UNUSED_BY_LISTS;
      expect(packages.filter((name) => unused.includes(name)), args.join(' ')).toEqual([]);
    }
  });
});
