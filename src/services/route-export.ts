// `postern routes export`: the route policies in the forms a mesh enforces, so that teams who
// enforce there keep Postern as the one source of truth (docs/routes.md, "Export").
//
// - istio: a RequestAuthentication (issuer, jwksUri, the APIs as audiences) and one ALLOW
//   AuthorizationPolicy per API. Istio ORs ALLOW rules, so "the most specific rule wins" is kept
//   by excluding from each rule the paths of the more specific rules that overlap it (notPaths,
//   split by method where they share only some methods).
// - opa: a data document (the rules in the order they are tried) and a Rego policy for the
//   OPA-Envoy plugin that takes the first rule covering the request.
//
// A mesh sees the token's claims, not Postern's current grants, and cannot check a DPoP proof or
// a certificate binding: rules that require a sender-constrained token are left out of the Istio
// policies and refused by the Rego policy (fail closed), and each export says so in `warnings`.
import { stringify } from 'yaml';
import { PROVIDER_ROUTES } from '../domain/endpoints.ts';
import { parsePathPattern, type PathPattern } from '../domain/route-patterns.ts';
import { RouteTable, type RouteRule } from '../domain/routes.ts';
import { ROUTES_REGO } from './route-export-rego.ts';

export interface RouteExport {
  /** The text to write: YAML documents (istio) or JSON (opa). */
  text: string;
  /** Rules the target cannot enforce as Postern does. */
  warnings: string[];
}

export interface ExportOptions {
  issuer: string;
  /** Istio: the namespace of the policies (default: none, the manifest's apply namespace). */
  namespace?: string;
  /** Istio: workload labels the policies select, e.g. { app: 'orders' }. */
  selector?: Record<string, string>;
}

/** Every rule in the order a request tries them: host rules first, then any-host rules. */
export function orderRules(rules: readonly RouteRule[]): RouteRule[] {
  const table = new RouteTable(rules);
  const hosts = [...new Set(rules.map((rule) => rule.host).filter((host): host is string => host !== null))].sort();
  const ordered: RouteRule[] = [];
  const seen = new Set<string>();
  for (const host of [...hosts, null]) {
    for (const rule of table.rulesFor(host)) {
      if (rule.host === host && !seen.has(rule.id)) {
        seen.add(rule.id);
        ordered.push(rule);
      }
    }
  }
  return ordered;
}

export function jwksUri(issuer: string): string {
  return issuer.replace(/\/$/, '') + PROVIDER_ROUTES.jwks;
}

function warningsFor(rules: readonly RouteRule[], target: string): string[] {
  return rules.filter((rule) => rule.senderConstrained !== null).map((rule) =>
    `rule ${rule.id} (${rule.host ?? '*'} ${rule.methods.join(',') || '*'} ${rule.path}) requires a ${rule.senderConstrained} sender-constrained token, `
    + `which ${target} cannot verify: its requests are denied there; route them through Postern's decision endpoint`);
}

// ---- Istio ----

/** Istio path syntax: exact, `{*}` for one segment, a trailing `*` (or `{**}` after a template). */
function istioPath(pattern: PathPattern): string {
  const templated = pattern.segments.some((segment) => segment.kind === 'param');
  return '/' + pattern.segments.map((segment) => {
    if (segment.kind === 'literal') return segment.value;
    if (segment.kind === 'param') return '{*}';
    return templated ? '{**}' : '*';
  }).join('/');
}

interface IstioOperation { hosts?: string[]; methods?: string[]; notMethods?: string[]; paths: string[]; notPaths?: string[] }

/** Whether two rules can cover one request: hosts compatible, a method in common, paths overlapping. */
function overlaps(a: RouteRule, pa: PathPattern, b: RouteRule, pb: PathPattern): boolean {
  if (a.host !== null && b.host !== null && a.host !== b.host) return false;
  if (a.methods.length && b.methods.length && !a.methods.some((method) => b.methods.includes(method))) return false;
  const n = Math.max(pa.segments.length, pb.segments.length);
  for (let i = 0; i < n; i++) {
    const x = pa.segments[i];
    const y = pb.segments[i];
    if (x?.kind === 'rest' || y?.kind === 'rest') return true;
    if (!x || !y) return false;
    if (x.kind === 'literal' && y.kind === 'literal' && x.value !== y.value) return false;
    if ((x.kind === 'param' && y.kind === 'literal' && y.value === '') || (y.kind === 'param' && x.kind === 'literal' && x.value === '')) return false;
  }
  return true;
}

