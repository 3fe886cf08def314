// What a client may do by token exchange (RFC 8693, docs/token-exchange.md): the scopes of other
// APIs it may ask for on behalf of the subjects whose tokens it receives, and whether it may
// impersonate them (a token without `act`). The exchange itself, and the subject's own rights,
// are checked at the token endpoint (oidc/token-exchange.ts).
import type { Db } from '../db/tables.ts';
import { POSTERN_API } from '../domain/postern-api.ts';
import { TOKEN_EXCHANGE_GRANT } from '../domain/token-exchange.ts';
import * as store from '../store/exchange-permissions.ts';
import { requireApi } from './apis.ts';
import { invalid } from './errors.ts';
import { checkScopes } from './validation.ts';

/** The grant type a client may use once it has an exchange permission (RFC 8693 §2.1). */
export { TOKEN_EXCHANGE_GRANT };

export interface ExchangePermission {
  /** API id, identifier or name. */
  api: string;
  scopes: string[];
}

export interface ExchangeSettings {
  /** Replaces the client's exchange permissions; an empty list takes them all away. */
  mayExchange?: ExchangePermission[];
  mayImpersonate?: boolean;
}

export interface ExchangeView {
  mayExchange: { api: string; scopes: string[] }[];
  mayImpersonate: boolean;
  /** The APIs the client serves: it may exchange the tokens issued for them. */
  ownsApis: string[];
}

/** Writes the given settings inside the caller's transaction (which publishes the client's change). */
export async function applyExchangeSettings(trx: Db, clientId: string, settings: ExchangeSettings): Promise<void> {
  if (settings.mayExchange !== undefined) {
    const rows: { apiId: string; scope: string }[] = [];
    for (const permission of settings.mayExchange) {
      const api = await requireApi(trx, permission.api);
      // Postern's own API is not a target: an exchange must never turn a service into an administrator.
      if (api.identifier === POSTERN_API) throw invalid(`${POSTERN_API} cannot be a target of token exchange`, 'mayExchange');
      const scopes = checkScopes(permission.scopes, 'mayExchange');
      if (scopes.length === 0) throw invalid(`name at least one scope of ${api.identifier}`, 'mayExchange');
      const unknown = scopes.filter((scope) => !api.scopes.includes(scope));
      if (unknown.length) throw invalid(`API ${api.identifier} does not define ${unknown.join(', ')}`, 'mayExchange');
      for (const scope of scopes) rows.push({ apiId: api.id, scope });
    }
    await store.replaceExchangeScopes(trx, clientId, rows);
  }
  if (settings.mayImpersonate !== undefined) await store.setMayImpersonate(trx, clientId, settings.mayImpersonate);
}

export async function exchangeView(db: Db, clientId: string, mayImpersonate: boolean): Promise<ExchangeView> {
  const [rows, ownsApis] = await Promise.all([store.listExchangeScopes(db, clientId), store.listOwnedApis(db, clientId)]);
  const byApi = new Map<string, string[]>();
  for (const row of rows) byApi.set(row.identifier, [...(byApi.get(row.identifier) ?? []), row.scope]);
  return { mayExchange: [...byApi].map(([api, scopes]) => ({ api, scopes })), mayImpersonate, ownsApis };
}
