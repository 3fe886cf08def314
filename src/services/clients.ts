// Use-cases for clients: services that authenticate with a server-generated secret, and web or
// native apps that sign people in (authorization code + PKCE).
import type { Kysely } from 'kysely';
import { generateClientSecret, hashClientSecret, randomId } from '../crypto.ts';
import type { Tables } from '../db/tables.ts';
import { publishChange } from '../store/changes.ts';
import * as clients from '../store/clients.ts';
import * as roles from '../store/roles.ts';
import type { Db } from '../store/types.ts';
import { writeAndPropagate } from './propagation.ts';
import { conflict, invalid, isUniqueViolation, notFound } from './errors.ts';
import { checkName } from './validation.ts';

export const SUPPORTED_GRANTS = ['client_credentials', 'authorization_code', 'refresh_token'] as const;
export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post'] as const;
/** Public clients (SPAs, native apps) cannot keep a secret: PKCE alone protects their codes. */
const PUBLIC_AUTH_METHOD = 'none';

export interface ClientView {
  clientId: string;
  name: string;
  enabled: boolean;
  grantTypes: string[];
  tokenEndpointAuthMethod: string;
  /** Sign-in apps: where codes may be sent, and where people may go after logging out. */
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  /** A public client has no secret (token endpoint auth method "none"). */
  public: boolean;
  /** First-party apps skip the consent screen. */
  firstParty: boolean;
  roles: string[];
  secrets: { id: string; createdAt: string; expiresAt: string | null }[];
  createdAt: string;
}

export async function requireClient(db: Db, ref: string): Promise<clients.ClientRow> {
  const client = (await clients.findClientById(db, ref)) ?? (await clients.findClientByName(db, ref));
  if (!client) throw notFound(`unknown client "${ref}"`);
  return client;
}

async function toView(db: Db, row: clients.ClientRow, now = new Date()): Promise<ClientView> {
  const metadata = row.metadata as {
    grant_types?: string[]; token_endpoint_auth_method?: string; redirect_uris?: string[];
    post_logout_redirect_uris?: string[]; first_party?: boolean;
  };
  const secrets = await clients.listClientSecrets(db, row.client_id);
  return {
    clientId: row.client_id,
    name: row.name,
    enabled: row.enabled,
    grantTypes: metadata.grant_types ?? [],
    tokenEndpointAuthMethod: metadata.token_endpoint_auth_method ?? 'client_secret_basic',
    redirectUris: metadata.redirect_uris ?? [],
    postLogoutRedirectUris: metadata.post_logout_redirect_uris ?? [],
    public: metadata.token_endpoint_auth_method === PUBLIC_AUTH_METHOD,
    firstParty: metadata.first_party === true,
    roles: (await roles.listRolesOfClient(db, row.client_id)).map((role) => role.name),
    secrets: secrets
      .filter((secret) => !secret.expires_at || secret.expires_at > now)
      .map((secret) => ({
        id: secret.id,
        createdAt: secret.created_at.toISOString(),
        expiresAt: secret.expires_at?.toISOString() ?? null,
      })),
    createdAt: row.created_at.toISOString(),
  };
}

export interface CreateClientInput {
  name: string;
  grantTypes?: string[];
  roles?: string[];
  tokenEndpointAuthMethod?: string;
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  public?: boolean;
  firstParty?: boolean;
}

/** `clientSecret` is absent for public clients. */
export interface ClientWithSecret { client: ClientView; clientSecret?: string }

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Redirect URIs are compared exactly (RFC 6749 §3.1.2, OAuth 2.0 Security BCP §4.1.3): absolute,
 * no fragment, https, or http on a loopback address; native public apps may also use a
 * private-use scheme in reverse-domain form (RFC 8252 §7.1).
 */
export function checkRedirectUris(values: readonly string[], publicClient: boolean, field: string): string[] {
  const uris = [...new Set(values)];
  for (const value of uris) {
    const url = URL.parse(value);
    const problem = !url || value.includes('#') || /\s/.test(value) ? 'must be an absolute URI without a fragment'
      : url.protocol === 'https:' ? undefined
        : url.protocol === 'http:' ? (LOOPBACK_HOSTS.has(url.hostname) ? undefined : 'must use https (http only on a loopback address)')
          : publicClient && /^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+:$/i.test(url.protocol) ? undefined
            : 'must use https (or, for a public native app, a private-use scheme like com.example.app:/callback)';
    if (problem) throw invalid(`redirect URI "${value}" ${problem}`, field);
  }
  return uris;
}

