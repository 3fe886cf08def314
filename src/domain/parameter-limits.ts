// The longest value each OAuth/OpenID parameter may have, in characters after decoding. Nothing
// in the protocols needs more, and each value of an authorization request is stored with its
// interaction: an unbounded `state` would be an unbounded row per request. A leaf module: the
// HTTP layer refuses longer values (invalid_request), and the lookups use the same bounds.

/** RFC 8707 resource indicators and API identifiers (an URI; browsers' practical limit). */
export const MAX_RESOURCE_LENGTH = 2000;

/** Parameters of the authorization, token, PAR, introspection, revocation and logout endpoints. */
export const PARAMETER_LIMITS: ReadonlyMap<string, number> = new Map(Object.entries({
  // Authorization requests (OpenID Connect Core §3.1.2.1, RFC 6749 §4.1.1, RFC 7636 §4.3).
  state: 1024,
  nonce: 512,
  scope: 2048,
  response_type: 64,
  response_mode: 64,
  redirect_uri: 2000,
  prompt: 128,
  display: 32,
  max_age: 10,
  ui_locales: 256,
  claims_locales: 256,
  acr_values: 512,
  login_hint: 512,
  id_token_hint: 8192,
  claims: 4096,
  code_challenge: 128,
  code_challenge_method: 16,
  resource: MAX_RESOURCE_LENGTH,
  request_uri: 2000,
  request: 16_384,
  dpop_jkt: 128,
  authorization_details: 4096,
  // Token requests (RFC 6749 §4.1.3, §6; RFC 7636 §4.5).
  grant_type: 128,
  code: 512,
  refresh_token: 512,
  code_verifier: 128,
  // Introspection and revocation (RFC 7662 §2.1, RFC 7009 §2.1), userinfo (RFC 6750 §2.2).
  token: 16_384,
  token_type_hint: 64,
  access_token: 16_384,
  // Token exchange (RFC 8693 §2.1).
  subject_token: 16_384,
  actor_token: 16_384,
  subject_token_type: 128,
  actor_token_type: 128,
  requested_token_type: 128,
  audience: MAX_RESOURCE_LENGTH,
  // RP-initiated logout (OpenID Connect RP-Initiated Logout §2).
  post_logout_redirect_uri: 2000,
  logout_hint: 512,
}));

/** The first parameter with a value over its limit, with the limit; undefined when none is. */
export function findOverlongParameter(params: Iterable<[string, string]>): { name: string; limit: number } | undefined {
  for (const [name, value] of params) {
    const limit = PARAMETER_LIMITS.get(name);
    if (limit !== undefined && value.length > limit) return { name, limit };
  }
  return undefined;
}
