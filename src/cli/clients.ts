// postern clients ...
import fs from 'node:fs';
import { Command, Option } from 'commander';
import { pemCertificates } from '../services/client-auth.ts';
import { AUTH_METHODS } from '../services/client-rules.ts';
// Each command loads the service when it runs: help and usage errors load no database code.
import type * as clients from '../services/clients.ts';
import { decodeCleanUtf8, isCleanJson } from '../domain/text.ts';
import { action, collect, words } from './context.ts';
import { fields, parseDuration, table } from './output.ts';

function show(client: clients.ClientView): string {
  return fields([
    ['client_id', client.clientId],
    ['name', client.name],
    ['enabled', client.enabled ? 'yes' : 'no'],
    ['grant types', client.grantTypes.join(' ')],
    ['auth method', client.public ? 'none (public client)' : client.tokenEndpointAuthMethod],
    ...(client.jwks && !client.certificates.length ? [['keys', client.jwks.keys.map(describeKey).join(', ')] as [string, string]] : []),
    ...(client.jwksUri ? [['jwks_uri', client.jwksUri] as [string, string]] : []),
    ...(client.redirectUris.length ? [['redirect URIs', client.redirectUris.join(' ')] as [string, string]] : []),
    ...(client.postLogoutRedirectUris.length ? [['logout URIs', client.postLogoutRedirectUris.join(' ')] as [string, string]] : []),
    ...(client.grantTypes.includes('authorization_code') ? [['first-party', client.firstParty ? 'yes (no consent screen)' : 'no'] as [string, string]] : []),
    ['networks', client.allowedNetworks.join(' ') || '(any)'],
    ...(client.tlsSubject ? [['certificate subject', `${client.tlsSubject.field} ${client.tlsSubject.value}`] as [string, string]] : []),
    ...(client.certificates.length ? [['certificates', client.certificates.map((c) => `${c.thumbprint} (${c.subject}, expires ${c.expiresAt})`).join('\n              ')] as [string, string]] : []),
    ['require dpop', client.requireDpop ? 'yes' : 'no'],
    ['require mtls', client.requireMtls ? 'yes (tokens bound to its certificate)' : 'no'],
    ['roles', client.roles.join(' ') || '(none)'],
    ...(client.ownsApis.length ? [['serves', client.ownsApis.join(' ')] as [string, string]] : []),
    ...(client.mayExchange.length ? [['may exchange', client.mayExchange.map((p) => `${p.api} ${p.scopes.join(' ')}`).join('\n              ')] as [string, string]] : []),
    ...(client.mayImpersonate ? [['may impersonate', 'yes (exchanged tokens carry no act)'] as [string, string]] : []),
    ...(client.federation ? [
      ['federated issuer', client.federation.issuer] as [string, string],
      ['federated subject', client.federation.subject] as [string, string],
      ['required claims', Object.entries(client.federation.claims).map(([k, v]) => `${k}=${v}`).join(' ') || '(none)'] as [string, string],
    ] : []),
    ...(!client.tokenEndpointAuthMethod.startsWith('client_secret') || client.public ? [] : [['secrets', client.secrets.map((s) => `${s.id} (created ${s.createdAt}${s.expiresAt ? `, expires ${s.expiresAt}` : ''})`).join('\n         ')] as [string, string]]),
  ]);
}

/** "https://payments.internal payments:charge" -> { api, scopes } */
function parseExchange(value: string): { api: string; scopes: string[] } {
  const [api, ...scopes] = value.trim().split(/\s+/);
  if (!api || scopes.length === 0) throw new Error(`--may-exchange takes "<api> <scope> [scope...]", got "${value}"`);
  return { api, scopes };
}

function describeKey(jwk: Record<string, unknown>): string {
  const type = [jwk.kty, jwk.crv, jwk.alg].filter(Boolean).join(' ');
  return jwk.kid ? `${String(jwk.kid)} (${type})` : type;
}

