// Registers APIs, roles and clients through the same services the CLI uses.
import type { Kysely } from 'kysely';
import type { Tables } from '../../src/db/tables.ts';
import { createApi, type CreateApiInput } from '../../src/services/apis.ts';
import { createClient } from '../../src/services/clients.ts';
import { createRole, type ScopeGrant } from '../../src/services/roles.ts';
import { NO_AUDIT } from '../../src/domain/audit-events.ts';

let counter = 0;
export const unique = (prefix: string) => `${prefix}-${process.pid}-${++counter}`;

export async function api(db: Kysely<Tables>, input: Partial<CreateApiInput> & { scopes: string[] }) {
  return createApi(db, { identifier: `https://${unique('api')}.internal`, ...input }, NO_AUDIT);
}

export async function role(db: Kysely<Tables>, grants: ScopeGrant[]) {
  return createRole(db, { name: unique('role'), grants }, NO_AUDIT);
}

/** A client_credentials client with the given roles; returns its id and secret. */
export async function serviceClient(db: Kysely<Tables>, roles: string[] = []) {
  const { client, clientSecret } = await createClient(db, { name: unique('svc'), roles }, NO_AUDIT);
  return { id: client.clientId, secret: clientSecret!, name: client.name };
}
