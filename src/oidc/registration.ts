// Self-registration (RFC 7591) and registration management (RFC 7592) through oidc-provider's
// features.registration. Only services register: client_credentials clients with a secret. The
// provider runs the protocol; storing is delegated to the services layer (wired by app.ts), which
// hashes the secret, applies the CLI's rules and binds the initial access token's roles.
import { AsyncLocalStorage } from 'node:async_hooks';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { SECRET_AUTH_METHODS } from '../domain/client-keys.ts';
import { generateClientSecret, randomId } from '../domain/crypto.ts';

export interface RegistrationRequest { requestId?: string | null; sourceAddress?: string | null }

/** What the provider's adapters need from the services layer. Errors carry a ServiceError code. */
export interface RegistrationHandlers {
  findInitialAccessToken(value: string): Promise<{ id: string; createdAt: Date; expiresAt: Date } | undefined>;
  create(input: { clientId: string; metadata: Record<string, unknown>; initialAccessToken: string; request: RegistrationRequest }): Promise<void>;
  update(input: { clientId: string; metadata: Record<string, unknown>; request: RegistrationRequest }): Promise<void>;
  remove(input: { clientId: string; request: RegistrationRequest }): Promise<void>;
}

/** Every initial access token carries this policy, and so every registration access token. */
export const SERVICE_POLICY = 'postern-service-client';

/**
 * The request being handled, for the Client adapter: the provider calls adapter.upsert without a
 * context, and the adapter must know which registration (and which initial access token) it is.
 */
export const requestContext = new AsyncLocalStorage<KoaContextWithOIDC>();

const KEPT = new Set([
  'client_id', 'client_id_issued_at', 'client_secret', 'client_secret_expires_at',
  'client_name', 'grant_types', 'response_types', 'redirect_uris', 'token_endpoint_auth_method',
]);

const isEmptyList = (value: unknown) => value === undefined || (Array.isArray(value) && value.length === 0);

/**
 * Registration policy: the metadata of a service. RFC 7591 §3.2.1 lets the server replace or drop
 * metadata; the response then shows what was registered. Other kinds of clients are refused.
 */
export function servicePolicy(_ctx: KoaContextWithOIDC, properties: Record<string, unknown>): void {
  for (const key of Object.keys(properties)) if (!KEPT.has(key)) delete properties[key];
  properties.grant_types ??= ['client_credentials'];
  const grants = properties.grant_types;
  if (!Array.isArray(grants) || grants.length === 0 || grants.some((grant) => grant !== 'client_credentials')) {
    throw new errors.InvalidClientMetadata('only services may register here: grant_types must be ["client_credentials"]');
  }
  if (!isEmptyList(properties.response_types) || !isEmptyList(properties.redirect_uris)) {
    throw new errors.InvalidClientMetadata('a client_credentials service has no response_types or redirect_uris');
  }
  properties.response_types = [];
  properties.redirect_uris = [];
  properties.token_endpoint_auth_method ??= 'client_secret_basic';
  if (!SECRET_AUTH_METHODS.includes(properties.token_endpoint_auth_method as string)) {
    throw new errors.InvalidClientMetadata(`token_endpoint_auth_method must be one of ${SECRET_AUTH_METHODS.join(', ')}`);
  }
}

export function registrationFeatures() {
  return {
    registration: {
      enabled: true,
      // RFC 7591 §3: registration needs an initial access token, always (no open registration).
      initialAccessToken: true,
      policies: { [SERVICE_POLICY]: servicePolicy },
      idFactory: () => randomId(),
      secretFactory: () => generateClientSecret(),
      issueRegistrationAccessToken: true,
    },
    registrationManagement: { enabled: true, rotateRegistrationAccessToken: true },
  };
}

export function requestInfo(ctx: KoaContextWithOIDC | undefined): RegistrationRequest {
  return { requestId: ctx?.state?.requestId as string | undefined, sourceAddress: ctx?.ip };
}

/** Service errors become RFC 7591 §3.2.2 errors. */
export function toRegistrationError(error: unknown): unknown {
  const code = (error as { code?: unknown })?.code;
  const message = (error as Error)?.message;
  if (code === 'invalid_input' || code === 'conflict') return new errors.InvalidClientMetadata(message);
  if (code === 'forbidden' || code === 'not_found') return new errors.InvalidToken(message);
  return error;
}

/** Provider middleware: the request context, and no placeholder secret in RFC 7592 answers. */
export function registrationMiddleware() {
  return async (ctx: KoaContextWithOIDC, next: () => Promise<void>) => {
    await requestContext.run(ctx, next);
    const route = ctx.oidc?.route;
    if ((route === 'client' || route === 'client_update') && ctx.body && typeof ctx.body === 'object') {
      // Postern keeps only a hash of the secret: what the provider holds is a placeholder that
      // no endpoint accepts, so it is not shown. The client keeps the secret it got at registration.
      const body = ctx.body as Record<string, unknown>;
      delete body.client_secret;
      delete body.client_secret_expires_at;
    }
  };
}
