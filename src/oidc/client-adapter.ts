// The provider's storage of clients and initial access tokens. Clients are managed through the
// services layer and read through the Directory: the provider only writes for RFC 7591/7592
// requests, which go to the registration handlers, and the client lookup of a request is where a
// client's network allow-list is enforced. Initial access tokens live in a table of their own.
import Provider, { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import type { Directory } from './directory.ts';
import { TOKEN_EXCHANGE_GRANT } from '../domain/token-exchange.ts';
import { providerAuthMethod } from './federated-client-auth.ts';
import { CLIENT_AUTH_ROUTES, isAddressAllowed, sourceAddress } from './network-policy.ts';
import { requestContext, requestInfo, SERVICE_POLICY, toRegistrationError, type RegistrationHandlers } from './registration.ts';
import { AuthenticationRequired } from './token-policy.ts';

/** A client limited to some networks tried to authenticate from another (no secrets inside). */
export interface NetworkRefusal { clientId: string; address: string | undefined; route: string }

export interface ClientAdapterOptions {
  placeholderSecret: string;
  trustProxy: boolean;
  onNetworkRefused?: (refusal: NetworkRefusal) => void;
  /** Storage of self-registered clients (RFC 7591/7592); without it, registration always fails. */
  registration?: RegistrationHandlers;
}

/** Initial access tokens live in their own table (hashed, counted uses), made by the services. */
export class InitialAccessTokenAdapter implements Adapter {
  #handlers: RegistrationHandlers | undefined;

  constructor(handlers: RegistrationHandlers | undefined) {
    this.#handlers = handlers;
  }

  async find(value: string): Promise<AdapterPayload | undefined> {
    const token = await this.#handlers?.findInitialAccessToken(value);
    if (!token) return undefined;
    return {
      jti: value,
      kind: 'InitialAccessToken',
      iat: Math.floor(token.createdAt.getTime() / 1000),
      exp: Math.floor(token.expiresAt.getTime() / 1000),
      policies: [SERVICE_POLICY],
    };
  }

  async upsert(): Promise<void> {
    throw new Error('initial access tokens are made by `postern registration-tokens create`');
  }

  async findByUid(): Promise<undefined> { return undefined; }
  async findByUserCode(): Promise<undefined> { return undefined; }
  async consume(): Promise<void> {}
  async destroy(): Promise<void> {}
  async revokeByGrantId(): Promise<void> {}
}

/**
 * Clients are managed through the services layer. The provider writes only for RFC 7591/7592
 * requests, which this hands to the registration handlers; anything else is refused.
 */
export class ClientAdapter implements Adapter {
  #directory: Directory;
  #options: ClientAdapterOptions;

  constructor(directory: Directory, options: ClientAdapterOptions) {
    this.#directory = directory;
    this.#options = options;
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const client = await this.#directory.client(id);
    // A disabled or deleted client does not exist for the provider: invalid_client.
    if (!client?.enabled) return undefined;
    if (client.networks.length) this.#checkNetwork(id, client.networks);
    const metadata: AdapterPayload = { ...client.metadata };
    // An exchange permission implies the token-exchange grant type (docs/token-exchange.md).
    if (client.exchange.size) metadata.grant_types = [...(metadata.grant_types as string[] | undefined ?? ['authorization_code']), TOKEN_EXCHANGE_GRANT];
    metadata.token_endpoint_auth_method = providerAuthMethod(metadata.token_endpoint_auth_method) as AdapterPayload["token_endpoint_auth_method"];
    if (metadata.token_endpoint_auth_method === undefined) delete metadata.token_endpoint_auth_method;
    this.#refusePublicIntrospection(metadata);
    // The provider insists on a client_secret for secret-based auth methods. The real secrets are
    // only stored hashed and checked by compareClientSecret; this per-process random placeholder
    // is never accepted by anything (client_secret_jwt and HS* are disabled).
    if (String(metadata.token_endpoint_auth_method ?? 'client_secret_basic').startsWith('client_secret')) {
      metadata.client_secret = this.#options.placeholderSecret;
    }
    return metadata;
  }

  /**
   * The lookup of the client a request authenticates as (on an endpoint where clients
   * authenticate, before one is authenticated): from outside the client's networks it is
   * invalid_client, 401 (RFC 6749 §5.2). Later lookups in the same request (the client a token
   * belongs to, at introspection) are not about the caller and are not checked.
   */
  #checkNetwork(clientId: string, networks: Parameters<typeof isAddressAllowed>[1]): void {
    const ctx = Provider.ctx;
    const route = ctx?.oidc?.route;
    if (!ctx || !route || !CLIENT_AUTH_ROUTES.has(route) || ctx.oidc.client) return;
    const address = sourceAddress(ctx.req, this.#options.trustProxy);
    if (isAddressAllowed(address, networks)) return;
    this.#options.onNetworkRefused?.({ clientId, address, route });
    throw new errors.InvalidClientAuth('source address outside the client\'s allowed networks');
  }

  /**
   * RFC 7662 §2.1: introspection needs an authenticated caller, and a public client (auth method
   * "none") proves nothing by naming itself. It is refused before any token is looked up, as a
   * request without client authentication. Revocation stays open to it: RFC 7009 §2.1 lets a
   * public client revoke its own tokens (docs/users.md).
   */
  #refusePublicIntrospection(metadata: AdapterPayload): void {
    const ctx = Provider.ctx;
    if (ctx?.oidc?.route !== 'introspection' || ctx.oidc.client) return;
    if (metadata.token_endpoint_auth_method === 'none') throw new AuthenticationRequired('public clients cannot introspect');
  }

  async upsert(clientId: string, metadata: AdapterPayload): Promise<void> {
    const handlers = this.#options.registration;
    const ctx = requestContext.getStore();
    const route = ctx?.oidc?.route;
    const request = requestInfo(ctx);
    const initialAccessToken = ctx?.oidc?.entities.InitialAccessToken?.jti;
    try {
      if (route === 'registration' && handlers && initialAccessToken) {
        await handlers.create({ clientId, metadata, initialAccessToken, request });
      } else if (route === 'client_update' && handlers) {
        await handlers.update({ clientId, metadata, request });
      } else {
        throw new Error('clients are read-only for the provider');
      }
    } catch (error) {
      throw toRegistrationError(error);
    }
  }

  async findByUid(): Promise<undefined> { return undefined; }
  async findByUserCode(): Promise<undefined> { return undefined; }
  async consume(): Promise<void> {}
  async destroy(clientId: string): Promise<void> {
    const handlers = this.#options.registration;
    const ctx = requestContext.getStore();
    if (ctx?.oidc?.route !== 'client_delete' || !handlers) throw new Error('clients are read-only for the provider');
    try {
      await handlers.remove({ clientId, request: requestInfo(ctx) });
    } catch (error) {
      throw toRegistrationError(error);
    }
  }

  async revokeByGrantId(): Promise<void> {}
}
