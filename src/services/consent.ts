// What a consent screen asks for, in plain words, and what a person's roles let them grant: API
// scopes their roles do not grant are left out of the screen and of the tokens (docs/users.md).
import type { Db } from '../db/tables.ts';
import type { ConsentRequest } from '../domain/interaction.ts';
import { findApiScopeDescriptions } from '../store/apis.ts';
import { findUserById, listUserGrants } from '../store/users.ts';

const OIDC_SCOPE_TEXT: Record<string, string> = {
  openid: 'Know who you are (your account identifier)',
  profile: 'See your name and username',
  email: 'See your email address',
  roles: 'See the roles you hold',
  offline_access: 'Stay connected while you are away (a refresh token)',
};

export interface ConsentItem { text: string; api?: string }

export interface ConsentPlan {
  username: string;
  items: ConsentItem[];
  oidcScopes: string[];
  oidcClaims: string[];
  resources: { identifier: string; granted: string[]; refused: string[] }[];
}

export type { ConsentRequest };

export async function describeConsent(db: Db, accountId: string, request: ConsentRequest): Promise<ConsentPlan> {
  const [user, grants] = await Promise.all([findUserById(db, accountId), listUserGrants(db, accountId)]);
  const oidcScopes = (request.missingOIDCScope ?? []).filter((scope) => scope in OIDC_SCOPE_TEXT);
  const items: ConsentItem[] = oidcScopes.map((scope) => ({ text: OIDC_SCOPE_TEXT[scope]! }));
  const resources: ConsentPlan['resources'] = [];
  for (const [identifier, scopes] of Object.entries(request.missingResourceScopes ?? {})) {
    const allowed = new Set(grants.filter((row) => row.identifier === identifier).map((row) => row.scope));
    const granted = scopes.filter((scope) => allowed.has(scope));
    resources.push({ identifier, granted, refused: scopes.filter((scope) => !allowed.has(scope)) });
    const api = await findApiScopeDescriptions(db, identifier);
    for (const scope of granted) {
      items.push({ text: api?.descriptions.get(scope) ?? `Use "${scope}"`, api: api?.name ?? identifier });
    }
  }
  return {
    username: user?.username ?? '',
    items,
    oidcScopes,
    oidcClaims: request.missingOIDCClaims ?? [],
    resources,
  };
}
