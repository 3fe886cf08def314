// Self-registration of services (RFC 7591) with initial access tokens, and their management of
// their own registration (RFC 7592). The provider runs the protocol; this module decides and
// stores: the same rules as `clients create`, a hashed secret, and exactly the roles bound to the
// initial access token used.
import { auditAs, type AuditSink } from '../domain/audit-events.ts';
import { generateClientSecret, sha256Hex, randomId } from '../domain/crypto.ts';
import type { Db } from '../db/tables.ts';
import * as clientStore from '../store/clients.ts';
import { deletePayloadsByClientId } from '../store/oidc-payloads.ts';
import * as store from '../store/registration-tokens.ts';
import * as roleStore from '../store/roles.ts';
import { checkServiceClient } from './client-rules.ts';
import { insertNewClient, requireClient } from './clients.ts';
import { conflict, invalid, isUniqueViolation, notFound, ServiceError } from './errors.ts';
import { writeAndPropagate } from '../propagation/index.ts';

export const MAX_TOKEN_TTL_SECONDS = 90 * 86400;

export interface RegistrationTokenView {
  id: string;
  description: string | null;
  roles: string[];
  maxUses: number;
  uses: number;
  expiresAt: string;
  revokedAt: string | null;
  createdAt: string;
  /** usable, or why not */
  state: 'active' | 'used' | 'expired' | 'revoked';
}

async function toView(db: Db, row: store.RegistrationTokenRow, now = new Date()): Promise<RegistrationTokenView> {
  const state = row.revoked_at ? 'revoked' : row.expires_at <= now ? 'expired' : row.uses >= row.max_uses ? 'used' : 'active';
  return {
    id: row.id,
    description: row.description,
    roles: (await store.listRegistrationTokenRoles(db, row.id)).map((role) => role.name),
    maxUses: row.max_uses,
    uses: row.uses,
    expiresAt: row.expires_at.toISOString(),
    revokedAt: row.revoked_at?.toISOString() ?? null,
    createdAt: row.created_at.toISOString(),
    state,
  };
}

export interface CreateRegistrationTokenInput {
  /** Role ids or names a client registered with this token gets. */
  roles?: string[];
  maxUses?: number;
  ttlSeconds?: number;
  description?: string;
}

export interface RegistrationTokenWithValue { registrationToken: RegistrationTokenView; token: string }

export async function createRegistrationToken(
  db: Db,
  input: CreateRegistrationTokenInput,
  audit: AuditSink,
  now = new Date(),
): Promise<RegistrationTokenWithValue> {
  const maxUses = input.maxUses ?? 1;
  if (!Number.isInteger(maxUses) || maxUses < 1 || maxUses > 100_000) throw invalid('max uses must be between 1 and 100000', 'maxUses');
  const ttl = input.ttlSeconds ?? 3600;
  if (!Number.isInteger(ttl) || ttl < 60 || ttl > MAX_TOKEN_TTL_SECONDS) {
    throw invalid('the lifetime must be between 1 minute and 90 days', 'ttlSeconds');
  }
  if (input.description !== undefined && input.description.length > 1000) throw invalid('description is too long', 'description');
  // 256 bits from the CSPRNG, like a client secret; only its hash is stored.
  const token = generateClientSecret();
  const id = randomId('rt_');
  const expiresAt = new Date(now.getTime() + ttl * 1000);
  const view = await db.transaction().execute(async (trx) => {
    const roleIds: string[] = [];
    for (const ref of new Set(input.roles ?? [])) {
      const role = await roleStore.findRole(trx, ref);
      if (!role) throw notFound(`unknown role "${ref}"`);
      roleIds.push(role.id);
    }
    await store.insertRegistrationToken(trx, {
      id, tokenHash: sha256Hex(token), description: input.description ?? null, maxUses, expiresAt, roleIds,
    });
    return toView(trx, (await store.findRegistrationToken(trx, id))!, now);
  });
  audit.record({
    type: 'registration_token.created', target: { type: 'registration_token', id },
    details: { roles: view.roles, maxUses, expiresAt, description: view.description },
  });
  return { registrationToken: view, token };
}

export async function listRegistrationTokens(db: Db): Promise<RegistrationTokenView[]> {
  const now = new Date();
  return Promise.all((await store.listRegistrationTokens(db)).map((row) => toView(db, row, now)));
}

export async function getRegistrationToken(db: Db, id: string): Promise<RegistrationTokenView> {
  const row = await store.findRegistrationToken(db, id);
  if (!row) throw notFound(`unknown registration token "${id}"`);
  return toView(db, row);
}

/** Stops a token from registering anything more; clients it registered stay. */
export async function revokeRegistrationToken(
  db: Db,
  id: string,
  audit: AuditSink,
): Promise<RegistrationTokenView> {
  const row = await store.revokeRegistrationToken(db, id, new Date());
  if (!row) throw notFound(`unknown registration token "${id}"`);
  audit.record({ type: 'registration_token.revoked', target: { type: 'registration_token', id } });
  return toView(db, row);
}

