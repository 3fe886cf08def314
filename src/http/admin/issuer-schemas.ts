// Schemas of the admin API's trusted issuers (workload identity) and of a client's federation.
import { z } from 'zod';
import { ISSUER_KINDS } from '../../domain/trusted-issuers.ts';
import type { FederationView, IssuerView } from '../../services/trusted-issuers.ts';

const timestamp = z.string().meta({ format: 'date-time' });
const jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(20) })
  .meta({ description: 'the issuer\'s public keys, given once (a JWK Set, or a SPIFFE trust bundle)' });

export const createIssuerBody = z.strictObject({
  name: z.string().min(1).max(100),
  issuer: z.string().min(1).max(2000).meta({ description: 'the `iss` of its tokens, exactly; for SPIFFE JWT-SVIDs without `iss`, spiffe://<trust domain>' }),
  kind: z.enum(ISSUER_KINDS).optional().meta({ description: 'oidc by default' }),
  discovery: z.boolean().optional().meta({ description: 'fetch the keys named by the issuer\'s /.well-known/openid-configuration' }),
  jwksUri: z.string().min(1).max(2000).optional().meta({ description: 'https URL of its JWK Set (a SPIFFE bundle endpoint)' }),
  jwks: jwks.optional(),
}).meta({ id: 'CreateIssuer', description: 'exactly one of discovery, jwksUri, jwks' });

export const updateIssuerBody = z.strictObject({
  name: z.string().min(1).max(100).optional(),
  issuer: z.string().min(1).max(2000).optional(),
  kind: z.enum(ISSUER_KINDS).optional(),
  discovery: z.boolean().optional(),
  jwksUri: z.string().min(1).max(2000).optional(),
  jwks: jwks.optional(),
  enabled: z.boolean().optional().meta({ description: 'false refuses its tokens at once everywhere' }),
}).meta({ id: 'UpdateIssuer' });

export const deleteIssuerQuery = z.strictObject({
  force: z.enum(['true', 'false']).transform((value) => value === 'true').optional()
    .meta({ description: 'delete even when clients are bound to it (their bindings go too)' }),
});

export const issuerView = z.object({
  id: z.string(),
  name: z.string(),
  issuer: z.string(),
  kind: z.enum(ISSUER_KINDS),
  jwksSource: z.enum(['discovery', 'jwks_uri', 'static']),
  jwksUri: z.string().nullable(),
  staticKids: z.array(z.string()).nullable(),
  enabled: z.boolean(),
  clients: z.array(z.string()).meta({ description: 'names of the clients bound to its subjects' }),
  createdAt: timestamp,
  updatedAt: timestamp,
}).meta({ id: 'Issuer' }) satisfies z.ZodType<IssuerView>;

export const federationBody = z.strictObject({
  issuer: z.string().min(1).max(2000).meta({ description: 'trusted issuer id or name' }),
  subject: z.string().min(1).max(1000).meta({ description: 'the token\'s sub, exactly' }),
  claims: z.record(z.string().max(100), z.string().max(1000)).optional()
    .meta({ description: 'claims the token must carry with exactly these values' }),
}).meta({ id: 'Federation', description: 'federated_jwt: the platform token that authenticates the client (docs/workload-identity.md)' });

export const federationView = z.object({
  issuer: z.string(),
  issuerId: z.string(),
  subject: z.string(),
  claims: z.record(z.string(), z.string()),
}).meta({ id: 'FederationView' }) satisfies z.ZodType<FederationView>;
