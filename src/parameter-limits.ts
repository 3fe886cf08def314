// Limits on what requests may name. A leaf module: the lookups and the services use the same bounds.

/** RFC 8707 resource indicators and API identifiers (an URI; browsers' practical limit). */
export const MAX_RESOURCE_LENGTH = 2000;
