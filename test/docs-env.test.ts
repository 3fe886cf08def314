// docs/deployment.md lists every environment variable, as the configuration schema defines it.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { envSchema } from '../src/config.ts';
import { withEnvTable } from '../scripts/env-table.ts';

const DOC = path.resolve(import.meta.dirname, '../docs/deployment.md');

describe('the deployment guide', () => {
  it('has the environment-variable table generated from the schema (run `npm run docs:env`)', () => {
    const document = fs.readFileSync(DOC, 'utf8');
    expect(document).toBe(withEnvTable(document));
  });

  it('describes every variable', () => {
    for (const [name, field] of Object.entries(envSchema.shape)) {
      expect((field as { description?: string }).description, name).toBeTruthy();
    }
  });
});
