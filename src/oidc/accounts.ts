// People as oidc-provider accounts: the claims of each scope, and the API scopes and roles their
// roles give them. Read from the database on every use, so a disabled person or a removed role
// counts at the next token request.
import type { Account, KoaContextWithOIDC } from 'oidc-provider';
import type { Db } from '../db/tables.ts';
import { findUserById, listRoleNamesOfUser, listUserGrants } from '../store/users.ts';

/** The claims each OpenID scope releases (OpenID Connect Core §5.4, plus Postern's `roles`). */
export const SCOPE_CLAIMS = {
  openid: ['sub'],
  profile: ['name', 'preferred_username', 'updated_at'],
  email: ['email', 'email_verified'],
  roles: ['roles'],
};

export function findAccount(db: Db) {
  return async (_ctx: KoaContextWithOIDC, id: string): Promise<Account | undefined> => {
    const user = await findUserById(db, id);
    // A disabled or deleted person has no account: their refresh tokens and sessions stop working.
    if (!user?.enabled) return undefined;
    return {
      accountId: user.id,
      claims: async () => ({
        sub: user.id,
        name: user.name ?? undefined,
        preferred_username: user.username,
        updated_at: Math.floor(user.updated_at.getTime() / 1000),
        email: user.email ?? undefined,
        email_verified: user.email ? user.email_verified : undefined,
        roles: await listRoleNamesOfUser(db, user.id),
      }),
    };
  };
}

export interface PersonGrants {
  /** The scopes the person's roles grant on the API. */
  scopes: Set<string>;
  /** The names of the roles that grant them. */
  roles: string[];
}

/** One token request asks twice (the scopes, then the roles claim): one query per request. */
const perRequest = new WeakMap<object, Map<string, Promise<PersonGrants>>>();

async function loadPersonGrants(db: Db, userId: string, identifier: string): Promise<PersonGrants> {
  const rows = (await listUserGrants(db, userId)).filter((row) => row.identifier === identifier);
  return {
    scopes: new Set(rows.map((row) => row.scope)),
    roles: [...new Set(rows.map((row) => row.role_name))].sort(),
  };
}

/**
 * What a person's roles grant on one API now, read from the database (people's roles are not
 * cached); undefined when the person is disabled or deleted.
 */
export async function currentPersonGrants(db: Db, userId: string, identifier: string): Promise<PersonGrants | undefined> {
  const [user, grants] = await Promise.all([findUserById(db, userId), loadPersonGrants(db, userId, identifier)]);
  return user?.enabled ? grants : undefined;
}

/** What a person's roles grant on one API (by identifier), read once per request `ctx`. */
export function personGrants(ctx: object, db: Db, userId: string, identifier: string): Promise<PersonGrants> {
  let cache = perRequest.get(ctx);
  if (!cache) {
    cache = new Map();
    perRequest.set(ctx, cache);
  }
  const key = `${userId}\n${identifier}`;
  let grants = cache.get(key);
  if (!grants) {
    grants = loadPersonGrants(db, userId, identifier);
    cache.set(key, grants);
  }
  return grants;
}
