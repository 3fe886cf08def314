// postern apis ...
import { Command, Option } from 'commander';
// Each command loads the service when it runs: help and usage errors load no database code.
import type * as apis from '../services/apis.ts';
import { ACCESS_TOKEN_ALGS } from '../domain/signing-keys.ts';
import { action, collect, words } from './context.ts';
import { fields, parseDuration, table } from './output.ts';

function show(api: apis.ApiView): string {
  return fields([
    ['id', api.id],
    ['identifier', api.identifier],
    ['name', api.name],
    ['scopes', api.scopes.join(' ') || '(none)'],
    ...Object.entries(api.scopeDescriptions).map(([scope, text]) => [`  ${scope}`, text] as [string, string]),
    ['token format', api.tokenFormat],
    ['signing alg', api.tokenFormat === 'jwt' ? api.signingAlg : '-'],
    ['token ttl', `${api.accessTokenTtl}s`],
    ['introspection client', api.introspectionClientId],
    ['require dpop', api.requireDpop ? 'yes' : 'no'],
    ['require mtls', api.requireMtls ? 'yes' : 'no'],
    ['owner', api.ownerClientId ?? '(none)'],
    ['built in', api.system ? 'yes' : 'no'],
  ]);
}

const ttl = (value: string) => parseDuration(value);

/** `--describe-scope "orders:read=See your orders"`, repeatable; an empty text (update) removes it. */
function scopeDescriptions(values: string[], allowRemoval: boolean): Record<string, string | null> | undefined {
  if (values.length === 0) return undefined;
  const result: Record<string, string | null> = {};
  for (const value of values) {
    const at = value.indexOf('=');
    if (at <= 0) throw new Error(`--describe-scope takes scope=text, got "${value}"`);
    const text = value.slice(at + 1).trim();
    if (!text && !allowRemoval) throw new Error(`--describe-scope ${value.slice(0, at)}= needs a text`);
    result[value.slice(0, at)] = text || null;
  }
  return result;
}

