// Use-cases for clients: services that authenticate with a server-generated secret, or with a
// key pair of their own (private_key_jwt), optionally only from given networks; and web or native
// apps that sign people in (authorization code + PKCE). What a client may be is client-rules.ts;
// how it is shown, client-view.ts; its credentials' rules, client-auth.ts.
import type { AuditSink } from '../domain/audit-events.ts';
import type { TlsSubject } from '../domain/certificates.ts';
import { SECRET_AUTH_METHODS } from '../domain/client-keys.ts';
import { generateClientSecret, randomId, sha256Hex } from '../domain/crypto.ts';
import { CONSOLE_CLIENT_ID } from '../domain/postern-api.ts';
import type { Db } from '../db/tables.ts';
import { writeAndPropagate, type Change } from '../propagation/index.ts';
import * as clients from '../store/clients.ts';
import { deletePayloadsByClientId } from '../store/oidc-payloads.ts';
import * as roles from '../store/roles.ts';
import { checkNetworks, credentialMetadata, credentialsOf, CREDENTIAL_PROPERTIES, type ClientCredentialsInput } from './client-auth.ts';
import { AUTH_METHODS, checkNewClient, SUPPORTED_GRANTS, type CreateClientInput, type NewClient } from './client-rules.ts';
import { PUBLIC_AUTH_METHOD, replaceRedirectUris } from './client-sign-in.ts';
import { cutOffClientTokens, type ClientTokensCutOff } from './client-tokens.ts';
import { toView, type ClientView, type StoredMetadata } from './client-view.ts';
import { conflict, invalid, isUniqueViolation, notFound } from './errors.ts';
import { applyExchangeSettings, type ExchangeSettings } from './exchange-permissions.ts';
import { decodeCursor, encodeCursor, pageLimit, type Page } from './paging.ts';
import { changedFields, checkName, checkOneBinding } from './validation.ts';
import { FEDERATED_AUTH_METHOD } from '../domain/trusted-issuers.ts';
import { bindFederation, type FederationInput } from './trusted-issuers.ts';

export { AUTH_METHODS, SUPPORTED_GRANTS };
export type { ClientCredentialsInput, ClientView, CreateClientInput, FederationInput, TlsSubject };

/** Every process caches clients (oidc/directory.ts): a change to one is published with the write. */
const clientChanged = (client: { clientId: string }): Change => ({ kind: 'client', clientId: client.clientId });

export async function requireClient(db: Db, ref: string): Promise<clients.ClientRow> {
  const client = (await clients.findClientById(db, ref)) ?? (await clients.findClientByName(db, ref));
  if (!client) throw notFound(`unknown client "${ref}"`);
  return client;
}

export interface ClientWithSecret { client: ClientView; clientSecret: string }
/** `clientSecret` is null for a client that authenticates with its own keys. */
export interface CreatedClient { client: ClientView; clientSecret: string | null }

/**
 * The one way a client is stored, inside the caller's transaction (which publishes its change):
 * its row, the hash of its secret when it has one, and its roles. For operators' clients
 * (createClient) and self-registered ones (registration.ts) alike.
 */
export async function insertNewClient(
  trx: Db,
  clientId: string,
  client: NewClient,
  extra: { clientSecret: string | null; roleIds: readonly string[]; registeredBy?: string },
): Promise<ClientView> {
  const row = await clients.insertClient(trx, {
    clientId,
    name: client.name,
    registeredBy: extra.registeredBy,
    metadata: { client_id: clientId, client_name: client.name, ...client.metadata },
    allowedNetworks: client.allowedNetworks,
  });
  if (extra.clientSecret !== null) {
    await clients.insertClientSecret(trx, { id: randomId('sec_'), clientId, secretHash: sha256Hex(extra.clientSecret) });
  }
  for (const roleId of extra.roleIds) await roles.insertClientRole(trx, clientId, roleId);
  return toView(trx, row);
}

/** Role ids by id or name; unknown ones are refused. */
async function resolveRoles(trx: Db, refs: readonly string[]): Promise<string[]> {
  const ids: string[] = [];
  for (const ref of refs) {
    const role = await roles.findRole(trx, ref);
    if (!role) throw notFound(`unknown role "${ref}"`);
    ids.push(role.id);
  }
  return ids;
}

