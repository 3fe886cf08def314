// Reading deployment files the way their tools do, enough to check them against the settings the
// server reads (src/config.ts): Dockerfile instructions, shell commands in docs, YAML documents.
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { envSchema } from '../../src/config.ts';
import { ROOT } from './process.ts';

/** Variables Node.js itself reads, which may appear beside Postern's. */
const NODE_VARIABLES = new Set(['NODE_OPTIONS', 'NODE_COMPILE_CACHE', 'NODE_EXTRA_CA_CERTS']);

/** Names that are neither Postern's settings nor Node's. */
export function unknownVariables(names: Iterable<string>): string[] {
  const known = new Set(Object.keys(envSchema.shape));
  return [...names].filter((name) => !known.has(name) && !NODE_VARIABLES.has(name));
}

/** The schema's default of a variable, as the environment would spell it. */
export function defaultOf(name: keyof typeof envSchema.shape): string | undefined {
  const parsed = envSchema.shape[name].safeParse(undefined);
  return parsed.success && parsed.data !== undefined ? String(parsed.data) : undefined;
}

export const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');
export const exists = (file: string) => fs.existsSync(path.join(ROOT, file));

export interface Instruction { keyword: string; args: string }

/** A Dockerfile's instructions, continuation lines joined, comments dropped. */
export function dockerInstructions(text: string): Instruction[] {
  const logical: string[] = [];
  let current = '';
  for (const line of text.split('\n')) {
    if (/^\s*#/.test(line)) continue;
    current += line.replace(/\\\s*$/, ' ');
    if (/\\\s*$/.test(line)) continue;
    if (current.trim()) logical.push(current.trim());
    current = '';
  }
  return logical.map((line) => {
    const [keyword, ...rest] = line.split(/\s+/);
    return { keyword: keyword!.toUpperCase(), args: rest.join(' ') };
  });
}

/** `KEY=value KEY2=value` (ENV's modern form) into pairs. */
export function envPairs(args: string): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const match of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)) pairs[match[1]!] = match[2]!.replace(/^"|"$/g, '');
  return pairs;
}

/** Splits a shell command into words: quotes respected, `\` line continuations joined. */
export function shellWords(command: string): string[] {
  const words: string[] = [];
  const text = command.replace(/\\\n/g, ' ');
  for (const match of text.matchAll(/'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g)) words.push(match[1] ?? match[2] ?? match[3]!);
  return words;
}

/** The fenced code blocks of a Markdown text, with their language. */
export function codeBlocks(markdown: string): { lang: string; text: string }[] {
  return [...markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```/gm)].map((match) => ({ lang: match[1]!, text: match[2]! }));
}

/** Shell commands of a code block: continuation lines joined, comments dropped. */
export function shellCommands(block: string): string[] {
  return block.replace(/\\\n\s*/g, ' ').split('\n').map((line) => line.replace(/\s+#.*$/, '').trim()).filter((line) => line && !line.startsWith('#'));
}

/** Every YAML document of a file (several per file, `---` apart), merge keys (`<<`) resolved. */
export function yamlDocuments(file: string): any[] {
  return parseAllDocuments(read(file), { merge: true })
    .map((document) => {
      if (document.errors.length) throw new Error(`${file}: ${document.errors.map((error) => error.message).join('; ')}`);
      return document.toJS({ maxAliasCount: 100 });
    })
    .filter((value) => value !== null && value !== undefined);
}

/** Files under a folder of the repository, relative to the repository. */
export function filesUnder(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((name) => fs.statSync(path.join(ROOT, dir, name)).isFile())
    .map((name) => path.join(dir, name));
}
