// A world for token exchange (RFC 8693): a person signed in to a web app whose token is for the
// `front` API; services that serve the APIs and may exchange on others' behalf.
import type { Kysely } from 'kysely';
import type { Tables } from '../../src/db/tables.ts';
import { NO_AUDIT } from '../../src/domain/audit-events.ts';
import { updateApi } from '../../src/services/apis.ts';
import { updateClient } from '../../src/services/clients.ts';
import { assignRoleToUser } from '../../src/services/roles.ts';
import { api, role, serviceClient } from './fixtures.ts';
import { postForm } from './server.ts';
import { exchangeCode, signIn, signInWorld } from './sign-in.ts';

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

export async function exchangeWorld(db: Kysely<Tables>) {
  const world = await signInWorld(db);
  const payments = await api(db, { scopes: ['payments:charge', 'payments:refund'], accessTokenTtl: 3600 });
  const ledger = await api(db, { scopes: ['ledger:read', 'ledger:write'], tokenFormat: 'opaque' });
  const archive = await api(db, { scopes: ['archive:write'] });
  // The person may charge (not refund), read the ledger and write the archive.
  const customer = await role(db, [
    { api: payments.identifier, scopes: ['payments:charge'] },
    { api: ledger.identifier, scopes: ['ledger:read'] },
    { api: archive.identifier, scopes: ['archive:write'] },
  ]);
  await assignRoleToUser(db, customer.name, world.username, NO_AUDIT);
  const front = await serviceClient(db);
  const paymentsService = await serviceClient(db);
  const ledgerService = await serviceClient(db);
  const bystander = await serviceClient(db);
  await updateApi(db, world.api.identifier, { owner: front.name }, NO_AUDIT);
  await updateApi(db, payments.identifier, { owner: paymentsService.name }, NO_AUDIT);
  await updateApi(db, ledger.identifier, { owner: ledgerService.name }, NO_AUDIT);
  await updateClient(db, front.name, { mayExchange: [{ api: payments.identifier, scopes: ['payments:charge', 'payments:refund'] }] }, NO_AUDIT);
  await updateClient(db, paymentsService.name, { mayExchange: [{ api: ledger.identifier, scopes: ['ledger:read', 'ledger:write'] }] }, NO_AUDIT);
  await updateClient(db, ledgerService.name, { mayExchange: [{ api: archive.identifier, scopes: ['archive:write'] }] }, NO_AUDIT);
  return { world, payments, ledger, archive, front, paymentsService, ledgerService, bystander };
}

export type ExchangeWorld = Awaited<ReturnType<typeof exchangeWorld>>;

/** The person's access token for the front API (JWT), from a full sign-in. */
export async function personToken(issuer: string, x: ExchangeWorld): Promise<string> {
  const flow = await signIn(issuer, x.world);
  const tokens = (await exchangeCode(issuer, x.world, flow.code, flow.verifier, { resource: x.world.api.identifier })).body;
  if (!tokens.access_token) throw new Error(`no access token: ${JSON.stringify(tokens)}`);
  return tokens.access_token as string;
}

export function exchange(
  issuer: string, client: { id: string; secret: string }, subjectToken: string, extra: Record<string, string> = {},
) {
  return postForm(`${issuer}/token`, {
    grant_type: TOKEN_EXCHANGE, subject_token: subjectToken, subject_token_type: ACCESS_TOKEN_TYPE, ...extra,
  }, client);
}

export function introspectAs(issuer: string, client: { id: string; secret: string }, token: string) {
  return postForm(`${issuer}/token/introspection`, { token }, client);
}
