// Schemas of the admin API's user (people) endpoints; see schemas.ts for the rest.
import { z } from 'zod';
import type { UserView } from '../../services/users.ts';

const ref = z.string().min(1).max(2000);
const timestamp = z.string().meta({ format: 'date-time' });
// The policy (length, common passwords) is the service's; this only bounds the input.
const password = z.string().min(1).max(1024).meta({ description: 'checked against the password policy (docs/users.md)', writeOnly: true });

export const roleUserParams = z.strictObject({
  id: ref.meta({ description: 'role id or name' }),
  userId: ref.meta({ description: 'user id or username' }),
});

export const createUserBody = z.strictObject({
  username: z.string().min(1).max(100),
  password,
  email: z.string().min(3).max(320).optional(),
  name: z.string().min(1).max(200).optional(),
  roles: z.array(ref).max(100).optional().meta({ description: 'role ids or names' }),
}).meta({ id: 'CreateUser' });

export const updateUserBody = z.strictObject({
  email: z.string().min(3).max(320).nullable().optional().meta({ description: 'a new address is unverified unless emailVerified says otherwise' }),
  emailVerified: z.boolean().optional(),
  name: z.string().min(1).max(200).nullable().optional(),
  enabled: z.boolean().optional().meta({ description: 'false ends every session and grant of the person at once' }),
}).meta({ id: 'UpdateUser' });

export const setPasswordBody = z.strictObject({ password }).meta({ id: 'SetPassword' });

export const userView = z.object({
  id: z.string(),
  username: z.string(),
  email: z.string().nullable(),
  emailVerified: z.boolean(),
  name: z.string().nullable(),
  enabled: z.boolean(),
  roles: z.array(z.string()),
  passwordChangedAt: timestamp,
  createdAt: timestamp,
}).meta({ id: 'User' }) satisfies z.ZodType<UserView>;

export const revokedSessions = z.object({
  user: userView,
  revokedGrants: z.int().meta({ description: 'grants revoked, with every token issued from them' }),
}).meta({ id: 'RevokedSessions' });
