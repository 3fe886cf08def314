// The set-up every CLI suite shares: a migrated store for `postern` commands run as child
// processes (a new Postgres database with TEST_DATABASE_URL, else a fresh embedded data folder),
// dropped afterwards.
import path from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { embeddedServerPid } from '../../src/db/database.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './database.ts';
import { cleanUp, describeRun, makeTempDir, postern, type Env, type RunResult } from './process.ts';

export interface CliStore {
  /** The environment of every command (read it inside tests: it is set in beforeAll). */
  readonly env: Env;
  /** A temporary folder of the suite's own. */
  readonly home: string;
}

export function useCliStore(prefix: string): CliStore {
  let env: Env = {};
  let home = '';
  let tdb: TestDatabase | undefined;
  beforeAll(async () => {
    home = makeTempDir(prefix);
    if (onPostgres) {
      tdb = await createTestDatabase();
      // POSTERN_DATA_DIR points at a folder nothing uses: DATABASE_URL must win.
      env = { DATABASE_URL: tdb.url, POSTERN_DATA_DIR: path.join(home, 'unused') };
    } else {
      env = { POSTERN_DATA_DIR: path.join(home, 'data') };
      // A fresh folder that no server holds: the commands open it themselves.
      expect(embeddedServerPid(env.POSTERN_DATA_DIR!)).toBeUndefined();
    }
    // The first command creates the embedded data folder (initdb takes several seconds).
    const first = await postern(['migrate'], env, 120_000);
    expect(first.code, describeRun(['migrate'], first)).toBe(0);
  }, 180_000);
  afterAll(async () => {
    await cleanUp();
    await tdb?.drop();
  }, 60_000);
  return { get env() { return env; }, get home() { return home; } };
}

/**
 * A command prints its result or its error last, once it has closed the database, so it should
 * exit right after: well under a second on a quiet machine, and up to several seconds on a
 * loaded one (seen: 6.6 s with the embedded database on two busy cores). The limit stays below
 * the 10 s a forgotten pg pool keeps a process alive (its idle timeout), which it must catch.
 */
const LINGER_LIMIT_MS = 9000;

/** Commands on `env()` that must succeed or be refused, checked the same way in every suite. */
export function cliCommands(env: () => Env) {
  const cli = (args: string[]) => postern(args, env());

  /** Runs a command that must succeed; returns its stdout. */
  async function ok(args: string[]): Promise<string> {
    const result = await cli(args);
    const what = describeRun(args, result);
    expect(result.timedOut === false && result.code === 0, what).toBe(true);
    expect(result.stderr, what).toBe('');
    expect(result.lingerMs, `it must exit as soon as it is done: ${what}`).toBeLessThan(LINGER_LIMIT_MS);
    return result.stdout;
  }

  /** Runs a command with --json; returns the parsed output. */
  async function json<T = any>(args: string[]): Promise<T> {
    return JSON.parse(await ok(['--json', ...args])) as T;
  }

  /**
   * Runs a command that must be refused: it exits on its own with a non-zero status, prints
   * nothing on stdout and exactly one line on stderr, "postern: <what is wrong>", without a
   * stack trace.
   */
  async function refused(args: string[], message: string | RegExp): Promise<RunResult> {
    const result = await cli(args);
    const what = describeRun(args, result);
    expect(result.timedOut, `it must exit on its own: ${what}`).toBe(false);
    expect(result.lingerMs, `it must exit as soon as it has said what is wrong: ${what}`).toBeLessThan(LINGER_LIMIT_MS);
    expect(result.code, what).not.toBe(0);
    expect(result.code, what).not.toBeNull();
    expect(result.stdout, what).toBe('');
    expect(result.stderr, `one line starting with "postern: ": ${what}`).toMatch(/^postern: [^\n]+\n$/);
    expect(result.stderr).not.toMatch(/^\s+at /m);
    if (typeof message === 'string') expect(result.stderr).toContain(message);
    else expect(result.stderr).toMatch(message);
    return result;
  }

  return { cli, ok, json, refused };
}

/** "key: value" of the human output. */
export function field(output: string, key: string): string | undefined {
  return new RegExp(`^${key}:\\s+(.*)$`, 'm').exec(output)?.[1]?.trim();
}
