#!/usr/bin/env node
// The `postern` command. Postern runs its TypeScript sources directly, which needs Node 22.18+.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(`postern: Node.js 22.18 or newer is required (this is ${process.version})\n`);
  process.exit(1);
}
// Each command is a new process: keep the compiled (and type-stripped) modules between runs.
(await import('node:module')).enableCompileCache?.();
const { runCli } = await import('../src/cli/main.ts');
process.exitCode = await runCli(process.argv.slice(2));
