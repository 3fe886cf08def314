// `postern registration-tokens ...` and `postern audit tail` as a user runs them: child processes
// on the test's Postgres database or on a fresh embedded data folder.
import { spawn } from 'node:child_process';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { useCliStore } from './support/cli.ts';
import { onPostgres } from './support/database.ts';
import { CLI, describeRun, postern } from './support/process.ts';

const store = useCliStore('postern-aud-');

// Generous: an embedded command on a loaded two-core machine can take many seconds.
const TIMEOUT_MS = 60_000;
const run = (args: string[]) => postern(args, store.env, TIMEOUT_MS);

async function ok(args: string[]): Promise<string> {
  const result = await run(args);
  expect(result.code, describeRun(args, result)).toBe(0);
  expect(result.stderr).toBe('');
  return result.stdout;
}

const operator = os.userInfo().username;

describe('postern registration-tokens', () => {
  let tokenId: string;
  let value: string;

  it('creates a token bound to a role, printing its value once', async () => {
    await ok(['apis', 'create', '--identifier', 'https://orders.internal', '--scopes', 'orders:read orders:write']);
    await ok(['roles', 'create', 'orders-reader', '--grant', 'https://orders.internal orders:read']);
    const out = JSON.parse(await ok(['--json', 'registration-tokens', 'create', '--max-uses', '1', '--ttl', '1h', '--role', 'orders-reader']));
    expect(out).toMatchObject({ roles: ['orders-reader'], maxUses: 1, uses: 0, state: 'active' });
    expect(out.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    tokenId = out.id;
    value = out.token;
    const listed = await ok(['registration-tokens', 'list']);
    expect(listed).toContain(tokenId);
    expect(listed).not.toContain(value);
  }, 300_000);

  it('revokes it, and refuses bad options in one line', async () => {
    expect(await ok(['registration-tokens', 'revoke', tokenId])).toBe(`registration token ${tokenId} revoked\n`);
    const unknown = await run(['registration-tokens', 'create', '--role', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('postern: unknown role "nope"\n');
    const ttl = await run(['registration-tokens', 'create', '--ttl', '10s']);
    expect(ttl.code).toBe(1);
    expect(ttl.stderr).toBe('postern: the lifetime must be between 1 minute and 90 days\n');
  }, 300_000);

  it('shows the changes in `audit tail`, made by the OS user, with no token value', async () => {
    const out = await ok(['audit', 'tail', '--limit', '5']);
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(new RegExp(`^\\S+Z  api\\.created  success  operator:${operator} -> api:api_`));
    expect(lines[2]).toMatch(new RegExp(`registration_token\\.created  success  operator:${operator} -> registration_token:${tokenId}`));
    expect(lines[3]).toMatch(/registration_token\.revoked  success/);
    expect(out).not.toContain(value);

    const only = (await ok(['--json', 'audit', 'tail', '--type', 'registration_token.*'])).trim().split('\n').map((l) => JSON.parse(l));
    expect(only.map((event) => event.type)).toEqual(['registration_token.created', 'registration_token.revoked']);
    expect(only[0]).toMatchObject({ actor: { type: 'operator', id: operator }, outcome: 'success', details: { roles: ['orders-reader'] } });

    const bad = await run(['audit', 'tail', '--type', 'nope']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('postern: unknown event type "nope" (see docs/audit.md)\n');
  }, 300_000);

  // The embedded store admits one process at a time (without a server), so following while
  // another command writes needs Postgres.
  it.skipIf(!onPostgres)('follows new events with --follow until interrupted', async () => {
    const child = spawn(process.execPath, [CLI, 'audit', 'tail', '--follow', '--limit', '1', '--type', 'role.*'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...store.env } as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    try {
      const until = async (pattern: RegExp) => {
        const deadline = Date.now() + 20_000;
        while (!pattern.test(stdout) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        expect(stdout).toMatch(pattern);
      };
      await until(/role\.created/);
      await ok(['roles', 'create', 'orders-auditor']);
      await until(/role\.created .*\n.*role\.created .*orders-auditor/s);
      expect(stdout).not.toMatch(/api\.created/);
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  }, 120_000);
});
