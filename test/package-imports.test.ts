// Every package the code imports is declared in package.json: what the server and the CLI import
// at run time under `dependencies` (the image installs only those, `npm ci --omit=dev`), what only
// tests, benchmarks and type imports use under either. A package that is merely present in
// node_modules, brought by another one, can vanish with that one's next release.
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support/process.ts';

const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

function filesUnder(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((name) => /\.(ts|js)$/.test(name))
    .map((name) => path.join(dir, name));
}

/** The package a bare specifier names (`@scope/name/sub` -> `@scope/name`); undefined for relative and built-in ones. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:')) return undefined;
  const parts = specifier.split('/');
  const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
  return builtinModules.includes(name) ? undefined : name;
}

/** Imports of one file, each marked when it is erased at run time (`import type`). */
function importsOf(text: string): { name: string; typeOnly: boolean }[] {
  const found: { name: string; typeOnly: boolean }[] = [];
  const statements = /(?:^|\n)\s*(import|export)(\s+type)?\s[^;]*?from\s*'([^']+)'/g;
  for (const match of text.matchAll(statements)) {
    const name = packageOf(match[3]!);
    if (name) found.push({ name, typeOnly: Boolean(match[2]) });
  }
  for (const match of text.matchAll(/import\(\s*'([^']+)'\s*\)/g)) {
    const name = packageOf(match[1]!);
    if (name) found.push({ name, typeOnly: false });
  }
  return found;
}

describe('package.json declares every imported package', () => {
  it('run-time imports of src/ and bin/ are dependencies', () => {
    const missing: string[] = [];
    for (const file of [...filesUnder('src'), ...filesUnder('bin')]) {
      for (const { name, typeOnly } of importsOf(fs.readFileSync(path.join(ROOT, file), 'utf8'))) {
        const declared = typeOnly ? manifest.dependencies[name] ?? manifest.devDependencies[name] : manifest.dependencies[name];
        if (!declared) missing.push(`${file}: ${name}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('imports of tests, benchmarks and scripts are dependencies or devDependencies', () => {
    const missing: string[] = [];
    // (This file's own examples below are not imports.)
    const files = [...filesUnder('test'), ...filesUnder('bench'), ...filesUnder('scripts'), 'vitest.config.ts']
      .filter((file) => file !== path.join('test', 'package-imports.test.ts'));
    for (const file of files) {
      for (const { name } of importsOf(fs.readFileSync(path.join(ROOT, file), 'utf8'))) {
        if (!manifest.dependencies[name] && !manifest.devDependencies[name]) missing.push(`${file}: ${name}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('finds multi-line and dynamic imports', () => {
    expect(importsOf("import {\n  a,\n  b,\n} from 'koa-compose';\nconst x = await import('@scope/pkg/sub');\nimport type Koa from 'koa';\nimport fs from 'node:fs';"))
      .toEqual([{ name: 'koa-compose', typeOnly: false }, { name: 'koa', typeOnly: true }, { name: '@scope/pkg', typeOnly: false }]);
  });
});
