// The token-exchange settings at the command line, run as a user runs them (child processes on
// the test's database): an API's owner, a client's exchange permissions (which imply the grant
// type) and impersonation, and the refusals of bad ones.
import { describe, expect, it } from 'vitest';
import { cliCommands, field, useCliStore } from './support/cli.ts';
import { slowSuitesRunHere } from './support/database.ts';

const store = useCliStore('postern-cli-exchange-');
const { ok, json, refused } = cliCommands(() => store.env);
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

describe.runIf(slowSuitesRunHere)('postern apis update --owner and clients create/update --may-exchange', () => {
  it('sets, shows and takes away the settings', async () => {
    await ok(['apis', 'create', '--identifier', 'https://front.internal', '--scopes', 'front:use']);
    await ok(['apis', 'create', '--identifier', 'https://payments.internal', '--scopes', 'payments:charge payments:refund']);
    await ok(['clients', 'create', '--name', 'front']);
    expect(field(await ok(['apis', 'update', 'https://front.internal', '--owner', 'front']), 'owner')).not.toBe('(none)');

    const updated = await ok(['clients', 'update', 'front', '--may-exchange', 'https://payments.internal payments:charge', '--may-impersonate']);
    expect(field(updated, 'grant types')).toBe(`client_credentials ${GRANT}`);
    expect(field(updated, 'serves')).toBe('https://front.internal');
    expect(field(updated, 'may exchange')).toBe('https://payments.internal payments:charge');
    expect(field(updated, 'may impersonate')).toMatch(/^yes/);

    const shown = await json(['clients', 'show', 'front']);
    expect(shown).toMatchObject({
      mayExchange: [{ api: 'https://payments.internal', scopes: ['payments:charge'] }],
      mayImpersonate: true,
      ownsApis: ['https://front.internal'],
    });

    const cleared = await json(['clients', 'update', 'front', '--no-may-exchange', '--no-may-impersonate']);
    expect(cleared).toMatchObject({ mayExchange: [], mayImpersonate: false, grantTypes: ['client_credentials'] });
    expect((await json(['apis', 'update', 'https://front.internal', '--no-owner'])).ownerClientId).toBeNull();
  }, 120_000);

  it('gives a client its exchange permissions when it is created', async () => {
    const created = await ok(['clients', 'create', '--name', 'front-2', '--may-exchange', 'https://payments.internal payments:charge payments:refund']);
    expect(field(created, 'grant types')).toBe(`client_credentials ${GRANT}`);
    expect(field(created, 'may exchange')).toBe('https://payments.internal payments:charge payments:refund');
    expect(created).toMatch(/client_secret: /);
    const shown = await json(['clients', 'show', 'front-2']);
    expect(shown).toMatchObject({ mayExchange: [{ api: 'https://payments.internal', scopes: ['payments:charge', 'payments:refund'] }], mayImpersonate: false });
    const impersonating = await json(['clients', 'create', '--name', 'front-3', '--may-exchange', 'https://payments.internal payments:charge', '--may-impersonate']);
    expect(impersonating).toMatchObject({ mayImpersonate: true, grantTypes: ['client_credentials', GRANT] });
    // A refused permission creates nothing.
    await refused(['clients', 'create', '--name', 'front-4', '--may-exchange', 'https://payments.internal payments:steal'], 'does not define payments:steal');
    await refused(['clients', 'show', 'front-4'], 'front-4');
  }, 120_000);

  it('refuses scopes the API does not define, Postern\'s own API and malformed values', async () => {
    await refused(['clients', 'update', 'front', '--may-exchange', 'https://payments.internal payments:steal'], 'does not define payments:steal');
    await refused(['clients', 'update', 'front', '--may-exchange', 'urn:postern admin:write'], 'cannot be a target of token exchange');
    await refused(['clients', 'update', 'front', '--may-exchange', 'https://payments.internal'], '--may-exchange takes');
    await refused(['apis', 'update', 'https://front.internal', '--owner', 'nobody'], 'unknown client');
  }, 120_000);
});
