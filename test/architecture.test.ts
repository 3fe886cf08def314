// The layers of src/ and the direction of their imports (docs/architecture.md), read from the
// sources: an import that runs the wrong way, oidc-provider or SQL outside their layer, or I/O in
// domain/ fails here, naming the file and what it imports.
//
//   main, serve, cluster ─► app ─► http/ | cli/ | oidc/ ─► services/ ─► propagation/ ─► store/ ─► db/
//   domain/ (pure vocabulary) and platform/ (process plumbing) are below them all.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support/process.ts';

const SRC = path.join(ROOT, 'src');

/** What each layer may import from src/ besides itself (the composition files: see below). */
const ALLOWED: Record<string, readonly string[]> = {
  domain: [],
  platform: ['domain'],
  db: ['domain'],
  store: ['db', 'domain'],
  propagation: ['store', 'db', 'domain', 'platform'],
  services: ['propagation', 'store', 'db', 'domain', 'platform'],
  // The inbound adapters. oidc/ is the provider's: it calls in like a request does.
  oidc: ['services', 'propagation', 'store', 'db', 'domain', 'platform'],
  http: ['services', 'db', 'domain', 'platform'],
  cli: ['services', 'db', 'domain', 'platform', 'config.ts'],
  // The only reader of the environment; it names the services' settings types.
  'config.ts': ['services', 'domain', 'platform'],
  // The composition root wires everything; the entry points start it.
  'app.ts': ['config.ts', 'http', 'oidc', 'services', 'propagation', 'store', 'db', 'domain', 'platform'],
  'serve.ts': ['app.ts', 'config.ts', 'http', 'services', 'db', 'domain', 'platform'],
  'cluster.ts': ['serve.ts', 'config.ts', 'http', 'platform'],
  'main.ts': ['app.ts', 'serve.ts', 'cluster.ts', 'config.ts', 'services', 'store', 'db', 'domain', 'platform'],
};

/** Layers in which a relative import may only be a type (erased at run time). */
const TYPES_ONLY: Record<string, readonly string[]> = {
  // Request handlers take a database handle; they query it only through services.
  http: ['db'],
  // config.ts names the settings that services/ define, and runs none of their code.
  'config.ts': ['services'],
};

/** Modules domain/ may import: computation only, no I/O (no files, sockets, database or HTTP). */
const DOMAIN_PACKAGES = new Set(['node:crypto', 'node:util', 'jose', 'ipaddr.js', 'argon2']);

/** Files only their own module may import: the propagation's SQL and connection. */
const PRIVATE: Record<string, readonly string[]> = {
  'store/changes.ts': ['propagation'],
  'db/change-feed.ts': ['propagation', 'db', 'store/changes.ts'],
};

