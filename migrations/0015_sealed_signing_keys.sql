-- Signing keys sealed with the servers' key file (`serve --key-file`), which the database never holds: whoever
-- reads this table (a backup, a local user under trust authentication) holds ciphertext, not a key that
-- signs grants. The keys stored in plain until now were readable by all of them, so they are retired here,
-- their private halves erased: the servers make a new sealed key at the next claim, and agents refuse the old
-- keys' grants once they re-read the key list (within a minute).
ALTER TABLE signing_keys ADD COLUMN sealed_private_key bytea;
UPDATE signing_keys SET retired_at = coalesce(retired_at, now());
ALTER TABLE signing_keys DROP COLUMN private_key;
-- A retired key signs nothing again: its private half is erased when it is retired.
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_live_have_sealed_key
    CHECK ((retired_at IS NULL) = (sealed_private_key IS NOT NULL));
