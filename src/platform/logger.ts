// JSON logs. Anything that could carry a credential is redacted by path, and callers log only
// identifiers (client ids, request ids), never request bodies.
import { pino, type Logger } from 'pino';

export type { Logger };

// Field names that may hold a credential, at the top level of a log line and one level down.
const SECRET_FIELDS = [
  'authorization', 'cookie', 'password', 'secret', 'client_secret', 'clientSecret', 'client_assertion',
  'token', 'access_token', 'refresh_token', 'id_token', 'code_verifier', 'assertion',
  'masterKey', 'POSTERN_MASTER_KEY', 'POSTERN_NEW_MASTER_KEY', 'DATABASE_URL', 'REDIS_URL', 'METRICS_TOKEN',
];

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((field) => `*.${field}`),
  // An authorization code; not `*.code`, which would hide the codes of errors (ECONNREFUSED).
  'code', 'params.code', 'body.code', 'query.code',
];

/**
 * `code` is an authorization code at the top level of a request's fields, and an exit code in a
 * process's lines (a worker's death). An authorization code is always a string (RFC 6749 §4.1.2);
 * a number or null cannot be one, so those are kept and every string is still redacted.
 */
function censor(value: unknown, path: string[]): unknown {
  if (path.at(-1) === 'code' && (typeof value === 'number' || value === null)) return value;
  return '[redacted]';
}

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    { level, base: undefined, redact: { paths: REDACTED_PATHS, censor } },
    destination as never,
  );
}
