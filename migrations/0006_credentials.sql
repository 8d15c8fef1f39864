-- Credentials. The database is the root of trust: whoever can write it can mint a token; everyone else
-- proves who they are with a bearer token whose SHA-256 digest is kept here (never the secret).
CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('client', 'node')),
    name         text NOT NULL,
    -- Client tokens: any of read, submit, operate, admin. Node tokens: none.
    scopes       text[] NOT NULL DEFAULT '{}',
    -- A client token bound to one cluster, or to all (NULL); a node token's cluster and node.
    cluster_id   text,
    node_id      text,
    secret_hash  bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    -- Written in batches by the servers (at most every few seconds), not on every request.
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CHECK (kind = 'client' OR (cluster_id IS NOT NULL AND node_id IS NOT NULL AND scopes = '{}')),
    CHECK (kind = 'node' OR node_id IS NULL),
    CHECK (scopes <@ ARRAY['read', 'submit', 'operate', 'admin'])
);

-- The keys that sign grants (what lets a participant verify a fan-out), per cluster. The newest live key
-- of a cluster signs; every live key verifies, so a key can be rotated without a gap.
CREATE TABLE signing_keys (
    id          text PRIMARY KEY,
    cluster_id  text NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    algorithm   text NOT NULL CHECK (algorithm = 'ed25519'),
    public_key  bytea NOT NULL,
    private_key bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);
CREATE INDEX signing_keys_live ON signing_keys (cluster_id, created_at) WHERE retired_at IS NULL;

-- A claim's lease: the SHA-256 of the secret the claim returned to its agent. Heartbeats and reports
-- must carry the secret, so the public attempt number alone cannot forge an outcome, and whoever can
-- read the tasks table (the SQL users of the task history) cannot either.
ALTER TABLE tasks ADD COLUMN lease_hash bytea;
