#!/usr/bin/env node
// Probes the Postern server of this machine or container, reading the same settings it reads
// (PORT, HOST, TLS_CERT_FILE): exit 0 when /readyz answers 200 (/healthz with --live), 1 with
// one line saying why otherwise. For container health checks (Dockerfile HEALTHCHECK); it opens
// no database and reads no key. Node 22.18+ (it runs the TypeScript sources, as the server does).
(await import('node:module')).enableCompileCache?.();
const { runHealthcheck } = await import('../src/platform/healthcheck.ts');
const { readListenerSettings } = await import('../src/config.ts');
process.exitCode = await runHealthcheck(process.argv.slice(2), readListenerSettings);
