// Schemas of the admin API's route policy endpoints (docs/routes.md); see schemas.ts for the rest.
import { z } from 'zod';
import type { RouteView } from '../../services/routes.ts';

// Bounds keep hostile input small; the service applies the precise rules (patterns, hosts, scopes).
const ref = z.string().min(1).max(2000);
const names = z.array(z.string().min(1).max(200)).max(50);
const timestamp = z.string().meta({ format: 'date-time' });
const senderConstrained = z.enum(['dpop', 'mtls', 'any']).nullable()
  .meta({ description: 'the token must be DPoP-bound, mTLS-bound, or either; null: a Bearer token will do' });

const fields = {
  host: z.string().min(1).max(300).nullable().optional()
    .meta({ description: 'the Host the rule covers, lowercased, with :port if not the default; null or absent: any host' }),
  methods: z.array(z.string().min(1).max(32)).max(20).optional().meta({ description: 'methods it covers (uppercase); empty: any method' }),
  path: z.string().min(1).max(1024)
    .meta({ description: 'path pattern: exact (/orders), {param} for one segment (/orders/{id}), trailing * for a prefix (/orders/*)' }),
  public: z.boolean().optional().meta({ description: 'no token needed' }),
  scopesAll: names.optional().meta({ description: 'scopes the token must all carry (the API must define them)' }),
  scopesAny: names.optional().meta({ description: 'scopes of which the token must carry one' }),
  roles: names.optional().meta({ description: 'roles (ids or names) of which the caller must hold one now' }),
  clients: names.optional().meta({ description: 'clients (ids or names) of which the caller must be one' }),
  senderConstrained: senderConstrained.optional(),
  rateLimitPerMinute: z.int().min(1).max(1_000_000).nullable().optional().meta({ description: 'requests per minute per client, for gateways that limit' }),
  cacheSeconds: z.int().min(0).max(86_400).nullable().optional().meta({ description: 'how long a gateway may cache an allow' }),
};

export const createRouteBody = z.strictObject({
  api: ref.meta({ description: 'the API: identifier (resource indicator), name or id' }),
  ...fields,
}).meta({ id: 'CreateRoute' });

export const updateRouteBody = z.strictObject({ ...fields, path: fields.path.optional() })
  .meta({ id: 'UpdateRoute', description: 'the fields to change; the rule is checked whole again' });

export const routeParams = z.strictObject({ id: ref.meta({ description: 'rule id (route_...)' }) });

export const listRoutesQuery = z.strictObject({
  api: ref.optional().meta({ description: 'only this API\'s rules (identifier, name or id)' }),
  host: z.string().min(1).max(300).optional().meta({ description: 'only rules for this host' }),
});

export const checkRouteQuery = z.strictObject({
  method: z.string().min(1).max(32),
  url: z.string().min(1).max(4000).meta({ description: 'the request URL, e.g. https://orders.example/orders/7' }),
});

export const exportRoutesQuery = z.strictObject({
  format: z.enum(['istio', 'opa']),
  namespace: z.string().min(1).max(63).optional().meta({ description: 'istio: the namespace of the policies' }),
});

export const routeView = z.object({
  id: z.string(),
  api: z.string(),
  host: z.string().nullable(),
  methods: z.array(z.string()),
  path: z.string(),
  public: z.boolean(),
  scopesAll: z.array(z.string()),
  scopesAny: z.array(z.string()),
  roles: z.array(z.string()),
  clients: z.array(z.string()),
  senderConstrained,
  rateLimitPerMinute: z.int().nullable(),
  cacheSeconds: z.int().nullable(),
  createdAt: timestamp,
  updatedAt: timestamp,
}).meta({ id: 'Route' }) satisfies z.ZodType<RouteView>;

export const routeCheck = z.object({
  request: z.object({ host: z.string(), method: z.string(), path: z.string() }),
  rule: routeView.omit({ createdAt: true, updatedAt: true }).nullable(),
  reason: z.enum(['no-rules-for-host', 'no-rule-matched']).optional(),
  decision: z.object({
    allow: z.boolean(),
    status: z.int().optional(),
    error: z.string().optional(),
    neededScope: z.string().optional(),
    why: z.string().optional(),
  }),
}).meta({ id: 'RouteCheck', description: 'the rule that covers the request and the decision for a request without a token' });

export const routeExport = z.object({
  format: z.enum(['istio', 'opa']),
  text: z.string().meta({ description: 'istio: YAML documents; opa: JSON with the data document and the Rego policy' }),
  warnings: z.array(z.string()),
}).meta({ id: 'RouteExport' });
