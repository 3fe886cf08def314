// postern issuers ... (workload identity: docs/workload-identity.md)
import { Command, Option } from 'commander';
import { ISSUER_KINDS } from '../domain/trusted-issuers.ts';
// Each command loads the service when it runs: help and usage errors load no database code.
import type * as issuers from '../services/trusted-issuers.ts';
import { readJwksFile } from './clients.ts';
import { action } from './context.ts';
import { fields, table } from './output.ts';

function show(issuer: issuers.IssuerView): string {
  return fields([
    ['id', issuer.id],
    ['name', issuer.name],
    ['issuer', issuer.issuer],
    ['kind', issuer.kind],
    ['keys', issuer.jwksSource === 'discovery' ? 'discovery (the issuer\'s /.well-known/openid-configuration)'
      : issuer.jwksSource === 'jwks_uri' ? issuer.jwksUri ?? '' : `given once: ${(issuer.staticKids ?? []).join(', ')}`],
    ['enabled', issuer.enabled ? 'yes' : 'no'],
    ['clients', issuer.clients.join(' ') || '(none)'],
  ]);
}

interface KeyOptions { discovery?: boolean; jwksUri?: string; jwksFile?: string }
const keysOf = (opts: KeyOptions) => ({
  discovery: opts.discovery,
  jwksUri: opts.jwksUri,
  jwks: opts.jwksFile === undefined ? undefined : readJwksFile(opts.jwksFile),
});

export function issuersCommand(): Command {
  const command = new Command('issuers').description('trusted issuers: platforms whose tokens authenticate clients (Kubernetes, SPIFFE, GitHub Actions)');
  const rules = (config: { mode: string }): issuers.IssuerRules => ({ development: config.mode === 'development' });

  command.command('create')
    .description('trust an issuer of workload tokens (every process applies it before this returns)')
    .argument('<name>', 'unique name')
    .requiredOption('--issuer <url>', 'the `iss` of its tokens, exactly (for SPIFFE JWT-SVIDs without iss: spiffe://<trust domain>)')
    .option('--discovery', 'fetch its keys from its OpenID discovery document')
    .option('--jwks-uri <url>', 'fetch its keys from this https URL (a SPIFFE bundle endpoint)')
    .option('--jwks-file <file>', 'its public keys, a JWK Set file (a cluster whose issuer cannot be reached)')
    .addOption(new Option('--kind <kind>', 'what kind of platform').choices([...ISSUER_KINDS]).default('oidc'))
    .action(action(async ({ db, out, audit, config }, name: string, opts: KeyOptions & { issuer: string; kind: issuers.IssuerInput['kind'] }) => {
      const issuers = await import('../services/trusted-issuers.ts');
      const issuer = await issuers.createIssuer(db, { name, issuer: opts.issuer, kind: opts.kind, ...keysOf(opts) }, rules(config), audit);
      out.print(issuer, (value) => `issuer created\n${show(value)}`);
    }));

  command.command('list')
    .description('list trusted issuers')
    .action(action(async ({ db, out }) => {
      const issuers = await import('../services/trusted-issuers.ts');
      out.print(await issuers.listIssuers(db), (list) => table(
        ['NAME', 'KIND', 'ISSUER', 'ENABLED', 'CLIENTS'],
        list.map((i) => [i.name, i.kind, i.issuer, i.enabled ? 'yes' : 'no', String(i.clients.length)]),
      ));
    }));

  command.command('show')
    .description('show a trusted issuer')
    .argument('<issuer>', 'id or name')
    .action(action(async ({ db, out }, ref: string) => {
      const issuers = await import('../services/trusted-issuers.ts');
      out.print(await issuers.getIssuer(db, ref), show);
    }));

  command.command('update')
    .description('change a trusted issuer (every process applies it before this returns)')
    .argument('<issuer>', 'id or name')
    .option('--name <name>', 'new name')
    .option('--issuer <url>', 'a new `iss`')
    .addOption(new Option('--kind <kind>', 'what kind of platform').choices([...ISSUER_KINDS]))
    .option('--discovery', 'fetch its keys from its OpenID discovery document')
    .option('--jwks-uri <url>', 'fetch its keys from this https URL')
    .option('--jwks-file <file>', 'replace its keys with this JWK Set file')
    .option('--enable', 'accept its tokens again')
    .option('--disable', 'refuse its tokens at once')
    .action(action(async ({ db, out, audit, config }, ref: string, opts: KeyOptions & {
      name?: string; issuer?: string; kind?: issuers.IssuerInput['kind']; enable?: boolean; disable?: boolean;
    }) => {
      const issuers = await import('../services/trusted-issuers.ts');
      if (opts.enable && opts.disable) throw new Error('--enable and --disable contradict each other');
      const issuer = await issuers.updateIssuer(db, ref, {
        name: opts.name, issuer: opts.issuer, kind: opts.kind, ...keysOf(opts),
        enabled: opts.enable ? true : opts.disable ? false : undefined,
      }, rules(config), audit);
      out.print(issuer, (value) => `issuer updated\n${show(value)}`);
    }));

  command.command('delete')
    .description('stop trusting an issuer')
    .argument('<issuer>', 'id or name')
    .option('--force', 'also when clients are bound to it (they can no longer authenticate)')
    .action(action(async ({ db, out, audit }, ref: string, opts: { force?: boolean }) => {
      const issuers = await import('../services/trusted-issuers.ts');
      const issuer = await issuers.deleteIssuer(db, ref, { force: opts.force }, audit);
      out.print(issuer, (value) => `issuer ${value.name} deleted${value.clients.length ? ` (clients left without a way to authenticate: ${value.clients.join(' ')})` : ''}`);
    }));

  return command;
}
