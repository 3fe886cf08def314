// Postern's own API: its scopes are permissions on Postern itself. A leaf module, so that the CLI
// can name it without loading the protocol engine.
export const POSTERN_API = 'urn:postern';
export const INTROSPECT_SCOPE = 'introspect';
/** Scopes of `urn:postern` that the admin API requires: reading for GET, writing for the rest. */
export const ADMIN_READ_SCOPE = 'admin:read';
export const ADMIN_WRITE_SCOPE = 'admin:write';

/** The name of the first admin client (`postern admin bootstrap`). */
export const DEFAULT_ADMIN_NAME = 'postern-admin';

/** The console's own app (migration 0016). */
// Shaped like every client id (domain/crypto.ts RANDOM_ID_PATTERN): the Directory looks up no other.
export const CONSOLE_CLIENT_ID = 'postern-console-webapp';
