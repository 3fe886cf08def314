// Prometheus metrics: one registry per process, with named instruments that any layer may be
// handed (login protection counts logins and lockouts here). Labels take only bounded values
// (route names, grant types, registered APIs, error codes), never a client id or an address.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  httpRequests: Counter<'route' | 'method' | 'status'>;
  httpDuration: Histogram<'route' | 'method' | 'status'>;
  tokensIssued: Counter<'grant_type' | 'api'>;
  tokenErrors: Counter<'error'>;
  introspections: Counter<'result'>;
  revocations: Counter<'result'>;
  /** For sign-in: outcome is `success`, `invalid_credentials`, `locked`, ... */
  logins: Counter<'outcome'>;
  lockouts: Counter;
  rateLimited: Counter<'limiter'>;
  /** Database checks /readyz made (one answers every probe for a second). */
  readinessChecks: Counter;
  /** Requests answered in front of the provider (`token`, `introspection`): docs/benchmarks.md. */
  fastPathAnswers: Counter<'endpoint'>;
  /** Decisions of the gateway endpoint: route is a rule id (or `none`), never a raw path. */
  gateDecisions: Counter<'route' | 'outcome'>;
  gateDuration: Histogram<'outcome'>;
  /** Sources for the gauges read at scrape time. */
  watchPool(pool: { totalCount: number; idleCount: number; waitingCount: number } | undefined): void;
  watchSigningKeys(keys: () => Promise<{ kid: string; createdAt: Date }[]>): void;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'postern_' });
  const registers = [registry];
  let pool: Parameters<Metrics['watchPool']>[0];
  let keys: () => Promise<{ kid: string; createdAt: Date }[]> = async () => [];

  new Gauge({
    name: 'postern_db_pool_connections',
    help: 'Database pool connections by state (total, idle, waiting requests)',
    labelNames: ['state'],
    registers,
    collect() {
      this.reset();
      if (!pool) return;
      this.set({ state: 'total' }, pool.totalCount);
      this.set({ state: 'idle' }, pool.idleCount);
      this.set({ state: 'waiting' }, pool.waitingCount);
    },
  });
  new Gauge({
    name: 'postern_signing_key_age_seconds',
    help: 'Age of each signing key in use',
    labelNames: ['kid'],
    registers,
    // Every worker reports the same keys: aggregate by max, not sum.
    aggregator: 'max',
    async collect() {
      // A scrape while the database is away reports no keys rather than failing.
      const current = await keys().catch(() => []);
      this.reset();
      for (const key of current) this.set({ kid: key.kid }, Math.round((Date.now() - key.createdAt.getTime()) / 1000));
    },
  });

  return {
    registry,
    httpRequests: new Counter({ name: 'postern_http_requests_total', help: 'HTTP requests by route, method and status', labelNames: ['route', 'method', 'status'], registers }),
    httpDuration: new Histogram({
      name: 'postern_http_request_duration_seconds',
      help: 'HTTP request latency by route, method and status',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    tokensIssued: new Counter({ name: 'postern_tokens_issued_total', help: 'Access tokens issued by grant type and API', labelNames: ['grant_type', 'api'], registers }),
    tokenErrors: new Counter({ name: 'postern_token_errors_total', help: 'Token endpoint errors by error code', labelNames: ['error'], registers }),
    introspections: new Counter({ name: 'postern_introspections_total', help: 'Introspection answers by result (active, inactive, error)', labelNames: ['result'], registers }),
    revocations: new Counter({ name: 'postern_revocations_total', help: 'Revocation answers by result (ok, error)', labelNames: ['result'], registers }),
    logins: new Counter({ name: 'postern_logins_total', help: 'Sign-in attempts by outcome', labelNames: ['outcome'], registers }),
    lockouts: new Counter({ name: 'postern_lockouts_total', help: 'Sign-in lockouts started', registers }),
    rateLimited: new Counter({ name: 'postern_rate_limited_total', help: 'Requests refused by a rate limit, by limiter', labelNames: ['limiter'], registers }),
    readinessChecks: new Counter({ name: 'postern_readiness_checks_total', help: 'Database checks made for /readyz (one answers every probe for a second)', registers }),
    fastPathAnswers: new Counter({ name: 'postern_fast_path_answers_total', help: 'Requests answered in front of oidc-provider, by endpoint (token, introspection)', labelNames: ['endpoint'], registers }),
    gateDecisions: new Counter({ name: 'postern_gate_decisions_total', help: 'Decisions of the gateway endpoint by route rule and outcome', labelNames: ['route', 'outcome'], registers }),
    gateDuration: new Histogram({
      name: 'postern_gate_decision_seconds',
      help: 'Latency of the gateway endpoint by outcome',
      labelNames: ['outcome'],
      buckets: [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    }),
    watchPool: (value) => { pool = value; },
    watchSigningKeys: (source) => { keys = source; },
  };
}