function istioOperations(rule: RouteRule, pattern: PathPattern, before: { rule: RouteRule; pattern: PathPattern }[]): IstioOperation[] {
  let operations: IstioOperation[] = [{
    ...(rule.host ? { hosts: [rule.host] } : {}),
    ...(rule.methods.length ? { methods: [...rule.methods] } : {}),
    paths: [istioPath(pattern)],
  }];
  for (const other of before) {
    if (!overlaps(rule, pattern, other.rule, other.pattern)) continue;
    const excluded = istioPath(other.pattern);
    const next: IstioOperation[] = [];
    for (const operation of operations) {
      const methods = operation.methods;
      const coversAll = other.rule.methods.length === 0 || (methods !== undefined && methods.every((method) => other.rule.methods.includes(method)));
      if (coversAll) {
        next.push({ ...operation, notPaths: [...new Set([...(operation.notPaths ?? []), excluded])] });
        continue;
      }
      // The more specific rule takes only some methods: those lose its paths, the others keep them.
      const shared = methods ? methods.filter((method) => other.rule.methods.includes(method)) : other.rule.methods;
      if (shared.length === 0) {
        next.push(operation); // no method in common: (an empty list would mean every method to Istio)
        continue;
      }
      next.push({ ...operation, methods: shared, notPaths: [...new Set([...(operation.notPaths ?? []), excluded])] });
      if (methods) {
        const rest = methods.filter((method) => !other.rule.methods.includes(method));
        if (rest.length) next.push({ ...operation, methods: rest });
      } else {
        next.push({ ...operation, notMethods: [...new Set([...(operation.notMethods ?? []), ...other.rule.methods])] });
      }
    }
    operations = next;
  }
  return operations;
}

function istioConditions(rule: RouteRule): { key: string; values: string[] }[] {
  return [
    { key: 'request.auth.audiences', values: [rule.api] },
    ...rule.scopesAll.map((scope) => ({ key: 'request.auth.claims[scope]', values: [scope] })),
    ...(rule.scopesAny.length ? [{ key: 'request.auth.claims[scope]', values: rule.scopesAny }] : []),
    ...(rule.roles.length ? [{ key: 'request.auth.claims[roles]', values: rule.roles }] : []),
    ...(rule.clients.length ? [{ key: 'request.auth.claims[client_id]', values: rule.clients }] : []),
  ];
}

function slug(text: string): string {
  return text.toLowerCase().replace(/^[a-z]+:\/\//, '').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 50) || 'api';
}

export function exportIstio(rules: readonly RouteRule[], options: ExportOptions): RouteExport {
  const ordered = orderRules(rules).map((rule) => ({ rule, pattern: parsePathPattern(rule.path) as PathPattern }));
  const metadata = (name: string) => ({ name, ...(options.namespace ? { namespace: options.namespace } : {}), labels: { 'app.kubernetes.io/managed-by': 'postern' } });
  const selector = options.selector ? { selector: { matchLabels: options.selector } } : {};
  const apis = [...new Set(ordered.map(({ rule }) => rule.api))].sort();
  const documents: object[] = [{
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    metadata: metadata('postern'),
    spec: { ...selector, jwtRules: [{ issuer: options.issuer, jwksUri: jwksUri(options.issuer), audiences: apis, forwardOriginalToken: true }] },
  }];
  for (const api of apis) {
    const istioRules = ordered.flatMap(({ rule, pattern }, index) => {
      if (rule.api !== api || rule.senderConstrained !== null) return [];
      return [{
        to: istioOperations(rule, pattern, ordered.slice(0, index)).map((operation) => ({ operation })),
        ...(rule.public ? {} : { from: [{ source: { requestPrincipals: [`${options.issuer}/*`] } }], when: istioConditions(rule) }),
      }];
    });
    documents.push({
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { ...metadata(`postern-${slug(api)}`), annotations: { 'postern.dev/api': api } },
      spec: { ...selector, action: 'ALLOW', rules: istioRules },
    });
  }
  return {
    text: documents.map((document) => stringify(document, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n'),
    warnings: warningsFor(rules, 'Istio'),
  };
}

// ---- OPA ----

export interface OpaRule {
  id: string;
  api: string;
  host: string | null;
  methods: string[];
  path: string;
  /** The segments before a trailing `*`: { literal } or { param }. */
  segments: ({ literal: string } | { param: string })[];
  prefix: boolean;
  public: boolean;
  scopes_all: string[];
  scopes_any: string[];
  roles: string[];
  clients: string[];
  sender_constrained: string | null;
}

export function opaData(rules: readonly RouteRule[], issuer: string) {
  const ordered: OpaRule[] = orderRules(rules).map((rule) => {
    const pattern = parsePathPattern(rule.path) as PathPattern;
    return {
      id: rule.id,
      api: rule.api,
      host: rule.host,
      methods: rule.methods,
      path: rule.path,
      segments: pattern.segments.flatMap((segment): OpaRule['segments'] => segment.kind === 'literal' ? [{ literal: segment.value }]
        : segment.kind === 'param' ? [{ param: segment.name }] : []),
      prefix: pattern.prefix,
      public: rule.public,
      scopes_all: rule.scopesAll,
      scopes_any: rule.scopesAny,
      roles: rule.roles,
      clients: rule.clients,
      sender_constrained: rule.senderConstrained,
    };
  });
  return { postern: { issuer, jwks_uri: jwksUri(issuer), rules: ordered } };
}

export function exportOpa(rules: readonly RouteRule[], options: ExportOptions): RouteExport & { data: ReturnType<typeof opaData>; rego: string } {
  const data = opaData(rules, options.issuer);
  return {
    data,
    rego: ROUTES_REGO,
    text: `${JSON.stringify({ data, policy: ROUTES_REGO }, null, 2)}\n`,
    warnings: warningsFor(rules, 'OPA'),
  };
}