export function apisCommand(): Command {
  const command = new Command('apis').description('APIs (resource servers): the audience of tokens and the scopes they define');

  command.command('create')
    .description('register an API')
    .requiredOption('--identifier <uri>', 'resource indicator, and the `aud` of its tokens (e.g. https://orders.internal)')
    .option('--name <name>', 'a short name (defaults to the identifier)')
    .option('--scopes <scopes>', 'scopes it defines, space-separated (repeatable)', collect, [])
    .option('--describe-scope <scope=text>', 'what a scope allows, in plain words for the consent page (repeatable)', collect, [])
    .addOption(new Option('--token-format <format>', 'access token format').choices(['jwt', 'opaque']).default('jwt'))
    .addOption(new Option('--alg <alg>', 'JWT signing algorithm').choices([...ACCESS_TOKEN_ALGS]).default('ES256'))
    .option('--ttl <duration>', 'access token lifetime (e.g. 300, 5m)', ttl, 300)
    .option('--introspection-client <client>', 'a client (id or name) that may introspect every token for this API')
    .option('--require-dpop', 'token requests for it must carry a DPoP proof; its tokens are DPoP-bound (RFC 9449)')
    .option('--require-mtls', 'its tokens must be bound to the client\'s TLS certificate (RFC 8705)')
    .action(action(async ({ db, out, audit }, opts: {
      identifier: string; name?: string; scopes: string[]; tokenFormat: string; alg: string; ttl: number;
      introspectionClient?: string; requireDpop?: boolean; requireMtls?: boolean; describeScope: string[];
    }) => {
      const apis = await import('../services/apis.ts');
      const api = await apis.createApi(db, {
        identifier: opts.identifier,
        name: opts.name,
        scopes: words(opts.scopes),
        scopeDescriptions: scopeDescriptions(opts.describeScope, false) as Record<string, string> | undefined,
        tokenFormat: opts.tokenFormat,
        signingAlg: opts.alg,
        accessTokenTtl: opts.ttl,
        introspectionClient: opts.introspectionClient,
        requireDpop: opts.requireDpop,
        requireMtls: opts.requireMtls,
      }, audit);
      out.print(api, (value) => `API created\n${show(value)}`);
    }));

  command.command('list')
    .description('list APIs')
    .action(action(async ({ db, out }) => {
      const apis = await import('../services/apis.ts');
      out.print(await apis.listApis(db), (list) => table(
        ['IDENTIFIER', 'NAME', 'SCOPES', 'FORMAT', 'TTL'],
        list.map((api) => [api.identifier, api.name, api.scopes.join(' '), api.tokenFormat, `${api.accessTokenTtl}s`]),
      ));
    }));

  command.command('show')
    .description('show an API')
    .argument('<api>', 'id, identifier or name')
    .action(action(async ({ db, out }, ref: string) => {
      const apis = await import('../services/apis.ts');
      out.print(await apis.getApi(db, ref), show);
    }));

  command.command('update')
    .description('change an API')
    .argument('<api>', 'id, identifier or name')
    .option('--name <name>', 'new name')
    .option('--add-scopes <scopes>', 'scopes to define, space-separated (repeatable)', collect, [])
    .option('--remove-scopes <scopes>', 'scopes to remove, with their grants (repeatable)', collect, [])
    .option('--describe-scope <scope=text>', 'what a scope allows, for the consent page; "scope=" removes it (repeatable)', collect, [])
    .addOption(new Option('--token-format <format>', 'access token format').choices(['jwt', 'opaque']))
    .addOption(new Option('--alg <alg>', 'JWT signing algorithm').choices([...ACCESS_TOKEN_ALGS]))
    .option('--ttl <duration>', 'access token lifetime (e.g. 300, 5m)', ttl)
    .option('--introspection-client <client>', 'a client (id or name) that may introspect every token for this API')
    .option('--no-introspection-client', 'remove the introspection client')
    .option('--require-dpop', 'token requests for it must carry a DPoP proof')
    .option('--no-require-dpop', 'Bearer tokens are issued for it again')
    .option('--require-mtls', 'its tokens must be bound to the client\'s TLS certificate (RFC 8705)')
    .option('--no-require-mtls', 'its tokens need not be certificate-bound')
    .option('--owner <client>', 'the client (id or name) that serves this API: it may exchange tokens issued for it (RFC 8693)')
    .option('--no-owner', 'remove the owner')
    .action(action(async ({ db, out, audit }, ref: string, opts: {
      name?: string; addScopes: string[]; removeScopes: string[]; tokenFormat?: string; alg?: string; ttl?: number;
      introspectionClient?: string | false; requireDpop?: boolean; requireMtls?: boolean; describeScope: string[];
      owner?: string | false;
    }) => {
      const apis = await import('../services/apis.ts');
      const api = await apis.updateApi(db, ref, {
        name: opts.name,
        addScopes: words(opts.addScopes),
        removeScopes: words(opts.removeScopes),
        scopeDescriptions: scopeDescriptions(opts.describeScope, true),
        tokenFormat: opts.tokenFormat,
        signingAlg: opts.alg,
        accessTokenTtl: opts.ttl,
        introspectionClient: opts.introspectionClient === false ? null : opts.introspectionClient,
        requireDpop: opts.requireDpop,
        requireMtls: opts.requireMtls,
        owner: opts.owner === false ? null : opts.owner,
      }, audit);
      out.print(api, (value) => `API updated\n${show(value)}`);
    }));

  command.command('delete')
    .description('delete an API, its scopes and the grants of those scopes')
    .argument('<api>', 'id, identifier or name')
    .action(action(async ({ db, out, audit }, ref: string) => {
      const apis = await import('../services/apis.ts');
      const api = await apis.deleteApi(db, ref, audit);
      out.print(api, (value) => `API ${value.identifier} deleted`);
    }));

  return command;
}
