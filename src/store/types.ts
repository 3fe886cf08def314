import type { Kysely, Transaction } from 'kysely';
import type { Tables } from '../db/tables.ts';

/** A database handle or a transaction: every store function accepts either. */
export type Db = Kysely<Tables> | Transaction<Tables>;
