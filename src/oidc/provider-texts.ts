// Texts of oidc-provider that Postern recognises, because the library gives these cases no error
// class, option or event of their own: the refusal of a request that names no client (an
// InvalidRequest like a dozen others), the details of token-endpoint refusals that are reworded
// (token-errors.ts), and the logout form handed to logoutSource. Each was read in the sources of
// oidc-provider VERIFIED_WITH; test/provider-texts.test.ts checks every one against the installed
// version and fails on an upgrade that changes one, naming it, instead of an answer changing
// silently.

/** The oidc-provider version whose texts these are. */
export const VERIFIED_WITH = '9.13.3';

/** lib/shared/client_auth.js: no client_id anywhere (Basic, body or assertion). */
export const NO_CLIENT_AUTHENTICATION = 'no client authentication mechanism provided';

/** lib/actions/token.js: the client is not registered for the grant type it uses. */
export const GRANT_TYPE_NOT_ALLOWED = 'requested grant type is not allowed for this client';

/** `error_detail` of refusals at the token endpoint (never shown to clients as such). */
export const REFUSAL_DETAILS = {
  /** lib/helpers/validate_dpop.js: a DPoP proof's jti seen before. */
  dpopReplay: 'DPoP proof JWT Replay detected',
  /** lib/helpers/sender_constraints.js: the client requires DPoP-bound tokens, no proof came. */
  dpopMissing: 'DPoP proof JWT not provided',
  /** lib/actions/grants/refresh_token.js: a refresh token bound to a DPoP key. */
  jktMismatch: 'failed jkt verification',
  /** lib/helpers/sender_constraints.js, refresh_token.js: a certificate-bound client or token. */
  certificateMissing: 'mutual TLS client certificate not provided',
} as const;

/**
 * lib/actions/end_session.js: the form passed to logoutSource, `<form id="op.logoutForm"
 * method="post" action="..."><input type="hidden" name="xsrf" value="..."/></form>`. Where it
 * posts and its anti-forgery value; undefined for what it does not hold.
 */
export function readLogoutForm(form: string): { action: string | undefined; xsrf: string | undefined } {
  return {
    action: /action="([^"]+)"/.exec(form)?.[1],
    xsrf: /name="xsrf" value="([^"]+)"/.exec(form)?.[1],
  };
}
