// Every route of the admin API, as data: method, path, schemas, and a thin handler calling one
// service. The router and the OpenAPI document are both built from this table.
import type { z } from 'zod';
import type { Db } from '../../db/tables.ts';
import type { AuditSink } from '../../domain/audit-events.ts';
import * as apis from '../../services/apis.ts';
import * as clients from '../../services/clients.ts';
import { listKeys } from '../../services/key-rotation.ts';
import { listAuditEvents } from '../../services/audit-queries.ts';
import * as registration from '../../services/registration.ts';
import * as roles from '../../services/roles.ts';
import { revokeClientTokens } from '../../services/tokens.ts';
import * as users from '../../services/users.ts';
import * as issuers from '../../services/trusted-issuers.ts';
import * as i from './issuer-schemas.ts';
import { checkRoute } from '../../services/route-check.ts';
import { exportIstio, exportOpa } from '../../services/route-export.ts';
import * as routes from '../../services/routes.ts';
import * as r from './route-schemas.ts';
import * as s from './schemas.ts';
import * as u from './user-schemas.ts';

export interface AdminDeps {
  db: Db;
  /** Records what this request changes, as the calling admin client, with its request id. */
  audit: AuditSink;
  /** The issuer (route exports name it and its JWKS). */
  issuer: string;
  /** The OpenAPI document of this API (built from this table). */
  openApiDocument(): Record<string, unknown>;
  /** Development allows trusted issuers on plain http loopback URLs. */
  issuerRules?: issuers.IssuerRules;
}

type Schema = z.ZodType;
type Out<T> = T extends Schema ? z.output<T> : undefined;

export interface AdminRoute<P extends Schema | undefined = Schema | undefined,
  Q extends Schema | undefined = Schema | undefined, B extends Schema | undefined = Schema | undefined> {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** OpenAPI form, relative to /admin/v1: /apis/{id} */
  path: string;
  operationId: string;
  summary: string;
  tag: 'apis' | 'clients' | 'roles' | 'users' | 'keys' | 'audit' | 'registration' | 'meta' | 'issuers' | 'routes';
  params?: P;
  query?: Q;
  body?: B;
  status: 200 | 201 | 204;
  response?: Schema;
  /** Answers without a token (the API's own description only). */
  public?: boolean;
  handle(input: { params: Out<P>; query: Out<Q>; body: Out<B> }, deps: AdminDeps): Promise<unknown>;
}

// Keeps each entry's handler typed by its own schemas while the table holds them all.
const route = <P extends Schema | undefined = undefined, Q extends Schema | undefined = undefined,
  B extends Schema | undefined = undefined>(spec: AdminRoute<P, Q, B>) => spec as unknown as AdminRoute;

const items = async <T>(promise: Promise<T[]>) => ({ items: await promise });

const PRODUCTION_RULES: issuers.IssuerRules = { development: false };

