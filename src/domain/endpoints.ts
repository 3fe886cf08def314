// Where every endpoint lives under the issuer, spelled the one way Postern serves it.
//
// Why one spelling: request limits, the introspection fast path and the metrics labels recognise
// an endpoint by its path. If a router also answered `/TOKEN`, `/token/` or `/Interaction/...`,
// a client backed off for wrong secrets would get a token from `/TOKEN`. Two ways out were
// possible: rewrite every request path to a canonical form early, or serve only the canonical
// spelling and answer 404 to every other. Postern does the second, because it fails closed: a
// rewrite must know every spelling each router accepts (and a missed one slips past the limits),
// while an allow-list of exact paths refuses whatever it does not know, so a missing entry shows
// up as a 404 in the tests instead of as a hole. Concretely:
// - Postern's own routers (@koa/router: interactions, health, admin API) are built strict and
//   case-sensitive (STRICT_ROUTING): no trailing slash, no case variants.
// - oidc-provider's router cannot be configured so (it folds case and ignores one trailing
//   slash), so the provider is only handed paths that isProviderPath() accepts (provider-holder.ts).
// - Percent-encoded letters (`/%74oken`), dot segments and doubled slashes are matched by no
//   router at all (none of them decodes or resolves the fixed part of a path); they stay 404.

/** oidc-provider's `routes` option, given to it as is, so the two cannot drift apart. */
export const PROVIDER_ROUTES = {
  authorization: '/auth',
  token: '/token',
  introspection: '/token/introspection',
  revocation: '/token/revocation',
  userinfo: '/me',
  jwks: '/jwks',
  registration: '/reg',
  end_session: '/session/end',
  pushed_authorization_request: '/request',
} as const;

/** Postern's sign-in pages (src/http/interactions.ts): `/interaction/:uid[/login|/confirm|/abort]`. */
export const INTERACTION_PATH = '/interaction';

/** Options of every @koa/router Router: exact paths only (see the top of this file). */
export const STRICT_ROUTING = { strict: true, sensitive: true } as const;

/** `text` as a regular expression matching exactly it (an issuer's path may hold dots). */
export const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Paths the provider serves with no variable part (under the issuer's path). */
const PROVIDER_PATHS = new Set<string>([
  ...Object.values(PROVIDER_ROUTES),
  // Served by oidc-provider whatever its `routes` say.
  '/.well-known/openid-configuration',
  '/.well-known/oauth-authorization-server',
  `${PROVIDER_ROUTES.end_session}/confirm`,
  `${PROVIDER_ROUTES.end_session}/success`,
]);

/**
 * Paths with an identifier in the last segment: the authorization endpoint's resume
 * (`/auth/:uid`) and registration management (`/reg/:clientId`, RFC 7592). Identifiers are ones
 * Postern or the provider generated (base64url), never spelled with percent-escapes or dots.
 */
const PROVIDER_PATTERNS = [PROVIDER_ROUTES.authorization, PROVIDER_ROUTES.registration]
  .map((base) => new RegExp(`^${escapeRegExp(base)}/[A-Za-z0-9_-]{1,200}$`));

/**
 * Whether `path` (the whole request path) is one the provider serves, spelled exactly as it is
 * served, under the issuer's path `issuerPath` ('' at the root).
 */
export function isProviderPath(path: string, issuerPath: string): boolean {
  if (issuerPath && !path.startsWith(`${issuerPath}/`)) return false;
  const rest = path.slice(issuerPath.length);
  return PROVIDER_PATHS.has(rest) || PROVIDER_PATTERNS.some((pattern) => pattern.test(rest));
}
