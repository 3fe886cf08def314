// How clients authenticate: the token endpoint auth methods that present a secret or a
// certificate, and, for private_key_jwt (RFC 7523 §2.2, OpenID Connect Core §9), which signature
// algorithms a client assertion may use. A leaf: no oidc-provider import, so the services may
// validate against the same lists the provider enforces.

/** Methods that present a secret Postern issued (client_secret_jwt is off: it needs the plaintext). */
export const SECRET_AUTH_METHODS: readonly string[] = ['client_secret_basic', 'client_secret_post'];

/** Methods that authenticate with a TLS client certificate (RFC 8705 §2). */
export const CERTIFICATE_AUTH_METHODS: readonly string[] = ['tls_client_auth', 'self_signed_tls_client_auth'];

/**
 * Asymmetric algorithms only. HS* (and client_secret_jwt) would need the plaintext client secret,
 * which Postern never keeps; `none` is never acceptable for authentication.
 */
export const CLIENT_AUTH_ALGS = [
  'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512',
] as const;

/** Key types that can verify the algorithms above. */
export const CLIENT_KEY_TYPES = ['EC', 'RSA', 'OKP'] as const;