function checkGrantTypes(input: CreateClientInput): string[] {
  const grants = new Set(input.grantTypes?.length ? input.grantTypes : ['client_credentials']);
  for (const grant of grants) {
    if (!(SUPPORTED_GRANTS as readonly string[]).includes(grant)) {
      throw invalid(`unsupported grant type "${grant}" (supported: ${SUPPORTED_GRANTS.join(', ')})`, 'grantTypes');
    }
  }
  // Sign-in apps get refresh tokens (when the person grants offline_access) without asking twice.
  if (grants.has('authorization_code')) grants.add('refresh_token');
  if (grants.has('refresh_token') && !grants.has('authorization_code')) {
    throw invalid('the refresh_token grant needs authorization_code', 'grantTypes');
  }
  if (input.public && grants.has('client_credentials')) {
    throw invalid('a public client has no credentials, so it cannot use client_credentials', 'grantTypes');
  }
  return [...grants];
}

export async function createClient(
  db: Kysely<Tables>, input: CreateClientInput & { public?: false },
): Promise<{ client: ClientView; clientSecret: string }>;
export async function createClient(db: Kysely<Tables>, input: CreateClientInput): Promise<ClientWithSecret>;
export async function createClient(db: Kysely<Tables>, input: CreateClientInput): Promise<ClientWithSecret> {
  const name = checkName(input.name);
  const grantTypes = checkGrantTypes(input);
  const signIn = grantTypes.includes('authorization_code');
  const publicClient = input.public === true;
  const redirectUris = checkRedirectUris(input.redirectUris ?? [], publicClient, 'redirectUris');
  const postLogoutRedirectUris = checkRedirectUris(input.postLogoutRedirectUris ?? [], publicClient, 'postLogoutRedirectUris');
  if (signIn && redirectUris.length === 0) throw invalid('an authorization_code client needs at least one redirect URI', 'redirectUris');
  if (!signIn && (redirectUris.length || postLogoutRedirectUris.length || input.firstParty)) {
    throw invalid('redirect URIs and first-party apply only to authorization_code clients', 'redirectUris');
  }
  let authMethod = input.tokenEndpointAuthMethod ?? 'client_secret_basic';
  if (publicClient) {
    if (input.tokenEndpointAuthMethod !== undefined) throw invalid('a public client has no token endpoint auth method', 'tokenEndpointAuthMethod');
    authMethod = PUBLIC_AUTH_METHOD;
  } else if (!(AUTH_METHODS as readonly string[]).includes(authMethod)) {
    throw invalid(`token endpoint auth method must be one of ${AUTH_METHODS.join(', ')}`, 'tokenEndpointAuthMethod');
  }
  const clientId = randomId();
  const clientSecret = publicClient ? undefined : generateClientSecret();
  try {
    const client = await writeAndPropagate(db, async (trx) => {
      const roleRows = [];
      for (const ref of input.roles ?? []) {
        const role = await roles.findRole(trx, ref);
        if (!role) throw notFound(`unknown role "${ref}"`);
        roleRows.push(role);
      }
      const row = await clients.insertClient(trx, {
        clientId,
        name,
        metadata: {
          client_id: clientId,
          client_name: name,
          grant_types: grantTypes,
          response_types: signIn ? ['code'] : [],
          redirect_uris: redirectUris,
          ...(postLogoutRedirectUris.length ? { post_logout_redirect_uris: postLogoutRedirectUris } : {}),
          token_endpoint_auth_method: authMethod,
          ...(input.firstParty ? { first_party: true } : {}),
        },
      });
      if (clientSecret) {
        await clients.insertClientSecret(trx, {
          id: randomId('sec_'), clientId, secretHash: hashClientSecret(clientSecret),
        });
      }
      for (const role of roleRows) await roles.insertClientRole(trx, clientId, role.id);
      await publishChange(trx, { kind: 'client', clientId });
      return toView(trx, row);
    });
    return { client, clientSecret };
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`a client named "${name}" already exists`);
    throw error;
  }
}

export async function listClients(db: Kysely<Tables>): Promise<ClientView[]> {
  const rows = await clients.listClients(db);
  return Promise.all(rows.map((row) => toView(db, row)));
}

export async function getClient(db: Kysely<Tables>, ref: string): Promise<ClientView> {
  return toView(db, await requireClient(db, ref));
}