/** A file's text: UTF-8 without NUL bytes (what it holds is stored). */
function readTextFile(file: string): string {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const text = decodeCleanUtf8(bytes);
  if (text === undefined) throw new Error(`${file} holds a NUL byte or is not UTF-8 text`);
  return text;
}

/** A JWK Set from a file; the service checks what is in it. */
export function readJwksFile(file: string): unknown {
  const text = readTextFile(file);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${file} is not JSON (expected a JWK Set: {"keys": [...]})`);
  }
  if (!isCleanJson(parsed)) throw new Error(`${file} holds a NUL (\\u0000) or a lone surrogate in a string`);
  return parsed;
}

/** A file's certificates (PEM); the service checks them. */
function readCertificateFiles(files: string[]): string[] | undefined {
  if (files.length === 0) return undefined;
  return files.flatMap((file) => {
    const blocks = pemCertificates(readTextFile(file));
    if (!blocks.length) throw new Error(`${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    return blocks;
  });
}

const TLS_SUBJECT_OPTIONS = [
  ['tlsSubjectDn', 'subject_dn'], ['tlsSanDns', 'san_dns'], ['tlsSanIp', 'san_ip'], ['tlsSanEmail', 'san_email'], ['tlsSanUri', 'san_uri'],
] as const;
type TlsSubjectOptions = Partial<Record<(typeof TLS_SUBJECT_OPTIONS)[number][0], string>>;

/** The one --tls-subject-dn / --tls-san-* option given, if any. */
function tlsSubjectOf(opts: TlsSubjectOptions): clients.TlsSubject | undefined {
  const given = TLS_SUBJECT_OPTIONS.filter(([key]) => opts[key] !== undefined);
  if (given.length > 1) throw new Error('give one of --tls-subject-dn, --tls-san-dns, --tls-san-ip, --tls-san-email, --tls-san-uri (RFC 8705 §2.1.2)');
  const [entry] = given;
  return entry ? { field: entry[1], value: opts[entry[0]]! } : undefined;
}

/** The options that say how a client proves itself with a TLS certificate. */
function withCertificateOptions(command: Command, verb: 'create' | 'update'): Command {
  const replace = verb === 'update' ? 'replace: ' : '';
  return command
    .option('--tls-subject-dn <dn>', `tls_client_auth: ${replace}the subject DN its certificate carries, RFC 4514 (e.g. "CN=orders,O=Example")`)
    .option('--tls-san-dns <name>', `tls_client_auth: ${replace}a DNS name in its certificate's subjectAltName`)
    .option('--tls-san-ip <address>', `tls_client_auth: ${replace}an IP address in its certificate's subjectAltName`)
    .option('--tls-san-email <email>', `tls_client_auth: ${replace}an email address in its certificate's subjectAltName`)
    .option('--tls-san-uri <uri>', `tls_client_auth: ${replace}a URI in its certificate's subjectAltName (e.g. a SPIFFE ID)`)
    .option('--certificate-file <file>', `self_signed_tls_client_auth: ${replace}its certificate(s), PEM (repeatable)`, collect, [])
    .option('--require-mtls', 'bind its access tokens to its TLS certificate (RFC 8705; the default for certificate authentication)')
    .option('--no-require-mtls', 'issue it unbound tokens');
}

const NO_SECRET_NOTICE: Record<string, string> = {
  private_key_jwt: 'It authenticates with client assertions signed by its own keys (no secret).',
  tls_client_auth: 'It authenticates with a certificate from a CA of TLS_CLIENT_CA_FILE carrying that subject (no secret).',
  self_signed_tls_client_auth: 'It authenticates with one of these certificates (no secret).',
  federated_jwt: 'It authenticates with its platform\'s token as client assertion (no secret): docs/workload-identity.md.',
};