/** A client's exchange settings may be given at its creation as at any update. */
export async function createClient(db: Db, input: CreateClientInput & ExchangeSettings, audit: AuditSink): Promise<CreatedClient> {
  const checked = checkNewClient(input);
  const { name, grantTypes, authMethod } = checked;
  const clientId = randomId();
  const clientSecret = checked.usesSecret ? generateClientSecret() : null;
  try {
    const client = await writeAndPropagate(db, { kind: 'client', clientId }, async (trx) => {
      const created = await insertNewClient(trx, clientId, checked, { clientSecret, roleIds: await resolveRoles(trx, input.roles ?? []) });
      const exchange = input.mayExchange !== undefined || input.mayImpersonate !== undefined;
      if (input.federated === undefined && !exchange) return created;
      if (input.federated !== undefined) await bindFederation(trx, clientId, input.federated);
      await applyExchangeSettings(trx, clientId, input);
      return toView(trx, (await clients.findClientById(trx, clientId))!);
    });
    audit.record({
      type: 'client.created', target: { type: 'client', id: clientId },
      details: {
        name, grantTypes, roles: client.roles, tokenEndpointAuthMethod: authMethod,
        ...(client.mayExchange.length ? { mayExchange: client.mayExchange } : {}), ...(client.mayImpersonate ? { mayImpersonate: true } : {}),
      },
    });
    return { client, clientSecret };
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`a client named "${name}" already exists`);
    throw error;
  }
}

export async function listClients(db: Db): Promise<ClientView[]> {
  const rows = await clients.listClients(db);
  return Promise.all(rows.map((row) => toView(db, row)));
}

export async function getClient(db: Db, ref: string): Promise<ClientView> {
  return toView(db, await requireClient(db, ref));
}

export type ClientPage = Page<ClientView>;

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

/** A page of clients in name order, filtered; the cursor is the last name of the page. */
export async function listClientsPage(db: Db, query: ListClientsQuery = {}): Promise<ClientPage> {
  const limit = pageLimit(query.limit);
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

/** The credential fields replace the client's (for its own auth method). */
export interface UpdateClientInput extends ClientCredentialsInput, ExchangeSettings {
  name?: string;
  enabled?: boolean;
  /** Replaces the list; an empty list lifts the restriction. */
  allowedNetworks?: string[];
  requireDpop?: boolean;
  requireMtls?: boolean;
  /** federated_jwt clients: a new issuer, subject or claims (replacing the binding). */
  federated?: FederationInput;
  /** Sign-in apps (authorization_code): replaces where codes may be sent (at least one), checked as at creation. */
  redirectUris?: string[];
  /** Sign-in apps: replaces where people may return after logging out; an empty list removes them. */
  postLogoutRedirectUris?: string[];
}

/**
 * Renames, enables or disables a client, replaces its keys, networks or redirect URIs; every
 * change holds at once everywhere (a disabled client is refused at once). Disabling revokes every
 * token the client holds, as revoke-tokens does: enabling it again does not bring them back, so
 * that "disable, rotate the secret, enable" leaves nothing a thief could still use.
 */
export async function updateClient(
  db: Db,
  ref: string,
  input: UpdateClientInput,
  audit: AuditSink,
): Promise<ClientView> {
  const name = input.name === undefined ? undefined : checkName(input.name);
  const allowedNetworks = input.allowedNetworks === undefined ? undefined : checkNetworks(input.allowedNetworks);
  let cutOff: ClientTokensCutOff | undefined;
  try {
    const updated = await writeAndPropagate(db, clientChanged, async (trx) => {
      const client = await requireClient(trx, ref);
      let metadata: StoredMetadata & Record<string, unknown> | undefined;
      const given = credentialsOf(input);
      if (Object.values(given).some((value) => value !== undefined)) {
        metadata = { ...client.metadata };
        const method = String(metadata.token_endpoint_auth_method ?? 'client_secret_basic');
        for (const property of CREDENTIAL_PROPERTIES) delete metadata[property];
        Object.assign(metadata, credentialMetadata(method, given));
      }
      if (input.requireDpop !== undefined) {
        metadata ??= { ...client.metadata };
        if (input.requireDpop) metadata.dpop_bound_access_tokens = true;
        else delete metadata.dpop_bound_access_tokens;
      }
      if (input.requireMtls !== undefined) {
        metadata ??= { ...client.metadata };
        if (input.requireMtls) metadata.tls_client_certificate_bound_access_tokens = true;
        else delete metadata.tls_client_certificate_bound_access_tokens;
      }
      if (input.redirectUris !== undefined || input.postLogoutRedirectUris !== undefined) {
        // Each server writes the console's own at start, from where it serves the console.
        if (client.client_id === CONSOLE_CLIENT_ID) {
          throw invalid('the console\'s app takes its redirect URIs from where the console is served (CONSOLE_URL)', 'redirectUris');
        }
        metadata ??= { ...client.metadata };
        replaceRedirectUris(metadata, input);
      }
      if (input.federated !== undefined) {
        if ((client.metadata as StoredMetadata).token_endpoint_auth_method !== FEDERATED_AUTH_METHOD) {
          throw invalid(`client ${client.name} does not authenticate with ${FEDERATED_AUTH_METHOD}`, 'federatedIssuer');
        }
        await bindFederation(trx, client.client_id, input.federated);
      }
      if (metadata) checkOneBinding(metadata.dpop_bound_access_tokens === true, metadata.tls_client_certificate_bound_access_tokens === true);
      await applyExchangeSettings(trx, client.client_id, input);
      const row = await clients.updateClient(trx, client.client_id, { name, enabled: input.enabled, metadata, allowedNetworks });
      if (input.enabled === false) cutOff = await cutOffClientTokens(trx, client.client_id, new Date());
      return toView(trx, row ?? client);
    });
    audit.record({
      type: 'client.updated', target: { type: 'client', id: updated.clientId },
      details: {
        // An empty list of post-logout redirect URIs removes them: a change to name too.
        name: updated.name, fields: [...changedFields(input), ...(input.postLogoutRedirectUris?.length === 0 ? ['postLogoutRedirectUris'] : [])],
        enabled: updated.enabled,
        ...(cutOff ? { revokedBefore: cutOff.revokedBefore, deletedArtifacts: cutOff.deletedArtifacts } : {}),
      },
    });
    return updated;
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`a client named "${name}" already exists`);
    throw error;
  }
}

