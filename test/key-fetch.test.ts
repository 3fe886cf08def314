// Fetching a trusted issuer's keys: production refuses plain http and private, loopback and
// link-local targets (also behind a name), and Cache-Control decides how long keys are kept.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchJson, isPublicAddress, maxAgeOf, type KeyFetchSettings } from '../src/platform/key-fetch.ts';

const production: KeyFetchSettings = { timeoutMs: 1000, maxBytes: 4096, allowInsecure: false, allowPrivateAddresses: false };
const development: KeyFetchSettings = { ...production, allowInsecure: true };
let server: http.Server;
let port: number;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/big') {
      res.setHeader('content-length', '100000');
      return res.end('x'.repeat(100_000));
    }
    res.setHeader('cache-control', 'public, max-age=120');
    return res.end('{"keys":[]}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('fetching keys', () => {
  it('fetches over http on loopback in development only, with Cache-Control', async () => {
    const fetched = await fetchJson(`http://127.0.0.1:${port}/jwks`, development);
    expect(fetched.body).toEqual({ keys: [] });
    expect(maxAgeOf(fetched.cacheControl)).toBe(120);
    await expect(fetchJson(`http://127.0.0.1:${port}/jwks`, production)).rejects.toThrow(/https only/);
  });

  it('refuses private, loopback and link-local targets in production, by address or by name', async () => {
    for (const url of ['https://127.0.0.1/jwks', 'https://10.1.2.3/jwks', 'https://169.254.169.254/latest', 'https://[::1]/jwks', 'https://[fd00::1]/jwks']) {
      await expect(fetchJson(url, production), url).rejects.toThrow(/private, loopback and link-local/);
    }
    await expect(fetchJson(`https://localhost:${port}/jwks`, production)).rejects.toThrow(/resolves to a private or reserved address/);
  });

  it('stops at the size cap', async () => {
    await expect(fetchJson(`http://127.0.0.1:${port}/big`, development)).rejects.toThrow(/larger than 4096 bytes/);
  });

  it('reads Cache-Control', () => {
    expect(maxAgeOf(undefined)).toBeUndefined();
    expect(maxAgeOf('no-store')).toBe(0);
    expect(maxAgeOf('max-age=abc')).toBeUndefined();
    expect(isPublicAddress('8.8.8.8')).toBe(true);
    expect(isPublicAddress('100.64.0.1')).toBe(false);
  });
});
