-- What an Idempotency-Key stands for: the SHA-256 (hex) of the request's canonical JSON, so that the
-- same key sent with a different request is refused instead of answered with the first task.
-- Tasks written before this migration have none, and any request with their key matches them.
ALTER TABLE tasks ADD COLUMN idempotency_digest text;
