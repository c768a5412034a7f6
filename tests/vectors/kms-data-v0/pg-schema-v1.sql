-- The PostgreSQL schema (version 1) of cloister-kms before regions: kms_pg_schema of src/kms/store_pg.c at 6a44c01, verbatim.
-- tests/integration/kms_regions.py loads it with the rows of keys.sql to make an old PostgreSQL store.
CREATE TABLE IF NOT EXISTS schema_version(version INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS keys( key_id TEXT COLLATE "C" PRIMARY KEY, arn TEXT NOT NULL, account TEXT COLLATE "C" NOT NULL, created BIGINT NOT NULL, state INTEGER NOT NULL, description TEXT NOT NULL, key_usage TEXT NOT NULL, key_spec TEXT NOT NULL, deletion_date BIGINT NOT NULL, pending_days INTEGER NOT NULL, current_version BIGINT NOT NULL, rotation_enabled BOOLEAN NOT NULL, rotation_period INTEGER NOT NULL, last_rotated BIGINT NOT NULL, policy TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS keys_account ON keys(account, key_id);
CREATE TABLE IF NOT EXISTS key_versions( key_id TEXT COLLATE "C" NOT NULL, version BIGINT NOT NULL, wrapped BYTEA NOT NULL, created BIGINT NOT NULL, on_demand BOOLEAN NOT NULL DEFAULT false, PRIMARY KEY(key_id, version));
CREATE TABLE IF NOT EXISTS aliases( account TEXT COLLATE "C" NOT NULL, name TEXT COLLATE "C" NOT NULL, key_id TEXT COLLATE "C" NOT NULL, created BIGINT NOT NULL, updated BIGINT NOT NULL, PRIMARY KEY(account, name));
CREATE INDEX IF NOT EXISTS aliases_key ON aliases(key_id);
CREATE TABLE IF NOT EXISTS grants( grant_id TEXT COLLATE "C" PRIMARY KEY, key_id TEXT COLLATE "C" NOT NULL, grantee TEXT NOT NULL, retiring TEXT NOT NULL, issuing_account TEXT NOT NULL, operations TEXT NOT NULL, name TEXT NOT NULL, constraints TEXT NOT NULL, created BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS grants_key ON grants(key_id, grant_id);
CREATE TABLE IF NOT EXISTS tags( key_id TEXT COLLATE "C" NOT NULL, tag_key TEXT COLLATE "C" NOT NULL, tag_value TEXT NOT NULL, PRIMARY KEY(key_id, tag_key));
INSERT INTO schema_version(version) VALUES(1) ON CONFLICT DO NOTHING;

