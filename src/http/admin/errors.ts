// The admin API's one error type. Its codes form a closed set, each mapped to one status here;
// every failure, of the service layer, of validation or of the body, becomes one of them.
import type Koa from 'koa';
import { z } from 'zod';
import type { Logger } from '../../platform/logger.ts';
import { ServiceError, type ServiceErrorCode } from '../../services/errors.ts';

export const ADMIN_ERROR_STATUS = {
  invalid_input: 400,
  invalid_token: 401,
  insufficient_scope: 403,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  server_error: 500,
} as const;

export type AdminErrorCode = keyof typeof ADMIN_ERROR_STATUS;

export class AdminError extends Error {
  readonly code: AdminErrorCode;
  readonly fields: string[];
  /** Extra response headers (WWW-Authenticate for 401 and 403). */
  readonly headers: Record<string, string>;

  constructor(code: AdminErrorCode, message: string, options: { fields?: string[]; headers?: Record<string, string> } = {}) {
    super(message);
    this.name = 'AdminError';
    this.code = code;
    this.fields = options.fields ?? [];
    this.headers = options.headers ?? {};
  }

  get status(): number {
    return ADMIN_ERROR_STATUS[this.code];
  }
}

/** The body of every error response (documented in the OpenAPI document). */
export const errorBody = z.object({
  error: z.enum(Object.keys(ADMIN_ERROR_STATUS) as [AdminErrorCode, ...AdminErrorCode[]]),
  message: z.string(),
  fields: z.array(z.string()).optional().meta({ description: 'the offending input fields (invalid_input)' }),
  requestId: z.string(),
}).meta({ id: 'Error' });

const SERVICE_CODES: Record<ServiceErrorCode, AdminErrorCode> = {
  invalid_input: 'invalid_input',
  not_found: 'not_found',
  conflict: 'conflict',
  forbidden: 'forbidden',
};

/** "body.scopes.0", or the unknown keys themselves, for each issue. */
function issueFields(issues: z.core.$ZodIssue[], where: string): string[] {
  const fields = issues.flatMap((issue) => {
    const path = [where, ...issue.path.map(String)].filter(Boolean).join('.');
    if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => (path ? `${path}.${key}` : key));
    return [path || where];
  });
  return [...new Set(fields)];
}

export function fromZodError(error: z.ZodError, where: 'path' | 'query' | 'body'): AdminError {
  const fields = issueFields(error.issues, where);
  const first = error.issues[0];
  const detail = first?.code === 'unrecognized_keys' ? 'unknown field' : first?.message ?? 'invalid';
  return new AdminError('invalid_input', `invalid ${where}: ${fields.join(', ')}: ${detail}`, { fields });
}

function toAdminError(error: unknown): AdminError | undefined {
  if (error instanceof AdminError) return error;
  if (error instanceof ServiceError) {
    return new AdminError(SERVICE_CODES[error.code], error.message, { fields: error.fields });
  }
  return undefined;
}

/** Answers every error of the admin API in the one format; unknown errors go to the log only. */
export function adminErrors(logger: Logger): Koa.Middleware {
  return async (ctx, next) => {
    let error: AdminError | undefined;
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) error = new AdminError('not_found', 'no such endpoint');
    } catch (thrown) {
      error = toAdminError(thrown);
      if (!error) {
        logger.error({ err: thrown, requestId: ctx.state.requestId, path: ctx.path }, 'admin API error');
        error = new AdminError('server_error', `unexpected error; quote request id ${ctx.state.requestId}`);
      }
    }
    if (!error) return;
    ctx.status = error.status;
    ctx.set('Cache-Control', 'no-store');
    for (const [name, value] of Object.entries(error.headers)) ctx.set(name, value);
    ctx.body = {
      error: error.code,
      message: error.message,
      ...(error.fields.length ? { fields: error.fields } : {}),
      requestId: ctx.state.requestId,
    };
  };
}
