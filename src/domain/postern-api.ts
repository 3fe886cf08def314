// Postern's own API: its scopes are permissions on Postern itself. A leaf module, so that the CLI
// can name it without loading the protocol engine.
export const POSTERN_API = 'urn:postern';
export const INTROSPECT_SCOPE = 'introspect';