const SQL = /\bsql`|\.(selectFrom|insertInto|updateTable|deleteFrom)\(/;

interface Import { specifier: string; typeOnly: boolean; line: number }

/** The imports (and re-exports) of a source text, static and dynamic. */
function importsOf(text: string): Import[] {
  const found: Import[] = [];
  const lineAt = (index: number) => text.slice(0, index).split('\n').length;
  for (const match of text.matchAll(/(?:^|\n)\s*(import|export)(\s+type)?\s[^;]*?from\s*'([^']+)'/g)) {
    found.push({ specifier: match[3]!, typeOnly: Boolean(match[2]), line: lineAt(match.index! + match[0].indexOf(match[1]!)) });
  }
  for (const match of text.matchAll(/(?:^|\n)\s*import\s+'([^']+)'/g)) {
    found.push({ specifier: match[1]!, typeOnly: false, line: lineAt(match.index!) });
  }
  for (const match of text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)) {
    found.push({ specifier: match[1]!, typeOnly: false, line: lineAt(match.index!) });
  }
  return found;
}

/** The layer of a path under src/: its top folder, or the file itself at the top. */
function layerOf(relative: string): string {
  return relative.split('/')[0]!;
}

interface Source { file: string; layer: string; text: string; imports: (Import & { target?: string })[] }

function readSources(): Source[] {
  return fs.readdirSync(SRC, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts'))
    .map((name) => name.split(path.sep).join('/'))
    .map((file) => {
      const text = fs.readFileSync(path.join(SRC, file), 'utf8');
      const imports = importsOf(text).map((each) => {
        if (!each.specifier.startsWith('.')) return each;
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), each.specifier));
        return { ...each, target };
      });
      return { file, layer: layerOf(file), text, imports };
    });
}

/** Every import that breaks a rule, as "src/<file>:<line> imports <what>: <why>". */
function findViolations(sources: Source[]): string[] {
  const violations: string[] = [];
  const report = (source: Source, each: Import, why: string) =>
    violations.push(`src/${source.file}:${each.line} imports ${each.specifier}: ${why}`);
  for (const source of sources) {
    for (const each of source.imports) {
      if (!('target' in each) || each.target === undefined) {
        const name = each.specifier;
        if (name === 'oidc-provider' || name.startsWith('oidc-provider/')) {
          if (source.layer !== 'oidc') report(source, each, 'only src/oidc/ uses oidc-provider');
          else if (name !== 'oidc-provider') report(source, each, 'the public surface only, never oidc-provider/lib/**');
        }
        if (name === 'kysely' && !each.typeOnly && !['store', 'db'].includes(source.layer)) {
          report(source, each, 'queries are built in src/store/ (and src/db/) only');
        }
        if (source.layer === 'domain' && !DOMAIN_PACKAGES.has(name)) {
          report(source, each, `src/domain/ is computation only (allowed: ${[...DOMAIN_PACKAGES].join(', ')})`);
        }
        continue;
      }
      const target = each.target;
      if (target.startsWith('..')) {
        report(source, each, 'outside src/');
        continue;
      }
      const to = layerOf(target);
      const owner = Object.entries(PRIVATE).find(([file]) => target === file)?.[1];
      if (owner && !owner.some((allowed) => source.file === allowed || source.layer === allowed)) {
        report(source, each, `${target} belongs to ${owner[0]}/ (import src/propagation/index.ts)`);
      }
      if (to === 'propagation' && source.layer !== 'propagation' && target !== 'propagation/index.ts') {
        report(source, each, 'outside src/propagation/, import its index.ts only');
      }
      if (to === source.layer) continue;
      const allowed = ALLOWED[source.layer];
      if (!allowed) {
        report(source, each, `src/${source.file} is in no known layer (add it to test/architecture.test.ts and docs/architecture.md)`);
      } else if (!allowed.includes(to)) {
        report(source, each, `${source.layer} may import ${allowed.join(', ') || 'nothing of src/'} (docs/architecture.md)`);
      } else if (TYPES_ONLY[source.layer]?.includes(to) && !each.typeOnly) {
        report(source, each, `${source.layer} may import only types from ${to}`);
      }
    }
  }
  return violations;
}

/** Files outside store/ and db/ that hold SQL, with the first line that does. */
function findSql(sources: Source[]): string[] {
  return sources
    .filter((source) => !['store', 'db'].includes(source.layer))
    .flatMap((source) => {
      const line = source.text.split('\n').findIndex((text) => SQL.test(text));
      return line < 0 ? [] : [`src/${source.file}:${line + 1}: SQL outside src/store/ and src/db/`];
    });
}

describe('the layers of src/', () => {
  const sources = readSources();

  it('import only downwards, and oidc-provider only in oidc/', () => {
    expect(findViolations(sources)).toEqual([]);
  });

  it('hold SQL only in store/ and db/', () => {
    expect(findSql(sources)).toEqual([]);
  });

  it('keep at most six files directly in src/', () => {
    expect(sources.filter((source) => !source.file.includes('/')).map((source) => source.file).sort())
      .toEqual(['app.ts', 'cluster.ts', 'config.ts', 'main.ts', 'serve.ts']);
  });

  it('are each named in the rules (a new folder is placed on purpose)', () => {
    expect([...new Set(sources.map((source) => source.layer))].filter((layer) => !ALLOWED[layer])).toEqual([]);
  });

  it('catch each kind of violation, with the file and the import', () => {
    const fake = (file: string, text: string): Source[] => [{
      file, layer: layerOf(file), text, imports: importsOf(text).map((each) => (each.specifier.startsWith('.')
        ? { ...each, target: path.posix.normalize(path.posix.join(path.posix.dirname(file), each.specifier)) } : each)),
    }];
    expect(findViolations(fake('services/x.ts', "import Provider from 'oidc-provider';")))
      .toEqual(['src/services/x.ts:1 imports oidc-provider: only src/oidc/ uses oidc-provider']);
    expect(findViolations(fake('store/x.ts', "import { y } from '../services/y.ts';"))[0])
      .toMatch(/^src\/store\/x\.ts:1 imports \.\.\/services\/y\.ts: store may import db, domain/);
    expect(findViolations(fake('http/x.ts', "import { y } from '../oidc/y.ts';"))).toHaveLength(1);
    expect(findViolations(fake('oidc/x.ts', "\nimport { y } from '../http/y.ts';"))[0]).toMatch(/^src\/oidc\/x\.ts:2 /);
    expect(findViolations(fake('http/x.ts', "import { createDb } from '../db/database.ts';"))).toHaveLength(1);
    expect(findViolations(fake('http/x.ts', "import type { Db } from '../db/tables.ts';"))).toEqual([]);
    expect(findViolations(fake('domain/x.ts', "import fs from 'node:fs';"))).toHaveLength(1);
    expect(findViolations(fake('services/x.ts', "import { sql } from 'kysely';"))).toHaveLength(1);
    expect(findViolations(fake('services/x.ts', "import { publishChange } from '../store/changes.ts';"))).toHaveLength(1);
    expect(findViolations(fake('oidc/x.ts', "import { Propagation } from '../propagation/process.ts';"))).toHaveLength(1);
    expect(findViolations(fake('services/x.ts', "const { y } = await import('../app.ts');"))).toHaveLength(1);
    expect(findSql(fake('services/x.ts', 'const rows = await db.selectFrom(\'clients\').selectAll().execute();'))).toHaveLength(1);
  });
});
