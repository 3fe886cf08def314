// deploy/postern.service and deploy/postern.env, the one-box setup: systemd accepts the unit
// (`systemd-analyze verify`, where systemd is installed), it starts node on src/main.ts, hands
// the master key over as the credential POSTERN_MASTER_KEY_FILE names, waits longer than the
// server drains, logs to the journal, and the settings file holds only settings the server knows,
// valid together, read alike by systemd and by `node --env-file` (the documented CLI command).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { MasterKey } from '../src/domain/key-encryption.ts';
import { writeMasterKeyFile } from '../src/platform/master-key.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { defaultOf, read, unknownVariables } from './support/deploy-files.ts';
import { cleanUp, describeRun, makeTempDir, ROOT, run } from './support/process.ts';

/** A unit file's settings by section: every value of a key, in order. */
function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const sections: Record<string, Record<string, string[]>> = {};
  let current: Record<string, string[]> | undefined;
  for (const line of text.split('\n').map((each) => each.trim())) {
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(\w+)\]$/.exec(line);
    if (section) {
      current = sections[section[1]!] ??= {};
      continue;
    }
    const at = line.indexOf('=');
    (current![line.slice(0, at)] ??= []).push(line.slice(at + 1));
  }
  return sections;
}

const unit = parseUnit(read('deploy/postern.service'));
const service = unit.Service!;
const one = (key: string) => {
  expect(service[key], key).toHaveLength(1);
  return service[key]![0]!;
};
const envLines = read('deploy/postern.env').split('\n').filter((line) => line.trim() && !line.trim().startsWith('#'));
const settings = parseEnv(read('deploy/postern.env'));
/** The unit's own Environment= settings. */
const unitEnv = Object.fromEntries(service.Environment!.map((each) => [each.slice(0, each.indexOf('=')), each.slice(each.indexOf('=') + 1)]));
const seconds = (name: 'SHUTDOWN_DELAY_SECONDS' | 'SHUTDOWN_TIMEOUT_SECONDS') => Number(settings[name] ?? defaultOf(name));

let tdb: TestDatabase | undefined;
afterAll(async () => {
  await cleanUp();
  await tdb?.drop();
}, 60_000);

describe('deploy/postern.service', () => {
  it('starts node on src/main.ts directly', () => {
    expect(one('ExecStart')).toBe('/usr/bin/node /opt/postern/src/main.ts');
    expect(one('WorkingDirectory')).toBe('/opt/postern');
    expect(fs.existsSync(path.join(ROOT, 'src/main.ts'))).toBe(true);
  });

  it('hands the master key over as a credential, at the path POSTERN_MASTER_KEY_FILE names', () => {
    const [name, source] = one('LoadCredential').split(':');
    expect(source).toBe('/etc/postern/master.key');
    expect(unitEnv.POSTERN_MASTER_KEY_FILE).toBe(`%d/${name}`);
  });

  it('reads its settings from /etc/postern/postern.env, which must not override what the unit sets', () => {
    expect(one('EnvironmentFile')).toBe('/etc/postern/postern.env');
    // systemd: settings from EnvironmentFile= override Environment=.
    expect(Object.keys(settings).filter((name) => name in unitEnv)).toEqual([]);
    expect(Object.keys(settings)).not.toContain('POSTERN_MASTER_KEY');
    expect(unknownVariables(Object.keys(unitEnv))).toEqual([]);
  });

  it('sends SIGTERM to the main process and waits longer than it drains', () => {
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(one('KillMode')).toBe('mixed');
    // The cluster's primary gives a hanging worker 10 s more before it kills it.
    const drain = seconds('SHUTDOWN_DELAY_SECONDS') + seconds('SHUTDOWN_TIMEOUT_SECONDS') + 10;
    expect(Number(one('TimeoutStopSec'))).toBeGreaterThan(drain);
  });

  it('logs to the journal and runs hardened, as a user of its own', () => {
    expect(one('StandardOutput')).toBe('journal');
    expect(one('User')).toBe('postern');
    for (const [key, value] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes']]) {
      expect(one(key!), key).toBe(value);
    }
    // Binding a port below 1024 takes that one capability.
    if (Number(settings.PORT ?? defaultOf('PORT')) < 1024) expect(one('AmbientCapabilities')).toBe('CAP_NET_BIND_SERVICE');
    expect(unit.Install?.WantedBy).toEqual(['multi-user.target']);
  });

  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' }).error ? undefined : 'systemd-analyze';
  it.skipIf(!analyze)('is accepted by systemd-analyze verify, without a warning', () => {
    const dir = makeTempDir('pst-unit-');
    fs.copyFileSync(path.join(ROOT, 'deploy/postern.service'), path.join(dir, 'postern.service'));
    const result = spawnSync(analyze!, ['verify', '--man=no', path.join(dir, 'postern.service')], { encoding: 'utf8' });
    // Unknown keys and bad values are warnings on stderr with exit status 0: both must be clean.
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});

describe('deploy/postern.env', () => {
  it('holds plain VAR=value lines, read alike by systemd and by node --env-file', () => {
    for (const line of envLines) expect(line).toMatch(/^[A-Z_]+=[^\s'"\\$`]*$/);
    expect(Object.keys(settings)).toHaveLength(envLines.length);
  });

  it('holds only settings the server knows, valid together, in production mode', () => {
    expect(unknownVariables(Object.keys(settings))).toEqual([]);
    const dir = makeTempDir('pst-env-');
    const keyFile = path.join(dir, 'master.key');
    writeMasterKeyFile(keyFile, MasterKey.generate('test'));
    const { config, problems } = loadConfig({ ...settings, POSTERN_MASTER_KEY_FILE: keyFile });
    expect(problems).toEqual([]);
    expect(config).toMatchObject({ mode: 'production', migrateOnStart: false, port: 443, tls: { certFile: '/etc/postern/tls/fullchain.pem' } });
    expect(config.admin).toEqual({ host: '127.0.0.1', port: 8444 });
  });

  it.skipIf(!onPostgres)('works with the documented CLI command: node --env-file=... bin/postern.js', async () => {
    tdb = await createTestDatabase();
    const dir = makeTempDir('pst-env-');
    const keyFile = path.join(dir, 'master.key');
    writeMasterKeyFile(keyFile, MasterKey.generate('test'));
    // What the box has in /etc/postern, with this test's database: the environment wins over the file.
    const args = [`--env-file=${path.join(ROOT, 'deploy/postern.env')}`, path.join(ROOT, 'bin/postern.js'), 'migrate'];
    const result = await run(args, { env: { DATABASE_URL: tdb.url, POSTERN_MASTER_KEY_FILE: keyFile }, timeoutMs: 60_000 });
    expect(result.code, describeRun(args, result, 'node')).toBe(0);
    expect(result.stdout).toMatch(/^database schema is up to date \(\d+ migrations\)\n$/);
  }, 90_000);
});
