// `postern issuers ...` and `postern clients create --federated-issuer ...`, run as a user runs
// them (child processes, on the test's database), and the admin API's /issuers routes.
import fs from 'node:fs';
import path from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import { useCliStore } from './support/cli.ts';
import { slowSuitesRunHere } from './support/database.ts';
import { describeRun, postern } from './support/process.ts';

const CLI_STEPS_TIMEOUT_MS = 120_000;
const store = useCliStore('postern-cli-issuers-');

async function ok(args: string[]): Promise<string> {
  const result = await postern(args, store.env);
  const what = describeRun(args, result);
  expect(result.code, what).toBe(0);
  expect(result.stderr, what).toBe('');
  return result.stdout;
}

async function refused(args: string[], message: string): Promise<void> {
  const result = await postern(args, store.env);
  const what = describeRun(args, result);
  expect(result.code, what).toBe(1);
  expect(result.stderr, what).toMatch(/^postern: [^\n]+\n$/);
  expect(result.stderr, what).toContain(message);
}

describe.runIf(slowSuitesRunHere)('postern issuers and federated clients', () => {
  it('creates, shows, binds, updates and deletes', async () => {
    const out = await ok(['issuers', 'create', 'k8s-prod', '--issuer', 'https://oidc.eks.example.com/id/ABC', '--discovery', '--kind', 'kubernetes']);
    expect(out).toMatch(/^kind:\s+kubernetes$/m);
    expect(out).toMatch(/^keys:\s+discovery/m);
    await refused(['issuers', 'create', 'plain', '--issuer', 'http://issuer.example.com', '--discovery'], 'must use https');
    await refused(['issuers', 'create', 'both', '--issuer', 'https://x.example.com', '--discovery', '--jwks-uri', 'https://x.example.com/jwks'], 'exactly one of');

    const role = await ok(['roles', 'create', 'reader']);
    expect(role).toContain('role created');
    const client = await ok(['clients', 'create', '--name', 'orders', '--role', 'reader', '--federated-issuer', 'k8s-prod',
      '--federated-subject', 'system:serviceaccount:shop:orders', '--claim', 'environment=prod']);
    expect(client).toMatch(/^auth method:\s+federated_jwt$/m);
    expect(client).toMatch(/^federated subject:\s+system:serviceaccount:shop:orders$/m);
    expect(client).not.toContain('client_secret:');
    await refused(['clients', 'create', '--name', 'orders-2', '--federated-issuer', 'k8s-prod', '--federated-subject', 'system:serviceaccount:shop:orders'],
      'another client is bound to subject');
    await refused(['clients', 'create', '--name', 'x', '--federated-issuer', 'nope', '--federated-subject', 's'], 'unknown trusted issuer "nope"');

    const { publicKey } = await generateKeyPair('ES256');
    const file = path.join(store.home, 'bundle.json');
    fs.writeFileSync(file, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'spire-1', use: 'jwt-svid' }] }));
    const spire = await ok(['issuers', 'create', 'spire', '--issuer', 'spiffe://example.org', '--kind', 'spiffe', '--jwks-file', file]);
    expect(spire).toMatch(/^keys:\s+given once: spire-1$/m);
    await refused(['clients', 'create', '--name', 'svid', '--federated-issuer', 'spire', '--federated-subject', 'spiffe://other.org/x'], 'SPIFFE ID of spiffe://example.org');

    const listed = JSON.parse(await ok(['--json', 'issuers', 'list']));
    expect(listed.map((i: { name: string }) => i.name)).toEqual(['k8s-prod', 'spire']);
    expect(await ok(['issuers', 'update', 'k8s-prod', '--disable'])).toMatch(/^enabled:\s+no$/m);
    await refused(['issuers', 'delete', 'k8s-prod'], 'authenticates orders');
    expect(await ok(['issuers', 'delete', 'k8s-prod', '--force'])).toContain('clients left without a way to authenticate: orders');
    expect(await ok(['clients', 'show', 'orders'])).not.toContain('federated subject');
  }, CLI_STEPS_TIMEOUT_MS);
});
