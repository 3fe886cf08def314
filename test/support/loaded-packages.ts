// Loaded into a command with `node --import` (cli-loading.test.ts): records every package the
// command resolves, by import or require, and prints their names as the last line on stderr.
import module from 'node:module';

const packages = new Set<string>();
module.registerHooks({
  resolve(specifier, context, nextResolve) {
    const resolved = nextResolve(specifier, context);
    const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(resolved.url);
    if (match) packages.add(match[1]!);
    return resolved;
  },
});
process.on('exit', () => {
  process.stderr.write(`loaded packages: ${JSON.stringify([...packages].sort())}\n`);
});