/** `--claim name=value` (repeatable) to the claims a federated client's token must carry. */
function claimsOf(values: string[]): Record<string, string> | undefined {
  if (!values.length) return undefined;
  const claims: Record<string, string> = {};
  for (const value of values) {
    const at = value.indexOf('=');
    if (at < 1) throw new Error(`--claim takes name=value, got "${value}"`);
    claims[value.slice(0, at)] = value.slice(at + 1);
  }
  return claims;
}

/** The federation options given, if any. */
function federationOf(opts: { federatedIssuer?: string; federatedSubject?: string; claim: string[] }): clients.FederationInput | undefined {
  if (opts.federatedIssuer === undefined && opts.federatedSubject === undefined && !opts.claim.length) return undefined;
  if (opts.federatedIssuer === undefined || opts.federatedSubject === undefined) {
    throw new Error('--federated-issuer and --federated-subject go together (--claim with them)');
  }
  return { issuer: opts.federatedIssuer, subject: opts.federatedSubject, claims: claimsOf(opts.claim) };
}

/** The options of a client that authenticates with its platform's token. */
function withFederationOptions(command: Command, verb: 'create' | 'update'): Command {
  const replace = verb === 'update' ? 'replace: ' : '';
  return command
    .option('--federated-issuer <issuer>', `${replace}a trusted issuer (postern issuers list) whose token authenticates it, instead of a secret`)
    .option('--federated-subject <sub>', `${replace}the token's sub, exactly (system:serviceaccount:shop:orders, spiffe://..., repo:org/repo:ref:...)`)
    .option('--claim <name=value>', `${replace}a claim the token must carry with exactly this value (repeatable)`, collect, []);
}

const SECRET_NOTICE = 'Store the secret now: it is shown only once and Postern keeps only a hash.';

