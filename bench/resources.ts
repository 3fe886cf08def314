// What both servers are set up with, so that they issue comparable tokens.
export const JWT_RESOURCE = 'https://orders.bench';
export const OPAQUE_RESOURCE = 'https://orders-opaque.bench';
export const SCOPES = ['orders:read', 'orders:write'];
export const ACCESS_TOKEN_TTL = 300;
/** Token exchange (RFC 8693): the API the exchanged tokens are for, and its scope. */
export const EXCHANGE_TARGET = 'https://payments.bench';
export const EXCHANGE_SCOPE = 'payments:charge';
