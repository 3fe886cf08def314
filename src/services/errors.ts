// The one error type of the service layer. The CLI prints `message` on one line; the admin API
// maps `code` to a status in one place.
export type ServiceErrorCode = 'invalid_input' | 'not_found' | 'conflict' | 'forbidden';

export class ServiceError extends Error {
  readonly code: ServiceErrorCode;
  /** Names of the offending input fields, for invalid_input. */
  readonly fields: string[];

  constructor(code: ServiceErrorCode, message: string, fields: string[] = []) {
    super(message);
    this.name = 'ServiceError';
    this.code = code;
    this.fields = fields;
  }
}

export const invalid = (message: string, ...fields: string[]) => new ServiceError('invalid_input', message, fields);
export const notFound = (message: string) => new ServiceError('not_found', message);
export const conflict = (message: string) => new ServiceError('conflict', message);

/** Postgres unique_violation, as raised by pg and by PGlite. */
export function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: string }).code === '23505';
}