// ---- for the provider (src/oidc/registration.ts), wired in app.ts

export interface RequestInfo { requestId?: string | null; sourceAddress?: string | null }

function checkRegisteredMetadata(clientId: string, metadata: Record<string, unknown>) {
  const name = metadata.client_name;
  if (name !== undefined && typeof name !== 'string') throw invalid('client_name must be a string', 'client_name');
  const grantTypes = metadata.grant_types as string[] | undefined;
  return checkServiceClient({
    // Names follow the CLI's rules; a service that gives none gets one from its client id.
    name: name ?? `registered-${clientId.slice(0, 10).replace(/^[^A-Za-z0-9]+/, '')}`,
    grantTypes,
    tokenEndpointAuthMethod: metadata.token_endpoint_auth_method as string | undefined,
  });
}

/** The registered client's secret stays hashed; the name and metadata follow the CLI's rules. */
export async function storeRegisteredClient(
  db: Db,
  audit: AuditSink,
  input: { clientId: string; metadata: Record<string, unknown>; initialAccessToken: string; request: RequestInfo },
): Promise<void> {
  const { clientId, metadata } = input;
  const client = checkRegisteredMetadata(clientId, metadata);
  const { name, grantTypes, authMethod } = client;
  const clientSecret = metadata.client_secret;
  if (typeof clientSecret !== 'string' || clientSecret.length < 32) throw invalid('a generated client secret is required');
  let tokenId = '';
  let roles: string[] = [];
  try {
    await writeAndPropagate(db, { kind: 'client', clientId }, async (trx) => {
      // RFC 7591 §3: the initial access token authorizes this one registration; one use is taken
      // in the same transaction that stores the client.
      const token = await store.consumeRegistrationToken(trx, sha256Hex(input.initialAccessToken), new Date());
      if (!token) throw new ServiceError('forbidden', 'the initial access token is expired, revoked or used up');
      tokenId = token.id;
      const bound = await store.listRegistrationTokenRoles(trx, token.id);
      roles = bound.map((role) => role.name);
      await insertNewClient(trx, clientId, client, { clientSecret, registeredBy: token.id, roleIds: bound.map((role) => role.id) });
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`a client named "${name}" already exists`);
    throw error;
  }
  auditAs(audit, { actor: { type: 'registration_token', id: tokenId }, ...input.request }).record({
    type: 'registration.created', target: { type: 'client', id: clientId },
    details: { name, grantTypes, roles, tokenEndpointAuthMethod: authMethod, registrationToken: tokenId },
  });
}

/** RFC 7592 §2.2: the client changes its own registration (never its roles or its secret). */
export async function updateRegisteredClient(
  db: Db,
  audit: AuditSink,
  input: { clientId: string; metadata: Record<string, unknown>; request: RequestInfo },
): Promise<void> {
  const { clientId, metadata } = input;
  const { name, grantTypes, authMethod } = checkRegisteredMetadata(clientId, metadata);
  try {
    await writeAndPropagate(db, { kind: 'client', clientId }, async (trx) => {
      const row = await requireClient(trx, clientId);
      await clientStore.updateClient(trx, clientId, {
        name,
        metadata: {
          ...row.metadata,
          client_name: name,
          grant_types: grantTypes,
          token_endpoint_auth_method: authMethod,
        },
      });
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`a client named "${name}" already exists`);
    throw error;
  }
  auditAs(audit, { actor: { type: 'client', id: clientId }, ...input.request }).record({
    type: 'registration.updated', target: { type: 'client', id: clientId },
    details: { name, grantTypes, tokenEndpointAuthMethod: authMethod },
  });
}

/** RFC 7592 §2.3: the client deletes itself; its stored tokens go with it. */
export async function deleteRegisteredClient(
  db: Db,
  audit: AuditSink,
  input: { clientId: string; request: RequestInfo },
): Promise<void> {
  const { clientId } = input;
  let name = '';
  await writeAndPropagate(db, { kind: 'client', clientId }, async (trx) => {
    name = (await requireClient(trx, clientId)).name;
    await clientStore.deleteClient(trx, clientId);
    await deletePayloadsByClientId(trx, clientId);
  });
  auditAs(audit, { actor: { type: 'client', id: clientId }, ...input.request }).record({
    type: 'registration.deleted', target: { type: 'client', id: clientId }, details: { name },
  });
}

/** Whether a presented initial access token may register a client now (no use is taken). */
export async function findUsableRegistrationToken(
  db: Db,
  value: string,
): Promise<{ id: string; createdAt: Date; expiresAt: Date } | undefined> {
  const row = await store.findUsableRegistrationToken(db, sha256Hex(value), new Date());
  return row && { id: row.id, createdAt: row.created_at, expiresAt: row.expires_at };
}
