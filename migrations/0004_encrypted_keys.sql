-- Private key material encrypted at rest (docs/keys.md). Private JWKs and server secrets move to
-- `encrypted_*` columns holding AES-256-GCM envelopes sealed with the master key, which never
-- enters the database. This migration cannot encrypt (it has no key): servers and the CLI seal the
-- rows still in plaintext when they start, in one locked transaction, and empty the old columns.

-- The public half of each signing key, so that listing keys needs no decryption.
ALTER TABLE signing_keys ADD COLUMN public_jwk jsonb;
UPDATE signing_keys SET public_jwk = private_jwk - ARRAY['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
ALTER TABLE signing_keys ALTER COLUMN public_jwk SET NOT NULL;

ALTER TABLE signing_keys ADD COLUMN encrypted_private_jwk text;
ALTER TABLE signing_keys ALTER COLUMN private_jwk DROP NOT NULL;
-- A key is either still in plaintext (before its first start under this version) or encrypted.
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_private_jwk_plain_or_encrypted
  CHECK ((private_jwk IS NULL) <> (encrypted_private_jwk IS NULL));

ALTER TABLE server_secrets ADD COLUMN encrypted_value text;
ALTER TABLE server_secrets ALTER COLUMN value DROP NOT NULL;
ALTER TABLE server_secrets ADD CONSTRAINT server_secrets_value_plain_or_encrypted
  CHECK ((value IS NULL) <> (encrypted_value IS NULL));
