// The logger itself: every field that may carry a credential is redacted, wherever it sits, and
// what an operator needs (error codes, ids) is kept. Nothing in the code logs a secret today, so
// only this test notices when the redaction list loses an entry.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/platform/logger.ts';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: createLogger('trace', stream), text: () => lines.join('\n'), lines };
}

const SECRET = 'S3cr3t-value-that-must-never-appear';

// Every name under which a credential may be passed to the logger, at the top and one level down.
const FIELDS = [
  'authorization', 'cookie', 'password', 'secret', 'client_secret', 'clientSecret', 'client_assertion',
  'token', 'access_token', 'refresh_token', 'id_token', 'code_verifier', 'assertion',
  'masterKey', 'POSTERN_MASTER_KEY', 'POSTERN_NEW_MASTER_KEY', 'DATABASE_URL', 'REDIS_URL', 'METRICS_TOKEN',
];

describe('the logger', () => {
  it.each(FIELDS)('redacts %s at the top level and one level down', (field) => {
    const { logger, text, lines } = capture();
    logger.info({ [field]: `${SECRET}-top` }, 'top');
    logger.info({ details: { [field]: `${SECRET}-nested` } }, 'nested');
    expect(text()).not.toContain(SECRET);
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0]!)[field]).toBe('[redacted]');
    expect(JSON.parse(lines[1]!).details[field]).toBe('[redacted]');
  });

  it('redacts credentials in request and response headers', () => {
    const { logger, text } = capture();
    logger.info({
      req: { method: 'POST', url: '/token', headers: { authorization: `Basic ${SECRET}`, cookie: `_session=${SECRET}`, 'proxy-authorization': SECRET } },
      res: { statusCode: 200, headers: { 'set-cookie': [`_session=${SECRET}`] } },
      headers: { authorization: `Bearer ${SECRET}`, cookie: SECRET },
    }, 'request');
    expect(text()).not.toContain(SECRET);
    const line = JSON.parse(text());
    expect(line.req.method).toBe('POST');
    expect(line.req.headers.authorization).toBe('[redacted]');
    expect(line.res.headers['set-cookie']).toBe('[redacted]');
  });

  it('redacts authorization codes in parameters, bodies and queries', () => {
    const { logger, text } = capture();
    logger.info({ params: { code: SECRET, state: 'kept' }, body: { code: SECRET }, query: { code: SECRET } }, 'code');
    expect(text()).not.toContain(SECRET);
    expect(JSON.parse(text()).params.state).toBe('kept');
  });

  it('keeps what an operator needs: error codes, ids and messages', () => {
    const { logger, text } = capture();
    const error = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    logger.error({ err: error, clientId: 'BbfoxJVCC-SV8BzOguYhTQ', requestId: 'r-1' }, 'database down');
    const line = JSON.parse(text());
    expect(line.err.code).toBe('ECONNREFUSED');
    expect(line.err.message).toContain('ECONNREFUSED');
    expect(line.clientId).toBe('BbfoxJVCC-SV8BzOguYhTQ');
    expect(line.requestId).toBe('r-1');
  });
});
