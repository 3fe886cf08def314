// What both servers are set up with, so that they issue comparable tokens.
export const JWT_RESOURCE = 'https://orders.bench';
export const OPAQUE_RESOURCE = 'https://orders-opaque.bench';
export const SCOPES = ['orders:read', 'orders:write'];
export const ACCESS_TOKEN_TTL = 300;
