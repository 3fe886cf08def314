-- Signing-key rotation without a restart (docs/keys.md, "Key rotation"). A key's state is derived
-- from timestamps, so that time alone moves it along on every process, with no writer involved:
--   next      published in JWKS, not signing yet          now < activates_at
--   active    the signing key of its type                 activates_at <= now < retires_at (or no retires_at)
--   retiring  no longer signing, still published          retires_at <= now < remove_after
--   retired   no longer published                         remove_after <= now
-- The key is published from created_at on.
ALTER TABLE signing_keys ADD COLUMN activates_at timestamptz;
ALTER TABLE signing_keys ADD COLUMN retires_at timestamptz;
ALTER TABLE signing_keys ADD COLUMN remove_after timestamptz;

-- Existing keys signed from their creation. The old `state` column was never written by any
-- version ('active' for every key), but map every value it allowed all the same.
UPDATE signing_keys SET activates_at = created_at;
UPDATE signing_keys SET retires_at = now(), remove_after = now() + interval '1 day' WHERE state = 'retiring';
UPDATE signing_keys SET retires_at = created_at, remove_after = created_at WHERE state = 'retired';
ALTER TABLE signing_keys ALTER COLUMN activates_at SET NOT NULL;
ALTER TABLE signing_keys ALTER COLUMN activates_at SET DEFAULT now();
ALTER TABLE signing_keys DROP COLUMN state;

ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_dates_in_order
  CHECK (retires_at IS NULL OR (retires_at >= activates_at AND remove_after IS NOT NULL AND remove_after >= retires_at));
