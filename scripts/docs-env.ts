// `npm run docs:env`: rewrites the environment-variable table in docs/deployment.md.
import fs from 'node:fs';
import path from 'node:path';
import { withEnvTable } from './env-table.ts';

const file = path.resolve(import.meta.dirname, '../docs/deployment.md');
const before = fs.readFileSync(file, 'utf8');
const after = withEnvTable(before);
if (after !== before) fs.writeFileSync(file, after);
console.log(after === before ? 'docs/deployment.md: table up to date' : 'docs/deployment.md: table rewritten');