export function clientsCommand(): Command {
  const command = new Command('clients').description('clients: services that get tokens with their own credentials');

  const create = command.command('create')
    .description('register a client; prints its client_id and a new secret once')
    .requiredOption('--name <name>', 'unique name')
    .option('--grant <grant>', 'grant type: client_credentials (default) or authorization_code (repeatable)', collect, [])
    .option('--role <role>', 'role to assign (repeatable)', collect, [])
    .addOption(new Option('--auth-method <method>', 'how it authenticates at the token endpoint (default: private_key_jwt with '
      + '--jwks-file or --jwks-uri, tls_client_auth with --tls-subject-dn or --tls-san-*, self_signed_tls_client_auth with '
      + '--certificate-file, else client_secret_basic)')
      .choices([...AUTH_METHODS]))
    .option('--jwks-file <file>', 'private_key_jwt: a JSON file with its public keys (a JWK Set)')
    .option('--jwks-uri <url>', 'private_key_jwt: the https URL of its JWK Set')
    .option('--allowed-network <cidr>', 'a network it may authenticate from, IPv4 or IPv6 (repeatable; default: any)', collect, [])
    .option('--require-dpop', 'its access tokens must be DPoP-bound (RFC 9449)')
    .option('--redirect-uri <uri>', 'where authorization codes may be sent (repeatable; authorization_code)', collect, [])
    .option('--post-logout-redirect-uri <uri>', 'where people may return after logging out (repeatable)', collect, [])
    .option('--public', 'a public app (SPA, native) that cannot keep a secret: no secret, PKCE only')
    .option('--first-party', 'an app of your own: people are not asked for consent')
    .option('--may-exchange <grant>', 'token exchange (RFC 8693): "<api> <scope> [scope...]" it may ask for on others\' behalf (repeatable); implies the grant type', collect, [])
    .option('--may-impersonate', 'its exchanged tokens carry no act claim naming it');
  withFederationOptions(withCertificateOptions(create, 'create'), 'create')
    .action(action(async ({ db, out, audit }, opts: TlsSubjectOptions & {
      federatedIssuer?: string; federatedSubject?: string; claim: string[];
      name: string; grant: string[]; role: string[]; authMethod?: string; jwksFile?: string; jwksUri?: string;
      allowedNetwork: string[]; requireDpop?: boolean; redirectUri: string[]; postLogoutRedirectUri: string[];
      public?: boolean; firstParty?: boolean; certificateFile: string[]; requireMtls?: boolean;
      mayExchange: string[]; mayImpersonate?: boolean;
    }) => {
      const clients = await import('../services/clients.ts');
      const result = await clients.createClient(db, {
        name: opts.name,
        grantTypes: words(opts.grant),
        roles: words(opts.role),
        tokenEndpointAuthMethod: opts.authMethod,
        jwks: opts.jwksFile === undefined ? undefined : readJwksFile(opts.jwksFile),
        jwksUri: opts.jwksUri,
        tlsSubject: tlsSubjectOf(opts),
        certificates: readCertificateFiles(opts.certificateFile),
        allowedNetworks: words(opts.allowedNetwork),
        requireDpop: opts.requireDpop,
        requireMtls: opts.requireMtls,
        redirectUris: opts.redirectUri,
        postLogoutRedirectUris: opts.postLogoutRedirectUri,
        public: opts.public,
        firstParty: opts.firstParty,
        federated: federationOf(opts),
        mayExchange: opts.mayExchange.length ? opts.mayExchange.map(parseExchange) : undefined,
        mayImpersonate: opts.mayImpersonate,
      }, audit);
      out.print(
        { ...result.client, clientSecret: result.clientSecret },
        () => result.clientSecret !== null
          ? `client created\n${show(result.client)}\nclient_secret: ${result.clientSecret}\n\n${SECRET_NOTICE}`
          : result.client.public ? `client created\n${show(result.client)}`
            : `client created\n${show(result.client)}\n\n${NO_SECRET_NOTICE[result.client.tokenEndpointAuthMethod] ?? ''}`,
      );
    }));

  const update = command.command('update')
    .description('replace a client\'s keys, certificates, networks, token binding or redirect URIs (every process applies it before this returns)')
    .argument('<client>', 'client id or name')
    .option('--name <name>', 'new name')
    .option('--jwks-file <file>', 'private_key_jwt: replace its public keys with this JWK Set')
    .option('--jwks-uri <url>', 'private_key_jwt: fetch its keys from this https URL instead')
    .option('--allowed-network <cidr>', 'replace its networks with these (repeatable)', collect, [])
    .option('--any-network', 'lift the network restriction')
    .option('--require-dpop', 'its access tokens must be DPoP-bound')
    .option('--no-require-dpop', 'its access tokens may be Bearer tokens')
    .option('--may-exchange <grant>', 'token exchange (RFC 8693): replace what it may ask for on others\' behalf with "<api> <scope> [scope...]" (repeatable); implies the grant type', collect, [])
    .option('--no-may-exchange', 'take every exchange permission away')
    .option('--may-impersonate', 'its exchanged tokens carry no act claim naming it')
    .option('--no-may-impersonate', 'its exchanged tokens name it in act (the default)')
    .option('--redirect-uri <uri>', 'authorization_code: replace where codes may be sent with these (repeatable)', collect, [])
    .option('--post-logout-redirect-uri <uri>', 'authorization_code: replace where people may return after logging out with these (repeatable)', collect, [])
    .option('--no-post-logout-redirect-uri', 'authorization_code: remove every post-logout redirect URI');
  withFederationOptions(withCertificateOptions(update, 'update'), 'update')
    .action(action(async ({ db, out, audit }, ref: string, opts: TlsSubjectOptions & {
      federatedIssuer?: string; federatedSubject?: string; claim: string[];
      name?: string; jwksFile?: string; jwksUri?: string; allowedNetwork: string[]; anyNetwork?: boolean; requireDpop?: boolean;
      certificateFile: string[]; requireMtls?: boolean; mayExchange: string[] | false; mayImpersonate?: boolean;
      redirectUri: string[]; postLogoutRedirectUri: string[] | false;
    }) => {
      const clients = await import('../services/clients.ts');
      if (opts.anyNetwork && opts.allowedNetwork.length) throw new Error('--any-network and --allowed-network contradict each other');
      const networks = words(opts.allowedNetwork);
      const client = await clients.updateClient(db, ref, {
        name: opts.name,
        jwks: opts.jwksFile === undefined ? undefined : readJwksFile(opts.jwksFile),
        jwksUri: opts.jwksUri,
        tlsSubject: tlsSubjectOf(opts),
        certificates: readCertificateFiles(opts.certificateFile),
        allowedNetworks: opts.anyNetwork ? [] : networks.length ? networks : undefined,
        requireDpop: opts.requireDpop,
        requireMtls: opts.requireMtls,
        mayExchange: opts.mayExchange === false ? [] : opts.mayExchange.length ? opts.mayExchange.map(parseExchange) : undefined,
        mayImpersonate: opts.mayImpersonate,
        federated: federationOf(opts),
        redirectUris: opts.redirectUri.length ? opts.redirectUri : undefined,
        postLogoutRedirectUris: opts.postLogoutRedirectUri === false ? [] : opts.postLogoutRedirectUri.length ? opts.postLogoutRedirectUri : undefined,
      }, audit);
      out.print(client, (value) => `client updated\n${show(value)}`);
    }));

  command.command('list')
    .description('list clients')
    .action(action(async ({ db, out }) => {
      const clients = await import('../services/clients.ts');
      out.print(await clients.listClients(db), (list) => table(
        ['CLIENT_ID', 'NAME', 'ENABLED', 'GRANTS', 'ROLES'],
        list.map((c) => [c.clientId, c.name, c.enabled ? 'yes' : 'no', c.grantTypes.join(' '), c.roles.join(' ')]),
      ));
    }));

  command.command('show')
    .description('show a client')
    .argument('<client>', 'client id or name')
    .action(action(async ({ db, out }, ref: string) => {
      const clients = await import('../services/clients.ts');
      out.print(await clients.getClient(db, ref), show);
    }));

  for (const [name, enabled] of [['enable', true], ['disable', false]] as const) {
    command.command(name)
      .description(enabled ? 'let a disabled client get tokens again' : 'refuse the client at once (its tokens stop introspecting as active)')
      .argument('<client>', 'client id or name')
      .action(action(async ({ db, out, audit }, ref: string) => {
        const clients = await import('../services/clients.ts');
        out.print(await clients.setClientEnabled(db, ref, enabled, audit), (c) => `client ${c.name} ${name}d`);
      }));
  }

  command.command('delete')
    .description('delete a client, its secrets and role assignments')
    .argument('<client>', 'client id or name')
    .action(action(async ({ db, out, audit }, ref: string) => {
      const clients = await import('../services/clients.ts');
      out.print(await clients.deleteClient(db, ref, audit), (c) => `client ${c.name} deleted`);
    }));

  command.command('rotate-secret')
    .description('issue a new secret; the old ones keep working for --keep-old-for (default: they stop now)')
    .argument('<client>', 'client id or name')
    .option('--keep-old-for <duration>', 'overlap during which the old secrets still work (e.g. 24h)', parseDuration, 0)
    .action(action(async ({ db, out, audit }, ref: string, opts: { keepOldFor: number }) => {
      const clients = await import('../services/clients.ts');
      const result = await clients.rotateClientSecret(db, ref, opts.keepOldFor, audit);
      out.print(
        { ...result.client, clientSecret: result.clientSecret, oldSecretsExpireAt: result.oldSecretsExpireAt },
        () => `secret rotated for ${result.client.name}\nclient_secret: ${result.clientSecret}\n`
          + `old secrets stop working at ${result.oldSecretsExpireAt}\n\n${SECRET_NOTICE}`,
      );
    }));

  return command;
}
