// Client public keys for private_key_jwt (RFC 7523 §2.2, OpenID Connect Core §9): which
// signature algorithms a client assertion may use. A leaf: no oidc-provider import, so the
// services may validate against the same list the provider enforces.

/**
 * Asymmetric algorithms only. HS* (and client_secret_jwt) would need the plaintext client secret,
 * which Postern never keeps; `none` is never acceptable for authentication.
 */
export const CLIENT_AUTH_ALGS = [
  'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512',
] as const;

/** Key types that can verify the algorithms above. */
export const CLIENT_KEY_TYPES = ['EC', 'RSA', 'OKP'] as const;
