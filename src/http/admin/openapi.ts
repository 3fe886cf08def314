// The OpenAPI 3.1 document of the admin API, generated from the route table and its zod schemas.
import { createDocument, type ZodOpenApiOperationObject, type ZodOpenApiPathsObject } from 'zod-openapi';
import { ADMIN_ERROR_STATUS, errorBody, type AdminErrorCode } from './errors.ts';
import { ADMIN_ROUTES, type AdminRoute } from './routes.ts';

export const ADMIN_PREFIX = '/admin/v1';
const SCHEME = 'posternToken';

/** The scope a route requires: reading for GET, writing for everything else. */
export function requiredScope(route: Pick<AdminRoute, 'method'>): 'admin:read' | 'admin:write' {
  return route.method === 'get' ? 'admin:read' : 'admin:write';
}

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: errorBody } },
});

/** The error statuses a route can answer, by what it takes in. */
function errorResponses(route: AdminRoute): Record<string, ReturnType<typeof errorResponse>> {
  const codes: AdminErrorCode[] = ['server_error'];
  if (!route.public) codes.push('invalid_token', 'insufficient_scope');
  if (route.params || route.query || route.body) codes.push('invalid_input');
  if (route.params) codes.push('not_found');
  if (route.method !== 'get') codes.push('conflict', 'forbidden');
  if (route.body) codes.push('payload_too_large', 'unsupported_media_type');
  const byStatus = new Map<number, AdminErrorCode[]>();
  for (const code of codes) byStatus.set(ADMIN_ERROR_STATUS[code], [...(byStatus.get(ADMIN_ERROR_STATUS[code]) ?? []), code]);
  return Object.fromEntries([...byStatus].map(([status, list]) => [String(status), errorResponse(list.join(' or '))]));
}

function operation(route: AdminRoute): ZodOpenApiOperationObject {
  return {
    operationId: route.operationId,
    summary: route.summary,
    tags: [route.tag],
    security: route.public ? [] : [{ [SCHEME]: [requiredScope(route)] }],
    ...(route.params || route.query
      ? { requestParams: { ...(route.params ? { path: route.params } : {}), ...(route.query ? { query: route.query } : {}) } as never }
      : {}),
    ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: route.body } } } } : {}),
    responses: {
      [String(route.status)]: route.response
        ? { description: 'success', content: { 'application/json': { schema: route.response } } }
        : { description: 'done, no content' },
      ...errorResponses(route),
    },
  };
}

export function buildOpenApiDocument(issuer: string): Record<string, unknown> {
  const paths: ZodOpenApiPathsObject = {};
  for (const route of ADMIN_ROUTES) {
    paths[route.path] = { ...paths[route.path], [route.method]: operation(route) };
  }
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'Postern admin API',
      version: '1',
      description: 'Manage APIs, roles, clients and keys. Every request but this document needs a Postern '
        + 'access token for the API urn:postern: admin:read for GET, admin:write for everything else, '
        + 'each counting only while the caller\'s roles still grant it.',
    },
    servers: [{ url: ADMIN_PREFIX }],
    components: {
      securitySchemes: {
        [SCHEME]: {
          type: 'oauth2',
          description: 'A Postern JWT access token, sent as `Authorization: Bearer <token>`.',
          flows: {
            clientCredentials: {
              tokenUrl: `${issuer}/token`,
              scopes: { 'admin:read': 'read the configuration', 'admin:write': 'change the configuration' },
            },
          },
        },
      },
    },
    paths,
  }) as unknown as Record<string, unknown>;
}