export const ADMIN_ROUTES: AdminRoute[] = [
  // Trusted issuers (workload identity, docs/workload-identity.md)
  route({
    method: 'post', path: '/issuers', operationId: 'createIssuer', summary: 'Trust an issuer of workload tokens', tag: 'issuers',
    body: i.createIssuerBody, status: 201, response: i.issuerView,
    handle: ({ body }, { db, audit, issuerRules }) => issuers.createIssuer(db, body, issuerRules ?? PRODUCTION_RULES, audit),
  }),
  route({
    method: 'get', path: '/issuers', operationId: 'listIssuers', summary: 'List trusted issuers', tag: 'issuers',
    status: 200, response: s.list(i.issuerView),
    handle: (_, { db }) => items(issuers.listIssuers(db)),
  }),
  route({
    method: 'get', path: '/issuers/{id}', operationId: 'getIssuer', summary: 'Show a trusted issuer', tag: 'issuers',
    params: s.idParams, status: 200, response: i.issuerView,
    handle: ({ params }, { db }) => issuers.getIssuer(db, params.id),
  }),
  route({
    method: 'patch', path: '/issuers/{id}', operationId: 'updateIssuer', summary: 'Change a trusted issuer', tag: 'issuers',
    params: s.idParams, body: i.updateIssuerBody, status: 200, response: i.issuerView,
    handle: ({ params, body }, { db, audit, issuerRules }) => issuers.updateIssuer(db, params.id, body, issuerRules ?? PRODUCTION_RULES, audit),
  }),
  route({
    method: 'delete', path: '/issuers/{id}', operationId: 'deleteIssuer', summary: 'Stop trusting an issuer', tag: 'issuers',
    params: s.idParams, query: i.deleteIssuerQuery, status: 204,
    handle: ({ params, query }, { db, audit }) => issuers.deleteIssuer(db, params.id, { force: query.force }, audit),
  }),
  // APIs (resource servers)
  route({
    method: 'post', path: '/apis', operationId: 'createApi', summary: 'Register an API', tag: 'apis',
    body: s.createApiBody, status: 201, response: s.apiView,
    handle: ({ body }, { db, audit }) => apis.createApi(db, body, audit),
  }),
  route({
    method: 'get', path: '/apis', operationId: 'listApis', summary: 'List APIs', tag: 'apis',
    status: 200, response: s.list(s.apiView),
    handle: (_, { db }) => items(apis.listApis(db)),
  }),
  route({
    method: 'get', path: '/apis/{id}', operationId: 'getApi', summary: 'Show an API', tag: 'apis',
    params: s.idParams, status: 200, response: s.apiView,
    handle: ({ params }, { db }) => apis.getApi(db, params.id),
  }),
  route({
    method: 'patch', path: '/apis/{id}', operationId: 'updateApi', summary: 'Change an API', tag: 'apis',
    params: s.idParams, body: s.updateApiBody, status: 200, response: s.apiView,
    handle: ({ params, body }, { db, audit }) => apis.updateApi(db, params.id, body, audit),
  }),
  route({
    method: 'delete', path: '/apis/{id}', operationId: 'deleteApi', summary: 'Delete an API and its grants', tag: 'apis',
    params: s.idParams, status: 204,
    handle: ({ params }, { db, audit }) => apis.deleteApi(db, params.id, audit),
  }),

  // Clients
  route({
    method: 'post', path: '/clients', operationId: 'createClient', summary: 'Register a client (returns its secret once)',
    tag: 'clients', body: s.createClientBody, status: 201, response: s.clientWithSecret,
    handle: ({ body }, { db, audit }) => clients.createClient(db, body, audit),
  }),
  route({
    method: 'get', path: '/clients', operationId: 'listClients', summary: 'List clients, a page at a time', tag: 'clients',
    query: s.listClientsQuery, status: 200, response: s.clientPage,
    handle: ({ query }, { db }) => clients.listClientsPage(db, query),
  }),
  route({
    method: 'get', path: '/clients/{id}', operationId: 'getClient', summary: 'Show a client', tag: 'clients',
    params: s.idParams, status: 200, response: s.clientView,
    handle: ({ params }, { db }) => clients.getClient(db, params.id),
  }),
  route({
    method: 'patch', path: '/clients/{id}', operationId: 'updateClient', summary: 'Rename, enable or disable a client; replace its keys, networks, DPoP requirement or redirect URIs',
    tag: 'clients', params: s.idParams, body: s.updateClientBody, status: 200, response: s.clientView,
    handle: ({ params, body }, { db, audit }) => clients.updateClient(db, params.id, body, audit),
  }),
  route({
    method: 'delete', path: '/clients/{id}', operationId: 'deleteClient', summary: 'Delete a client', tag: 'clients',
    params: s.idParams, status: 204,
    handle: ({ params }, { db, audit }) => clients.deleteClient(db, params.id, audit),
  }),
  route({
    method: 'post', path: '/clients/{id}/rotate-secret', operationId: 'rotateClientSecret',
    summary: 'Issue a new secret (returned once); older ones keep working for keepOldForSeconds', tag: 'clients',
    params: s.idParams, body: s.rotateSecretBody, status: 200, response: s.rotatedSecret,
    handle: ({ params, body }, { db, audit }) =>
      clients.rotateClientSecret(db, params.id, body.keepOldForSeconds ?? 0, audit),
  }),
  route({
    method: 'post', path: '/clients/{id}/revoke-tokens', operationId: 'revokeClientTokens',
    summary: 'Revoke every token of a client (JWTs by an issued-before cut-off)', tag: 'clients',
    params: s.idParams, status: 200, response: s.revokedTokens,
    handle: ({ params }, { db, audit }) => revokeClientTokens(db, params.id, audit),
  }),

  // Roles
  route({
    method: 'post', path: '/roles', operationId: 'createRole', summary: 'Create a role', tag: 'roles',
    body: s.createRoleBody, status: 201, response: s.roleView,
    handle: ({ body }, { db, audit }) => roles.createRole(db, body, audit),
  }),
  route({
    method: 'get', path: '/roles', operationId: 'listRoles', summary: 'List roles', tag: 'roles',
    status: 200, response: s.list(s.roleView),
    handle: (_, { db }) => items(roles.listRoles(db)),
  }),
  route({
    method: 'get', path: '/roles/{id}', operationId: 'getRole', summary: 'Show a role', tag: 'roles',
    params: s.idParams, status: 200, response: s.roleView,
    handle: ({ params }, { db }) => roles.getRole(db, params.id),
  }),
  route({
    method: 'patch', path: '/roles/{id}', operationId: 'updateRole', summary: 'Rename a role or change its description',
    tag: 'roles', params: s.idParams, body: s.updateRoleBody, status: 200, response: s.roleView,
    handle: ({ params, body }, { db, audit }) => roles.updateRole(db, params.id, body, audit),
  }),
  route({
    method: 'delete', path: '/roles/{id}', operationId: 'deleteRole', summary: 'Delete a role', tag: 'roles',
    params: s.idParams, status: 204,
    handle: ({ params }, { db, audit }) => roles.deleteRole(db, params.id, audit),
  }),
  route({
    method: 'post', path: '/roles/{id}/grants', operationId: 'grantScopes', summary: 'Grant scopes of an API to a role',
    tag: 'roles', params: s.idParams, body: s.grantBody, status: 200, response: s.roleView,
    handle: ({ params, body }, { db, audit }) => roles.grantScopes(db, params.id, body, audit),
  }),
  route({
    method: 'delete', path: '/roles/{id}/grants', operationId: 'ungrantScopes', summary: 'Take scopes of an API back from a role',
    tag: 'roles', params: s.idParams, body: s.grantBody, status: 200, response: s.roleView,
    handle: ({ params, body }, { db, audit }) => roles.ungrantScopes(db, params.id, body, audit),
  }),
  route({
    method: 'put', path: '/roles/{id}/clients/{clientId}', operationId: 'assignRole', summary: 'Assign a role to a client',
    tag: 'roles', params: s.roleClientParams, status: 200, response: s.roleView,
    handle: ({ params }, { db, audit }) => roles.assignRoleToClient(db, params.id, params.clientId, audit),
  }),
  route({
    method: 'delete', path: '/roles/{id}/clients/{clientId}', operationId: 'unassignRole',
    summary: 'Remove a role from a client', tag: 'roles', params: s.roleClientParams, status: 200, response: s.roleView,
    handle: ({ params }, { db, audit }) => roles.unassignRoleFromClient(db, params.id, params.clientId, audit),
  }),

  // Self-registration: initial access tokens (RFC 7591 §3)
  route({
    method: 'post', path: '/registration-tokens', operationId: 'createRegistrationToken',
    summary: 'Make an initial access token for self-registration (returned once)', tag: 'registration',
    body: s.createRegistrationTokenBody, status: 201, response: s.registrationTokenWithValue,
    handle: ({ body }, { db, audit }) => registration.createRegistrationToken(db, body, audit),
  }),
  route({
    method: 'get', path: '/registration-tokens', operationId: 'listRegistrationTokens',
    summary: 'List initial access tokens (never their values)', tag: 'registration',
    status: 200, response: s.list(s.registrationTokenView),
    handle: (_, { db }) => items(registration.listRegistrationTokens(db)),
  }),
  route({
    method: 'get', path: '/registration-tokens/{id}', operationId: 'getRegistrationToken',
    summary: 'Show an initial access token', tag: 'registration',
    params: s.tokenIdParams, status: 200, response: s.registrationTokenView,
    handle: ({ params }, { db }) => registration.getRegistrationToken(db, params.id),
  }),
  route({
    method: 'post', path: '/registration-tokens/{id}/revoke', operationId: 'revokeRegistrationToken',
    summary: 'Stop an initial access token from registering more clients', tag: 'registration',
    params: s.tokenIdParams, status: 200, response: s.registrationTokenView,
    handle: ({ params }, { db, audit }) => registration.revokeRegistrationToken(db, params.id, audit),
  }),

  // The audit log
  route({
    method: 'get', path: '/audit-events', operationId: 'listAuditEvents',
    summary: 'Security events, newest first, filtered, a page at a time', tag: 'audit',
    query: s.listAuditEventsQuery, status: 200, response: s.auditEventPage,
    handle: ({ query }, { db }) => listAuditEvents(db, query),
  }),

  route({
    method: 'put', path: '/roles/{id}/users/{userId}', operationId: 'assignRoleToUser', summary: 'Assign a role to a person',
    tag: 'roles', params: u.roleUserParams, status: 200, response: s.roleView,
    handle: ({ params }, { db, audit }) => roles.assignRoleToUser(db, params.id, params.userId, audit),
  }),
  route({
    method: 'delete', path: '/roles/{id}/users/{userId}', operationId: 'unassignRoleFromUser',
    summary: 'Remove a role from a person', tag: 'roles', params: u.roleUserParams, status: 200, response: s.roleView,
    handle: ({ params }, { db, audit }) => roles.unassignRoleFromUser(db, params.id, params.userId, audit),
  }),

  // People
  route({
    method: 'post', path: '/users', operationId: 'createUser', summary: 'Create a person (password checked against the policy)',
    tag: 'users', body: u.createUserBody, status: 201, response: u.userView,
    handle: ({ body }, { db, audit }) => users.createUser(db, body, audit),
  }),
  route({
    method: 'get', path: '/users', operationId: 'listUsers', summary: 'List people', tag: 'users',
    status: 200, response: s.list(u.userView),
    handle: (_, { db }) => items(users.listUsers(db)),
  }),
  route({
    method: 'get', path: '/users/{id}', operationId: 'getUser', summary: 'Show a person', tag: 'users',
    params: s.idParams, status: 200, response: u.userView,
    handle: ({ params }, { db }) => users.getUser(db, params.id),
  }),
  route({
    method: 'patch', path: '/users/{id}', operationId: 'updateUser', summary: 'Change email or name; enable or disable',
    tag: 'users', params: s.idParams, body: u.updateUserBody, status: 200, response: u.userView,
    handle: async ({ params, body }, { db, audit }) => {
      const { enabled, ...details } = body;
      let view = Object.values(details).some((value) => value !== undefined)
        ? await users.updateUser(db, params.id, details, audit) : await users.getUser(db, params.id);
      if (enabled !== undefined && enabled !== view.enabled) view = await users.setUserEnabled(db, view.id, enabled, audit);
      return view;
    },
  }),
  route({
    method: 'put', path: '/users/{id}/password', operationId: 'setUserPassword',
    summary: "Set a person's password; their sessions end", tag: 'users',
    params: s.idParams, body: u.setPasswordBody, status: 200, response: u.userView,
    handle: ({ params, body }, { db, audit }) => users.setUserPassword(db, params.id, body.password, audit),
  }),
  route({
    method: 'post', path: '/users/{id}/revoke-sessions', operationId: 'revokeUserSessions',
    summary: 'End every session of a person and revoke their grants and tokens', tag: 'users',
    params: s.idParams, status: 200, response: u.revokedSessions,
    handle: ({ params }, { db, audit }) => users.revokeUserSessions(db, params.id, audit),
  }),
  route({
    method: 'delete', path: '/users/{id}', operationId: 'deleteUser', summary: 'Delete a person, their sessions and grants',
    tag: 'users', params: s.idParams, status: 204,
    handle: ({ params }, { db, audit }) => users.deleteUser(db, params.id, audit),
  }),

  // Route policies (docs/routes.md)
  route({
    method: 'post', path: '/routes', operationId: 'createRoute', summary: 'Create a route rule', tag: 'routes',
    body: r.createRouteBody, status: 201, response: r.routeView,
    handle: ({ body }, { db, audit }) => routes.createRoute(db, body, audit),
  }),
  route({
    method: 'get', path: '/routes', operationId: 'listRoutes', summary: 'List route rules', tag: 'routes',
    query: r.listRoutesQuery, status: 200, response: s.list(r.routeView),
    handle: ({ query }, { db }) => items(routes.listRoutes(db, query)),
  }),
  route({
    method: 'get', path: '/routes/check', operationId: 'checkRoute',
    summary: 'Which rule covers a request, and the decision without a token', tag: 'routes',
    query: r.checkRouteQuery, status: 200, response: r.routeCheck,
    handle: ({ query }, { db, issuer }) => checkRoute(db, query, issuer),
  }),
  route({
    method: 'get', path: '/routes/export', operationId: 'exportRoutes',
    summary: 'The rules as Istio policies or an OPA data document and Rego policy', tag: 'routes',
    query: r.exportRoutesQuery, status: 200, response: r.routeExport,
    handle: async ({ query }, { db, issuer }) => {
      const rules = await routes.listRoutes(db);
      const options = { issuer, namespace: query.namespace };
      const result = query.format === 'istio' ? exportIstio(rules, options) : exportOpa(rules, options);
      return { format: query.format, text: result.text, warnings: result.warnings };
    },
  }),
  route({
    method: 'get', path: '/routes/{id}', operationId: 'getRoute', summary: 'Show a route rule', tag: 'routes',
    params: r.routeParams, status: 200, response: r.routeView,
    handle: ({ params }, { db }) => routes.getRoute(db, params.id),
  }),
  route({
    method: 'patch', path: '/routes/{id}', operationId: 'updateRoute', summary: 'Change a route rule', tag: 'routes',
    params: r.routeParams, body: r.updateRouteBody, status: 200, response: r.routeView,
    handle: ({ params, body }, { db, audit }) => routes.updateRoute(db, params.id, body, audit),
  }),
  route({
    method: 'delete', path: '/routes/{id}', operationId: 'deleteRoute', summary: 'Delete a route rule', tag: 'routes',
    params: r.routeParams, status: 204,
    handle: ({ params }, { db, audit }) => routes.deleteRoute(db, params.id, audit),
  }),

  // Keys and the API's own description
  route({
    method: 'get', path: '/keys', operationId: 'listKeys',
    summary: 'Signing keys with their state (next, active, retiring, retired) and dates; public information only', tag: 'keys',
    status: 200, response: s.list(s.keyView),
    handle: (_, { db }) => items(listKeys(db)),
  }),
  route({
    method: 'get', path: '/openapi.json', operationId: 'getOpenApiDocument', summary: 'This document (OpenAPI 3.1)',
    tag: 'meta', status: 200, response: s.openApiDocument, public: true,
    handle: async (_, deps) => deps.openApiDocument(),
  }),
];
