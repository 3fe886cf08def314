// The tests the mutation run uses: those that exercise the policy modules named in
// stryker.config.mjs (token and resource policy, client authentication, login protection, the
// admin API's authorization). Others are left out to keep a run within reach on a small machine.
// MUTATION_TESTS (comma-separated files) narrows it further, for a run on one module.
import { defineConfig } from 'vitest/config';
import base from '../../vitest.config.ts';

const ALL = [
  'test/policy-*.test.ts',
  'test/admin-auth.test.ts',
  'test/admin-authority.test.ts',
  'test/client-credentials.test.ts',
  'test/introspection-policy.test.ts',
  'test/token-refusals.test.ts',
  'test/login-protection.test.ts',
  'test/private-key-jwt.test.ts',
  'test/mtls.test.ts',
  'test/network-allow-list.test.ts',
];

// Not mergeConfig: it would add these to the base config's include instead of replacing it.
export default defineConfig({
  ...base,
  test: { ...base.test, include: process.env.MUTATION_TESTS ? process.env.MUTATION_TESTS.split(',') : ALL },
});