export async function setClientEnabled(
  db: Db,
  ref: string,
  enabled: boolean,
  audit: AuditSink,
): Promise<ClientView> {
  return updateClient(db, ref, { enabled }, audit);
}

export async function deleteClient(db: Db, ref: string, audit: AuditSink): Promise<ClientView> {
  const view = await writeAndPropagate(db, clientChanged, async (trx) => {
    const client = await requireClient(trx, ref);
    // Created by a migration and never again: without it no one could sign in to the console.
    if (client.client_id === CONSOLE_CLIENT_ID) {
      throw conflict('the console\'s app cannot be deleted: the console signs people in with it (disable it to close the console)');
    }
    const found = await toView(trx, client);
    await clients.deleteClient(trx, client.client_id);
    // Its stored tokens, and the registration access token of a self-registered client, go too.
    await deletePayloadsByClientId(trx, client.client_id);
    return found;
  });
  audit.record({ type: 'client.deleted', target: { type: 'client', id: view.clientId }, details: { name: view.name } });
  return view;
}

/**
 * Adds a new secret. The client's other secrets keep working for `keepOldForSeconds` (0: they
 * stop at once), so that a fleet can roll the new one out without downtime.
 */
export async function rotateClientSecret(
  db: Db,
  ref: string,
  keepOldForSeconds: number,
  audit: AuditSink,
  now = new Date(),
): Promise<ClientWithSecret & { oldSecretsExpireAt: string }> {
  if (!Number.isInteger(keepOldForSeconds) || keepOldForSeconds < 0 || keepOldForSeconds > 90 * 86400) {
    throw invalid('the overlap must be between 0 seconds and 90 days', 'keepOldFor');
  }
  const clientSecret = generateClientSecret();
  const expiresAt = new Date(now.getTime() + keepOldForSeconds * 1000);
  const client = await writeAndPropagate(db, clientChanged, async (trx) => {
    const row = await requireClient(trx, ref);
    const method = (row.metadata as StoredMetadata).token_endpoint_auth_method ?? 'client_secret_basic';
    if (method === PUBLIC_AUTH_METHOD) throw invalid(`client ${row.name} is public: it has no secret to rotate`, 'client');
    if (!SECRET_AUTH_METHODS.includes(method)) {
      throw invalid(`client ${row.name} authenticates with ${method} and has no secret; update its keys instead`, 'client');
    }
    const id = randomId('sec_');
    await clients.insertClientSecret(trx, { id, clientId: row.client_id, secretHash: sha256Hex(clientSecret) });
    await clients.expireClientSecrets(trx, row.client_id, expiresAt, id);
    return toView(trx, row, now);
  });
  audit.record({
    type: 'client.secret_rotated', target: { type: 'client', id: client.clientId },
    details: { name: client.name, keepOldForSeconds, oldSecretsExpireAt: expiresAt },
  });
  return { client, clientSecret, oldSecretsExpireAt: expiresAt.toISOString() };
}
