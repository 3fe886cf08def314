// postern migrate | tokens prune | keys ...
import path from 'node:path';
import { Command } from 'commander';
import { MasterKey } from '../domain/key-encryption.ts';
import { readMasterKeyFile, writeMasterKeyFile } from '../platform/master-key.ts';
import { invalid } from '../services/errors.ts';
// Each command loads the services when it runs: help and usage errors load no database code.
import type { KeyRevocation, KeyRotation } from '../services/key-rotation.ts';
import { action } from './context.ts';
import { table } from './output.ts';

export function migrateCommand(): Command {
  return new Command('migrate')
    .description('apply pending database migrations, naming each (servers do it at start only with MIGRATE_ON_START, the default in development)')
    .action(action(async ({ out, migrations }) => {
      // action() has applied them (as before every command): say what it applied.
      out.print({ applied: migrations.applied, migrations: migrations.total, upToDate: true }, (r) => [
        ...r.applied.map((name) => `applied ${name}`),
        `database schema is up to date (${r.migrations} migrations)`,
      ].join('\n'));
    }));
}

export function tokensCommand(): Command {
  const command = new Command('tokens').description('stored tokens and codes');
  command.command('prune')
    .description('delete expired tokens, codes, sessions, revocation entries and client secrets')
    .action(action(async ({ db, out }) => {
      const { pruneExpired } = await import('../services/tokens.ts');
      const result = await pruneExpired(db);
      out.print(result, (r) => `pruned ${r.artifacts} expired artifacts, ${r.revocations} revocation entries, ${r.clientSecrets} client secrets`);
    }));
  return command;
}

interface RotateOptions { newKeyFile?: string; generate?: boolean }

function rotateMasterCommand(): Command {
  return new Command('rotate-master')
    .description('re-encrypt every private key under a new master key, in one transaction (running servers are not disturbed)')
    .option('--new-key-file <path>', 'file holding the new key (with --generate: where to write it)')
    .option('--generate', 'generate the new key and write it to a new file (mode 0600)')
    .action(action(async ({ db, out, config, keyring, audit }, opts: RotateOptions) => {
      // The new key is on disk (or in the environment) before anything is re-encrypted with it.
      let newKey: MasterKey;
      let newKeyFile: string | undefined;
      if (opts.generate) {
        newKey = MasterKey.generate('the new master key');
        newKeyFile = path.resolve(opts.newKeyFile ?? path.join(config.dataDir, `master-${newKey.fingerprint}.key`));
        try {
          writeMasterKeyFile(newKeyFile, newKey);
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          throw invalid(code === 'EEXIST' ? `${newKeyFile} exists already; name a new file` : `cannot write ${newKeyFile} (${code})`);
        }
      } else if (opts.newKeyFile) {
        if (config.newMasterKey) throw invalid('give the new key once: --new-key-file or POSTERN_NEW_MASTER_KEY, not both');
        newKeyFile = path.resolve(opts.newKeyFile);
        newKey = readMasterKeyFile(newKeyFile, `--new-key-file (${newKeyFile})`);
      } else if (config.newMasterKey) {
        newKey = config.newMasterKey;
      } else {
        throw invalid('give the new master key: --new-key-file <path>, POSTERN_NEW_MASTER_KEY, or --generate');
      }
      const { rotateMasterKey } = await import('../services/keys.ts');
      const result = await rotateMasterKey(db, keyring, newKey);
      audit.record({ type: 'master_key.rotated', details: { count: result.signingKeys + result.serverSecrets } });
      const configure = newKeyFile
        ? `POSTERN_MASTER_KEY_FILE=${newKeyFile} (or POSTERN_MASTER_KEY set to its content)`
        : 'POSTERN_MASTER_KEY set to the value of POSTERN_NEW_MASTER_KEY';
      out.print({ ...result, newKeyFile: newKeyFile ?? null, newKeyWritten: Boolean(opts.generate) }, (r) => [
        `master key rotated: ${r.signingKeys} signing keys and ${r.serverSecrets} server secrets re-encrypted`,
        `  from master key ${r.from.join(', ') || '(none)'} to ${r.to}`,
        // --generate wrote the file; --new-key-file only read it.
        ...(newKeyFile ? [r.newKeyWritten ? `new master key written to ${newKeyFile} (mode 0600)` : `new master key read from ${newKeyFile}`] : []),
        '',
        'Next:',
        config.developmentMasterKeyFile && newKeyFile
          ? `  1. make it the development key: mv ${newKeyFile} ${config.developmentMasterKeyFile}`
          : `  1. configure every server and the CLI with the new key, in place of ${keyring[0].source}:\n     ${configure}`,
        '  2. restart the servers when convenient: running servers keep the keys they decrypted at start.',
        '  3. keep the old key only as long as a backup taken before now may need restoring, then destroy it.',
      ].join('\n'));
    }));
}