export interface ClientPage { items: ClientView[]; nextCursor: string | null }

export interface ListClientsQuery {
  /** 1 to 200; 50 by default. */
  limit?: number;
  /** From a previous page's nextCursor. */
  cursor?: string;
  namePrefix?: string;
  enabled?: boolean;
  /** Only clients holding this role (id or name). */
  role?: string;
}

// The cursor is the last name of the page, encoded so that callers treat it as opaque.
const encodeCursor = (name: string) => Buffer.from(name, 'utf8').toString('base64url');
function decodeCursor(cursor: string): string {
  const name = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!cursor || encodeCursor(name) !== cursor) throw invalid('cursor is not one this server returned', 'cursor');
  return name;
}

/** A page of clients in name order, filtered. */
export async function listClientsPage(db: Kysely<Tables>, query: ListClientsQuery = {}): Promise<ClientPage> {
  const limit = query.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw invalid('limit must be between 1 and 200', 'limit');
  let roleId: string | undefined;
  if (query.role !== undefined) {
    const role = await roles.findRole(db, query.role);
    if (!role) throw invalid(`unknown role "${query.role}"`, 'role');
    roleId = role.id;
  }
  const { rows, more } = await clients.listClientsPage(db, {
    limit,
    afterName: query.cursor === undefined ? undefined : decodeCursor(query.cursor),
    namePrefix: query.namePrefix,
    enabled: query.enabled,
    roleId,
  });
  const items = await Promise.all(rows.map((row) => toView(db, row)));
  return { items, nextCursor: more && rows.length ? encodeCursor(rows.at(-1)!.name) : null };
}

/** Renames, enables or disables a client; a disabled client is refused at once everywhere. */
export async function updateClient(
  db: Kysely<Tables>,
  ref: string,
  input: { name?: string; enabled?: boolean },
): Promise<ClientView> {
  const name = input.name === undefined ? undefined : checkName(input.name);
  try {
    return await writeAndPropagate(db, async (trx) => {
      const client = await requireClient(trx, ref);
      const row = await clients.updateClient(trx, client.client_id, { name, enabled: input.enabled });
      await publishChange(trx, { kind: 'client', clientId: client.client_id });
      return toView(trx, row ?? client);
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`a client named "${name}" already exists`);
    throw error;
  }
}

export async function setClientEnabled(db: Kysely<Tables>, ref: string, enabled: boolean): Promise<ClientView> {
  return updateClient(db, ref, { enabled });
}

export async function deleteClient(db: Kysely<Tables>, ref: string): Promise<ClientView> {
  return writeAndPropagate(db, async (trx) => {
    const client = await requireClient(trx, ref);
    const view = await toView(trx, client);
    await clients.deleteClient(trx, client.client_id);
    await publishChange(trx, { kind: 'client', clientId: client.client_id });
    return view;
  });
}

/**
 * Adds a new secret. The client's other secrets keep working for `keepOldForSeconds` (0: they
 * stop at once), so that a fleet can roll the new one out without downtime.
 */
export async function rotateClientSecret(
  db: Kysely<Tables>,
  ref: string,
  keepOldForSeconds = 0,
  now = new Date(),
): Promise<{ client: ClientView; clientSecret: string; oldSecretsExpireAt: string }> {
  if (!Number.isInteger(keepOldForSeconds) || keepOldForSeconds < 0 || keepOldForSeconds > 90 * 86400) {
    throw invalid('the overlap must be between 0 seconds and 90 days', 'keepOldFor');
  }
  const clientSecret = generateClientSecret();
  const expiresAt = new Date(now.getTime() + keepOldForSeconds * 1000);
  const client = await writeAndPropagate(db, async (trx) => {
    const row = await requireClient(trx, ref);
    if ((row.metadata as { token_endpoint_auth_method?: string }).token_endpoint_auth_method === PUBLIC_AUTH_METHOD) {
      throw invalid(`client "${row.name}" is public: it has no secret to rotate`, 'client');
    }
    const id = randomId('sec_');
    await clients.insertClientSecret(trx, { id, clientId: row.client_id, secretHash: hashClientSecret(clientSecret) });
    await clients.expireClientSecrets(trx, row.client_id, expiresAt, id);
    await publishChange(trx, { kind: 'client', clientId: row.client_id });
    return toView(trx, row, now);
  });
  return { client, clientSecret, oldSecretsExpireAt: expiresAt.toISOString() };
}
