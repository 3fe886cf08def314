// postern routes ...: route policies (docs/routes.md).
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import type { RouteDecision, RouteRule, SenderConstraint } from '../domain/routes.ts';
import { invalid } from '../services/errors.ts';
// Each command loads the services when it runs: help and usage errors load no database code.
import type { RouteCheck } from '../services/route-check.ts';
import type * as routes from '../services/routes.ts';
import { action, collect, words } from './context.ts';
import { fields, parseDuration, table } from './output.ts';

const SENDER = ['dpop', 'mtls', 'any'];

function needs(rule: RouteRule): string {
  if (rule.public) return 'public (no token)';
  const parts = [
    rule.scopesAll.length ? `scopes ${rule.scopesAll.join(' ')}` : '',
    rule.scopesAny.length ? `one of ${rule.scopesAny.join(' ')}` : '',
    rule.roles.length ? `role ${rule.roles.join('|')}` : '',
    rule.clients.length ? `client ${rule.clients.join('|')}` : '',
    rule.senderConstrained ? `${rule.senderConstrained}-bound token` : '',
  ].filter(Boolean);
  return parts.join(', ') || 'a token for the API';
}

function show(rule: routes.RouteView): string {
  return fields([
    ['id', rule.id],
    ['api', rule.api],
    ['host', rule.host ?? '(any host)'],
    ['methods', rule.methods.join(' ') || '(any method)'],
    ['path', rule.path],
    ['needs', needs(rule)],
    ['rate limit', rule.rateLimitPerMinute === null ? null : `${rule.rateLimitPerMinute}/min per client`],
    ['cache', rule.cacheSeconds === null ? null : `${rule.cacheSeconds}s`],
  ]);
}

function decisionText(decision: RouteDecision): string {
  return decision.allow ? 'allow' : `deny (${decision.status} ${decision.error}): ${decision.why}`;
}

function showCheck(check: RouteCheck): string {
  const rule = check.rule;
  return fields([
    ['request', `${check.request.method} ${check.request.host} ${check.request.path}`],
    ['rule', rule ? `${rule.id}  ${rule.host ?? '*'} ${rule.methods.join(',') || '*'} ${rule.path}  (${rule.api})` : `none (${check.reason})`],
    ...(rule ? [['needs', needs(rule)] as [string, string]] : []),
    ...(check.caller ? [['token', `client ${check.caller.clientId}, subject ${check.caller.subject ?? '-'}, scopes now ${check.caller.scopes.join(' ') || '(none)'}, roles now ${check.caller.roles.join(' ') || '(none)'}`] as [string, string]] : []),
    ...(check.tokenProblem ? [['token', check.tokenProblem] as [string, string]] : []),
    ['decision', decisionText(check.decision)],
  ]);
}

interface RuleOptions {
  api?: string; host?: string; anyHost?: boolean; method: string[]; anyMethod?: boolean; path?: string;
  public?: boolean; scope: string[]; anyScope: string[]; role: string[]; client: string[];
  senderConstrained?: string | false; rateLimit?: number | false; cache?: number | false;
}

const perMinute = (value: string) => {
  if (!/^\d+$/.test(value)) throw invalid(`--rate-limit takes requests per minute, got "${value}"`);
  return Number(value);
};

function ruleOptions(command: Command): Command {
  return command
    .option('--host <host>', 'the host the rule covers, with :port if not the default (default: any host)')
    .option('--method <method>', 'a method the rule covers (repeatable; default: any method)', collect, [])
    .option('--scope <scope>', 'a scope the token must carry; all of them (repeatable)', collect, [])
    .option('--any-scope <scope>', 'scopes of which the token must carry one (repeatable)', collect, [])
    .option('--role <role>', 'roles of which the caller must hold one now (repeatable)', collect, [])
    .option('--client <client>', 'clients (id or name) of which the caller must be one (repeatable)', collect, [])
    .option('--public', 'no token needed')
    .addOption(new Option('--sender-constrained <kind>', 'the token must be DPoP-bound, mTLS-bound, or either').choices(SENDER))
    .option('--rate-limit <n>', 'requests per minute per client, for gateways that limit', perMinute)
    .option('--cache <duration>', 'how long a gateway may cache an allow (e.g. 30s)', parseDuration);
}

function toInput(opts: RuleOptions, update: boolean): routes.RouteUpdate {
  const listOf = (values: string[]) => (update && values.length === 0 ? undefined : words(values));
  return {
    api: opts.api,
    host: opts.anyHost ? null : opts.host,
    methods: opts.anyMethod ? [] : listOf(opts.method),
    path: opts.path,
    public: opts.public,
    scopesAll: listOf(opts.scope),
    scopesAny: listOf(opts.anyScope),
    roles: listOf(opts.role),
    clients: listOf(opts.client),
    senderConstrained: opts.senderConstrained === false ? null : opts.senderConstrained as SenderConstraint | undefined,
    rateLimitPerMinute: opts.rateLimit === false ? null : opts.rateLimit,
    cacheSeconds: opts.cache === false ? null : opts.cache,
  };
}