function describeRotation(r: KeyRotation, propagationSeconds: number): string {
  return [
    `signing keys rotated: ${r.added.length} new keys published now, signing from ${r.added[0]?.activatesAt} (in ${propagationSeconds} s)`,
    table(['KID', 'ALG', 'KTY', 'SIGNS FROM'], r.added.map((k) => [k.kid, k.alg, k.kty, k.activatesAt])),
    r.retiring.length ? `replaced keys: sign until ${r.retiring[0]!.retiresAt}, stay published until ${r.retiring[0]!.removeAfter}` : 'no keys replaced',
    table(['KID', 'ALG', 'SIGNS UNTIL', 'PUBLISHED UNTIL'], r.retiring.map((k) => [k.kid, k.alg, k.retiresAt, k.removeAfter])),
    'Running servers pick the new keys up by themselves; nothing needs a restart.',
  ].join('\n');
}

function describeRevocation(r: KeyRevocation, jwksMaxAgeSeconds: number): string {
  return [
    `signing key ${r.revoked.kid} (${r.revoked.alg}, was ${r.revoked.state}) revoked: out of the JWKS now on every server; tokens it signed no longer verify or introspect`,
    r.replacement
      ? `${r.replacement.alg} tokens are signed from now on with ${r.replacement.kid} (${r.replacement.created ? 'a new key' : 'the key a rotation had scheduled, brought forward'})`
      : `it was not signing: the ${r.revoked.alg} signing key stays as it was`,
    `APIs that verify tokens themselves keep a fetched JWKS up to ${jwksMaxAgeSeconds} s: make them fetch it again to refuse ${r.revoked.kid} at once.`,
  ].join('\n');
}

export function keysCommand(): Command {
  const command = new Command('keys').description('signing keys and the master key that encrypts them');
  command.command('generate')
    .description('create the signing keys and server secrets (once, before the first production start)')
    .option('--if-missing', 'succeed without doing anything when keys exist (for deployment scripts)')
    .action(action(async ({ db, out, keyring, audit }, opts: { ifMissing?: boolean }) => {
      const { generateKeyMaterial, hasSigningKeys } = await import('../services/keys.ts');
      if (opts.ifMissing && (await hasSigningKeys(db))) {
        out.print({ created: false }, () => 'signing keys exist already; nothing to do');
        return;
      }
      const material = await generateKeyMaterial(db, keyring[0]);
      const kids = material.signingKeys.map((key) => ({ kid: key.kid, alg: key.alg }));
      for (const key of kids) audit.record({ type: 'key.generated', target: { type: 'key', id: key.kid }, details: { alg: key.alg } });
      out.print(kids, (list) => `signing keys created\n${table(['KID', 'ALG'], list.map((k) => [k.kid, k.alg]))}`);
    }));
  command.command('list')
    .description('list signing keys with their state and dates (public information only)')
    .action(action(async ({ db, out }) => {
      const { listKeys } = await import('../services/key-rotation.ts');
      out.print(await listKeys(db), (list) => table(
        ['KID', 'ALG', 'KTY', 'STATE', 'PUBLISHED', 'SIGNS FROM', 'SIGNS UNTIL', 'PUBLISHED UNTIL'],
        list.map((k) => [k.kid, k.alg, k.kty, k.state, k.createdAt, k.activatesAt, k.retiresAt ?? '-', k.removeAfter ?? '-']),
      ));
    }));
  command.command('rotate')
    .description('add new signing keys: published now, signing after KEY_PROPAGATION_SECONDS; the current ones stay published until their tokens expire')
    .action(action(async ({ db, out, config, keyring, audit }) => {
      const { rotateSigningKeys } = await import('../services/key-rotation.ts');
      const rotation = await rotateSigningKeys(db, keyring, { propagationSeconds: config.keyRotation.propagationSeconds });
      for (const key of rotation.added) {
        audit.record({ type: 'key.rotated', target: { type: 'key', id: key.kid }, details: { alg: key.alg, since: key.activatesAt } });
      }
      out.print(rotation, (r) => describeRotation(r, config.keyRotation.propagationSeconds));
    }));
  command.command('revoke')
    .description('take a leaked signing key out of the JWKS at once (its tokens stop verifying); another key of its type signs from now on')
    .argument('<kid>', 'the key id (postern keys list)')
    .action(action(async ({ db, out, config, keyring, audit }, kid: string) => {
      const { revokeSigningKey } = await import('../services/key-rotation.ts');
      const revocation = await revokeSigningKey(db, keyring, kid);
      audit.record({
        type: 'key.revoked', target: { type: 'key', id: kid },
        details: { alg: revocation.revoked.alg, status: revocation.revoked.state, changes: { replacement: revocation.replacement?.kid ?? null } },
      });
      out.print(revocation, (r) => describeRevocation(r, config.keyRotation.jwksMaxAgeSeconds));
    }));
  command.addCommand(rotateMasterCommand());
  return command;
}
