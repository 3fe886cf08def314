// Every relative link in the Markdown docs leads somewhere: the file exists and, when the link has
// an `#anchor`, that file has a heading with that anchor (GitHub's rules: the heading's text,
// lowercased, punctuation other than `-` and `_` dropped, each space a `-`, `-1`, `-2`... on
// repeats). Reads files only; no server, no database.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support/process.ts';

/** Files linked to before they exist (none today); each entry must say why and when it goes. */
const NOT_YET_WRITTEN = new Set<string>([]);

const documents = ['README.md', 'SECURITY.md', 'CHANGELOG.md',
  ...fs.readdirSync(path.join(ROOT, 'docs')).filter((name) => name.endsWith('.md')).sort().map((name) => `docs/${name}`)];

/** The text outside fenced code blocks, line by line (numbers kept), without inline code spans. */
function proseLines(markdown: string): { line: number; text: string }[] {
  const lines: { line: number; text: string }[] = [];
  let fence: string | undefined;
  markdown.split('\n').forEach((text, index) => {
    const marker = /^\s*(`{3,}|~{3,})/.exec(text)?.[1];
    if (marker && (fence === undefined || marker.startsWith(fence))) {
      fence = fence === undefined ? marker : undefined;
      return;
    }
    if (fence === undefined) lines.push({ line: index + 1, text });
  });
  return lines;
}

function withoutCodeSpans(text: string): string {
  return text.replace(/(`+)[^`]*?\1/g, '');
}

/** GitHub's anchor for a heading's text (github-slugger). */
function slugOf(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link shows its text
    .replace(/<[^>]+>/g, '') // inline HTML shows nothing
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** Every anchor a document has: its headings' slugs (repeats numbered) and explicit ids. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const { text } of proseLines(markdown)) {
    const heading = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(text)?.[1];
    if (heading !== undefined) {
      const slug = slugOf(heading);
      const count = seen.get(slug) ?? 0;
      seen.set(slug, count + 1);
      anchors.add(count === 0 ? slug : `${slug}-${count}`);
    }
    for (const match of text.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) anchors.add(match[1]!);
  }
  return anchors;
}

/** Relative link targets in a document: inline links, images and reference definitions. */
function linksOf(markdown: string): { line: number; target: string }[] {
  const links: { line: number; target: string }[] = [];
  for (const { line, text } of proseLines(markdown)) {
    const prose = withoutCodeSpans(text);
    for (const match of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push({ line, target: match[1]! });
    const definition = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/.exec(prose);
    if (definition) links.push({ line, target: definition[1]! });
  }
  return links.filter(({ target }) => !/^[a-z][a-z0-9+.-]*:/i.test(target)); // not http:, mailto:...
}

describe('relative links in the docs', () => {
  it('the documents are found', () => {
    expect(documents).toContain('docs/keys.md');
    expect(documents.length).toBeGreaterThan(10);
  });

  it('the slug rules are GitHub\'s', () => {
    expect(slugOf('Clients with their own keys (`private_key_jwt`)')).toBe('clients-with-their-own-keys-private_key_jwt');
    expect(slugOf('6. Brute-force protection')).toBe('6-brute-force-protection');
    expect(slugOf('DPoP (RFC 9449)')).toBe('dpop-rfc-9449');
    expect(slugOf('Upgrading across migration 0011')).toBe('upgrading-across-migration-0011');
    expect(slugOf('A `keys revoke`, then  two spaces')).toBe('a-keys-revoke-then--two-spaces');
    expect([...anchorsOf('# A\n## A\n```\n# B\n```\n## A\n')]).toEqual(['a', 'a-1', 'a-2']);
  });

  it('every docs/*.md named in the code, the tests, the deployment files or the docs exists', () => {
    // Error messages, setting descriptions and comments send readers to the docs by path.
    const sources = ['src', 'test', 'bench', 'bin', 'scripts', 'deploy']
      .flatMap((dir) => fs.readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' }).map((name) => `${dir}/${name}`))
      .filter((name) => /\.(ts|js|ya?ml|conf|service|env|sh)$/.test(name));
    const missing: string[] = [];
    for (const file of [...documents, ...sources, 'docker-compose.yml', 'Dockerfile']) {
      const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
      for (const match of text.matchAll(/\bdocs\/[\w.-]+\.md\b/g)) {
        if (!NOT_YET_WRITTEN.has(match[0]) && !fs.existsSync(path.join(ROOT, match[0]))) missing.push(`${file}: ${match[0]}`);
      }
    }
    expect(missing).toEqual([]);
  });

  for (const document of documents) {
    it(`in ${document} lead to an existing file and heading`, () => {
      const broken: string[] = [];
      const markdown = fs.readFileSync(path.join(ROOT, document), 'utf8');
      for (const { line, target } of linksOf(markdown)) {
        const [file, anchor] = target.split('#', 2) as [string, string | undefined];
        const resolved = file === '' ? document : path.posix.normalize(path.posix.join(path.posix.dirname(document), decodeURI(file)));
        if (NOT_YET_WRITTEN.has(resolved)) continue;
        const absolute = path.join(ROOT, resolved);
        if (resolved.startsWith('..') || !fs.existsSync(absolute)) {
          broken.push(`${document}:${line}: ${target}: no file ${resolved}`);
          continue;
        }
        if (anchor === undefined || anchor === '') continue;
        if (!resolved.endsWith('.md')) {
          broken.push(`${document}:${line}: ${target}: an anchor into a file that is not Markdown`);
          continue;
        }
        if (!anchorsOf(fs.readFileSync(absolute, 'utf8')).has(decodeURIComponent(anchor))) {
          broken.push(`${document}:${line}: ${target}: no heading #${anchor} in ${resolved}`);
        }
      }
      expect(broken).toEqual([]);
    });
  }
});