async function readToken(value: string | undefined): Promise<string | undefined> {
  if (value !== '-') return value;
  // `--token -`: from standard input, so the token stays out of the process list.
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

export function routesCommand(): Command {
  const command = new Command('routes').description('route policies: what a request to an API needs (docs/routes.md)');

  ruleOptions(command.command('create')
    .description('create a route rule')
    .requiredOption('--api <api>', 'the API (identifier, name or id), e.g. https://orders.internal')
    .requiredOption('--path <pattern>', 'path pattern: /orders, /orders/{id}, /orders/* (prefix)'))
    .action(action(async ({ db, out, audit }, opts: RuleOptions) => {
      const routes = await import('../services/routes.ts');
      const rule = await routes.createRoute(db, toInput(opts, false) as routes.RouteInput, audit);
      out.print(rule, (value) => `route rule created\n${show(value)}`);
    }));

  command.command('list')
    .description('list route rules')
    .option('--api <api>', 'only this API\'s rules')
    .option('--host <host>', 'only rules for this host')
    .action(action(async ({ db, out }, opts: { api?: string; host?: string }) => {
      const routes = await import('../services/routes.ts');
      out.print(await routes.listRoutes(db, opts), (list) => table(
        ['ID', 'API', 'HOST', 'METHODS', 'PATH', 'NEEDS'],
        list.map((rule) => [rule.id, rule.api, rule.host ?? '*', rule.methods.join(',') || '*', rule.path, needs(rule)]),
      ));
    }));

  command.command('show')
    .description('show a route rule')
    .argument('<id>', 'rule id')
    .action(action(async ({ db, out }, id: string) => {
      const routes = await import('../services/routes.ts');
      out.print(await routes.getRoute(db, id), show);
    }));

  // Each --no-x after its --x: then an update leaves what it does not name unchanged.
  ruleOptions(command.command('update')
    .description('change a route rule (list options given replace the list)')
    .argument('<id>', 'rule id')
    .option('--path <pattern>', 'new path pattern')
    .option('--any-host', 'cover every host')
    .option('--any-method', 'cover every method'))
    .option('--no-public', 'a token is needed again')
    .option('--no-sender-constrained', 'a Bearer token will do')
    .option('--no-rate-limit', 'no rate limit')
    .option('--no-cache', 'gateways may not cache an allow')
    .action(action(async ({ db, out, audit }, id: string, opts: RuleOptions) => {
      const routes = await import('../services/routes.ts');
      const rule = await routes.updateRoute(db, id, toInput(opts, true), audit);
      out.print(rule, (value) => `route rule updated\n${show(value)}`);
    }));

  command.command('delete')
    .description('delete a route rule')
    .argument('<id>', 'rule id')
    .action(action(async ({ db, out, audit }, id: string) => {
      const routes = await import('../services/routes.ts');
      const rule = await routes.deleteRoute(db, id, audit);
      out.print(rule, (value) => `route rule ${value.id} deleted`);
    }));

  command.command('check')
    .description('which rule covers a request, and whether a token passes it')
    .requiredOption('--method <method>', 'the request method')
    .requiredOption('--url <url>', 'the request URL, e.g. https://orders.example/orders/7')
    .option('--token <token>', 'an access token to evaluate ("-": read it from standard input)')
    .action(action(async ({ db, out, config }, opts: { method: string; url: string; token?: string }) => {
      const { checkRoute } = await import('../services/route-check.ts');
      const check = await checkRoute(db, { method: opts.method, url: opts.url, token: await readToken(opts.token) }, config.issuer);
      out.print(check, showCheck);
    }));

  command.command('export')
    .description('write the rules as Istio policies or an OPA data document and Rego policy')
    .addOption(new Option('--format <format>', 'what to write').choices(['istio', 'opa']).makeOptionMandatory())
    .option('--namespace <namespace>', 'istio: the namespace of the policies')
    .option('--selector <label=value>', 'istio: workload labels the policies apply to (repeatable)', collect, [])
    .option('--out <path>', 'istio: a file to write; opa: a folder for data.json and policy.rego (default: standard output)')
    .action(action(async ({ db, out, config }, opts: { format: 'istio' | 'opa'; namespace?: string; selector: string[]; out?: string }) => {
      const routes = await import('../services/routes.ts');
      const { exportIstio, exportOpa } = await import('../services/route-export.ts');
      const rules = await routes.listRoutes(db);
      const selector = opts.selector.length ? Object.fromEntries(opts.selector.map((pair) => {
        const at = pair.indexOf('=');
        if (at <= 0) throw invalid(`--selector takes label=value, got "${pair}"`);
        return [pair.slice(0, at), pair.slice(at + 1)];
      })) : undefined;
      const options = { issuer: config.issuer, namespace: opts.namespace, selector };
      const opa = opts.format === 'opa' ? exportOpa(rules, options) : undefined;
      const result = opa ?? exportIstio(rules, options);
      for (const warning of result.warnings) process.stderr.write(`postern: warning: ${warning}\n`);
      if (!opts.out) {
        out.write(result.text);
        return;
      }
      if (opa) {
        fs.mkdirSync(opts.out, { recursive: true });
        fs.writeFileSync(path.join(opts.out, 'data.json'), `${JSON.stringify(opa.data, null, 2)}\n`);
        fs.writeFileSync(path.join(opts.out, 'policy.rego'), opa.rego);
        out.print({ written: [path.join(opts.out, 'data.json'), path.join(opts.out, 'policy.rego')] }, (value) => `wrote ${value.written.join(' and ')}`);
      } else {
        fs.writeFileSync(opts.out, result.text);
        out.print({ written: [opts.out] }, (value) => `wrote ${value.written[0]}`);
      }
    }));

  return command;
}
