// The texts of oidc-provider that Postern recognises (src/oidc/provider-texts.ts), pinned to the
// library version they were read in: the installed version must be that one, each text must still
// be in its sources, the provider must still refuse a request naming no client with that very
// description, and the logout form it hands logoutSource must still read as Postern reads it. An
// upgrade that changes any of them fails here, by name, before an answer changes silently.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GRANT_TYPE_NOT_ALLOWED, NO_CLIENT_AUTHENTICATION, readLogoutForm, REFUSAL_DETAILS, VERIFIED_WITH,
} from '../src/oidc/provider-texts.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { ROOT } from './support/process.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

const LIBRARY = path.join(ROOT, 'node_modules/oidc-provider');
const source = (file: string) => fs.readFileSync(path.join(LIBRARY, 'lib', file), 'utf8');

let tdb: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
});

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

describe('oidc-provider texts Postern recognises', () => {
  it('were read in the installed version of oidc-provider', () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(LIBRARY, 'package.json'), 'utf8')) as { version: string };
    expect(version, `oidc-provider is ${version}; src/oidc/provider-texts.ts was read in ${VERIFIED_WITH}: `
      + 'check each of its texts in the new version, then set VERIFIED_WITH').toBe(VERIFIED_WITH);
  });

  it('are each still thrown where they were read', () => {
    const thrown: [string, string][] = [
      ['shared/client_auth.js', NO_CLIENT_AUTHENTICATION],
      ['actions/token.js', GRANT_TYPE_NOT_ALLOWED],
      ['helpers/validate_dpop.js', REFUSAL_DETAILS.dpopReplay],
      ['helpers/sender_constraints.js', REFUSAL_DETAILS.dpopMissing],
      ['helpers/sender_constraints.js', REFUSAL_DETAILS.certificateMissing],
      ['actions/grants/refresh_token.js', REFUSAL_DETAILS.jktMismatch],
      ['actions/grants/refresh_token.js', REFUSAL_DETAILS.certificateMissing],
    ];
    const missing = thrown.filter(([file, text]) => !source(file).includes(`'${text}'`)).map(([file, text]) => `${file}: "${text}"`);
    expect(missing).toEqual([]);
  });

  it('include the description of a request that names no client', async () => {
    const seen: unknown[] = [];
    const listener = (_ctx: unknown, error: { error_description?: unknown }) => seen.push(error.error_description);
    server.app.provider.on('introspection.error', listener);
    try {
      const res = await postForm(`${server.url}/token/introspection`, { token: 'anything' });
      // What the client gets is Postern's answer (RFC 6749 §5.2), because the text was recognised.
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: 'invalid_client', error_description: 'client authentication is required' });
      expect(seen).toEqual([NO_CLIENT_AUTHENTICATION]);
    } finally {
      server.app.provider.off('introspection.error', listener);
    }
  });

  it('include the logout form, read back as the provider writes it', () => {
    const template = /const formHtml = `([^`]+)`;/.exec(source('actions/end_session.js'))?.[1];
    expect(template, 'lib/actions/end_session.js no longer builds the logout form as it did').toBeDefined();
    const form = template!.replace('${action}', 'https://issuer.example/session/end/confirm').replace('${secret}', 'c2VjcmV0');
    expect(readLogoutForm(form)).toEqual({ action: 'https://issuer.example/session/end/confirm', xsrf: 'c2VjcmV0' });
  });
});
