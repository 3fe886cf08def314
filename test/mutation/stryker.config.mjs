// Mutation testing of the policy modules: who gets which token, how a client authenticates,
// when a login is refused and who may call the admin API. `npm run test:mutation`; not run in CI.
// The report is written to reports/mutation/ (HTML and JSON).
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'test/mutation/vitest.config.mjs', related: false },
  coverageAnalysis: 'perTest',
  mutate: [
    'src/oidc/token-policy.ts',
    'src/oidc/resource-policy.ts',
    'src/services/client-auth.ts',
    'src/oidc/client-certificates.ts',
    'src/services/login-protection.ts',
    // The admin API's authorization: the scope a route needs, and the Bearer check (line ranges:
    // requiredScope, and challenge/actorOf/authenticate; move them with the code).
    'src/http/admin/openapi.ts:10-12',
    'src/http/admin/router.ts:49-97',
  ],
  // The machine is small and shared: two sandboxes, and a generous timeout (each test file
  // starts a server on a fresh database).
  concurrency: 2,
  timeoutMS: 60_000,
  dryRunTimeoutMinutes: 30,
  timeoutFactor: 2,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  thresholds: { high: 90, low: 80, break: null },
};
