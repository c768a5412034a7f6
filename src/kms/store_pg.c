/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PostgreSQL key store (libpq): the same table of functions as the SQLite
 * store, for several cloister-kms instances sharing one database.
 *
 * Connections: a small pool, one connection per concurrent caller (the server
 * sizes it to its worker threads, each of which runs one request at a time),
 * so no request waits for another's round trip. A PGconn is not safe for
 * concurrent use; a connection is only touched by the thread that took it
 * from the pool (mu guards only the pool's bookkeeping).
 *
 * Durability: every write is committed before it returns, and a commit is
 * acknowledged by PostgreSQL only once its WAL is flushed as long as
 * synchronous_commit is on (the default). We never turn it off, and if the
 * server or role has it off we turn it back on for our sessions: an
 * acknowledged key must survive a crash of the database as well as ours.
 *
 * Atomicity and concurrency match store_sqlite.c: the multi-statement writes
 * (create_key, delete_key, add_version, tag, untag) are one transaction each.
 * SQLite serialises writers; here READ COMMITTED plus row locks give the same
 * outcomes: add_version's "UPDATE ... WHERE current_version=from" re-checks
 * the row after a concurrent rotation commits (0 rows: CL_ERR_STATE), and
 * tag() locks the key's row so two taggers cannot both pass the tag limit.
 * Every transaction that writes several rows of a key takes the key's row
 * first, so they queue on one lock in one order and cannot deadlock.
 *
 * Statements are prepared once per connection (PQprepare) and parameters are
 * always bound, never spliced into SQL. Key material arrives wrapped under the
 * root key (keys.c) and is stored as bytea, bound in binary: the store never
 * sees a plaintext key. The connection string may hold a password: it is
 * never logged, and wiped when the store closes.
 */
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/log.h"
#include "cloister/mem.h"

#include "store.h"

/* 1: before regions and imported key material; 2: keys, aliases and grants have a region, and
 * key_imports holds keys of Origin EXTERNAL; 3: the certificate service's tables (cas_sessions,
 * cas_nonces). A new database is created at the newest; an older one migrated step by step. */
#define KMS_PG_SCHEMA_VERSION 5
#define KMS_PG_POOL_MAX 64
/* Any constant: serialises schema creation between instances starting together. */
#define KMS_PG_SCHEMA_LOCK "7242180437"

enum kms_pg_q {
    Q_INSERT_KEY,
    Q_INSERT_VERSION,
    Q_GET_KEY,
    Q_UPDATE_KEY,
    Q_DEL_KEY_ALIASES,
    Q_DEL_KEY_GRANTS,
    Q_DEL_KEY_TAGS,
    Q_DEL_KEY_VERSIONS,
    Q_DEL_KEY,
    Q_LIST_KEYS,
    Q_GET_MATERIAL,
    Q_ROTATE,
    Q_LIST_VERSIONS,
    Q_INSERT_ALIAS,
    Q_UPDATE_ALIAS,
    Q_GET_ALIAS,
    Q_DEL_ALIAS,
    Q_LIST_ALIASES,
    Q_INSERT_GRANT,
    Q_GET_GRANT,
    Q_DEL_GRANT,
    Q_LIST_GRANTS,
    Q_LOCK_KEY,
    Q_UPSERT_TAG,
    Q_COUNT_TAGS,
    Q_DEL_TAG,
    Q_LIST_TAGS,
    Q_INSERT_IMPORT,
    Q_GET_IMPORT,
    Q_SET_IMPORT_PARAMS,
    Q_DEL_MATERIAL_V1,
    Q_SET_IMPORTED,
    Q_ENABLE_IMPORTED,
    Q_DROP_MATERIAL,
    Q_PENDING_IMPORT,
    Q_DEL_KEY_IMPORT,
    Q_CAS_GET,
    Q_CAS_INSERT,
    Q_CAS_UPDATE,
    Q_CAS_NONCE_PURGE,
    Q_CAS_NONCE_USE,
    Q_IAM_INSERT,
    Q_IAM_REPLACE,
    Q_IAM_UPSERT,
    Q_IAM_GET,
    Q_IAM_DELETE,
    Q_IAM_LIST,
    Q_JOB_INSERT,
    Q_JOB_REPLACE,
    Q_JOB_UPSERT,
    Q_JOB_GET,
    Q_JOB_LIST,
    Q_JOB_EVENT_ADD,
    Q_JOB_EVENT_LIST,
    Q_COUNT
};

#define KMS_PG_KEY_COLS \
    "key_id,arn,account,created,state,description,key_usage,key_spec,deletion_date,pending_days," \
    "current_version,rotation_enabled,rotation_period,last_rotated,policy,region"
#define KMS_PG_GRANT_COLS "grant_id,key_id,grantee,retiring,issuing_account,operations,name,constraints,created,region"
#define KMS_PG_IMPORT_COLS \
    "material_id,imported,material_valid_to,wrapping_alg,wrapping_spec,params_valid_to,token_hash,wrapping_key"
/* kms_key_state values as SQL text: the enum's values are the stored ones. */
_Static_assert(KMS_KEY_ENABLED == 0 && KMS_KEY_PENDING_DELETION == 2 && KMS_KEY_PENDING_IMPORT == 3,
               "the key states in SQL text");

/* read_only: safe to run again on a fresh connection when the old one dropped mid-statement. */
static const struct {
    const char *sql;
    bool read_only;
} kms_pg_sql[Q_COUNT] = {
    [Q_INSERT_KEY] = {"INSERT INTO keys(" KMS_PG_KEY_COLS
                      ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)",
                      false},
    [Q_INSERT_VERSION] = {"INSERT INTO key_versions(key_id,version,wrapped,created,on_demand) VALUES($1,$2,$3,$4,$5)",
                          false},
    /* The import columns have names of their own, so the join needs no table prefixes. */
    [Q_GET_KEY] = {"SELECT " KMS_PG_KEY_COLS ",import_key IS NOT NULL,coalesce(imported,false),"
                   "coalesce(material_valid_to,0) FROM keys LEFT JOIN key_imports ON import_key=key_id WHERE key_id=$1",
                   true},
    [Q_UPDATE_KEY] = {"UPDATE keys SET state=$1,description=$2,deletion_date=$3,pending_days=$4,policy=$5,"
                      "rotation_enabled=$6,rotation_period=$7 WHERE key_id=$8",
                      false},
    [Q_DEL_KEY_ALIASES] = {"DELETE FROM aliases WHERE key_id=$1", false},
    [Q_DEL_KEY_GRANTS] = {"DELETE FROM grants WHERE key_id=$1", false},
    [Q_DEL_KEY_TAGS] = {"DELETE FROM tags WHERE key_id=$1", false},
    [Q_DEL_KEY_VERSIONS] = {"DELETE FROM key_versions WHERE key_id=$1", false},
    [Q_DEL_KEY] = {"DELETE FROM keys WHERE key_id=$1", false},
    [Q_LIST_KEYS] = {"SELECT key_id FROM keys WHERE account=$1 AND region=$2 AND key_id>$3 ORDER BY key_id LIMIT $4",
                     true},
    [Q_GET_MATERIAL] = {"SELECT wrapped FROM key_versions WHERE key_id=$1 AND version=$2", true},
    [Q_ROTATE] = {"UPDATE keys SET current_version=$1, last_rotated=$2 WHERE key_id=$3 AND current_version=$4", false},
    [Q_LIST_VERSIONS] = {"SELECT version,created,on_demand FROM key_versions WHERE key_id=$1 AND version>$2 "
                         "ORDER BY version LIMIT $3",
                         true},
    [Q_INSERT_ALIAS] = {"INSERT INTO aliases(key_id,updated,account,region,name,created) VALUES($1,$2,$3,$4,$5,$6)",
                        false},
    [Q_UPDATE_ALIAS] = {"UPDATE aliases SET key_id=$1, updated=$2 WHERE account=$3 AND region=$4 AND name=$5", false},
    [Q_GET_ALIAS] = {"SELECT name,key_id,created,updated FROM aliases WHERE account=$1 AND region=$2 AND name=$3",
                     true},
    [Q_DEL_ALIAS] = {"DELETE FROM aliases WHERE account=$1 AND region=$2 AND name=$3", false},
    [Q_LIST_ALIASES] = {"SELECT name,key_id,created,updated FROM aliases WHERE account=$1 AND region=$2 AND name>$3 "
                        "AND ($4='' OR key_id=$4) ORDER BY name LIMIT $5",
                        true},
    [Q_INSERT_GRANT] = {"INSERT INTO grants(" KMS_PG_GRANT_COLS ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)", false},
    [Q_GET_GRANT] = {"SELECT " KMS_PG_GRANT_COLS " FROM grants WHERE grant_id=$1", true},
    [Q_DEL_GRANT] = {"DELETE FROM grants WHERE grant_id=$1", false},
    [Q_LIST_GRANTS] = {"SELECT " KMS_PG_GRANT_COLS " FROM grants WHERE grant_id>$1 "
                       "AND ($2::text IS NULL OR key_id=$2) AND ($3::text IS NULL OR grantee=$3) "
                       "AND ($4::text IS NULL OR retiring=$4) AND ($5::text IS NULL OR grant_id=$5) "
                       "AND ($6::text IS NULL OR region=$6) ORDER BY grant_id LIMIT $7",
                       true},
    [Q_LOCK_KEY] = {"SELECT 1 FROM keys WHERE key_id=$1 FOR UPDATE", false},
    [Q_UPSERT_TAG] = {"INSERT INTO tags(key_id,tag_key,tag_value) VALUES($1,$2,$3) "
                      "ON CONFLICT(key_id,tag_key) DO UPDATE SET tag_value=excluded.tag_value",
                      false},
    [Q_COUNT_TAGS] = {"SELECT count(*) FROM tags WHERE key_id=$1", true},
    [Q_DEL_TAG] = {"DELETE FROM tags WHERE key_id=$1 AND tag_key=$2", false},
    [Q_LIST_TAGS] = {"SELECT tag_key,tag_value FROM tags WHERE key_id=$1 AND tag_key>$2 ORDER BY tag_key LIMIT $3",
                     true},
    [Q_INSERT_IMPORT] = {"INSERT INTO key_imports(import_key," KMS_PG_IMPORT_COLS ") "
                         "VALUES($1,'',false,0,'','',0,'','')",
                         false},
    [Q_GET_IMPORT] = {"SELECT " KMS_PG_IMPORT_COLS " FROM key_imports WHERE import_key=$1", true},
    [Q_SET_IMPORT_PARAMS] = {"UPDATE key_imports SET wrapping_alg=$1,wrapping_spec=$2,params_valid_to=$3,token_hash=$4,"
                             "wrapping_key=$5 WHERE import_key=$6",
                             false},
    [Q_DEL_MATERIAL_V1] = {"DELETE FROM key_versions WHERE key_id=$1 AND version=1", false},
    [Q_SET_IMPORTED] = {"UPDATE key_imports SET imported=true,material_id=$1,material_valid_to=$2 WHERE import_key=$3",
                        false},
    [Q_ENABLE_IMPORTED] = {"UPDATE keys SET state=0 WHERE key_id=$1 AND state<>2", false},
    [Q_DROP_MATERIAL] = {"UPDATE key_imports SET imported=false,material_valid_to=0 WHERE import_key=$1 AND imported "
                         "AND ($2::bigint=0 OR material_valid_to=$2::bigint)",
                         false},
    [Q_PENDING_IMPORT] = {"UPDATE keys SET state=3 WHERE key_id=$1 AND state<>2", false},
    [Q_DEL_KEY_IMPORT] = {"DELETE FROM key_imports WHERE import_key=$1", false},
    /* The certificate service (cas_store.c). The version as text: the result is binary (the record). */
    [Q_CAS_GET] = {"SELECT version::text,record FROM cas_sessions WHERE name=$1", true},
    [Q_CAS_INSERT] = {"INSERT INTO cas_sessions(name,version,record,updated) VALUES($1,1,$2,$3)", false},
    [Q_CAS_UPDATE] = {"UPDATE cas_sessions SET version=version+1,record=$1,updated=$2 WHERE name=$3 AND version=$4",
                      false},
    [Q_CAS_NONCE_PURGE] = {"DELETE FROM cas_nonces WHERE expires<$1", false},
    [Q_CAS_NONCE_USE] = {"INSERT INTO cas_nonces(nonce,expires) VALUES($1,$2)", false},
    /* IAM's entities (identity.h). */
    [Q_IAM_INSERT] = {"INSERT INTO iam_entities(kind,name,doc,updated) VALUES($1,$2,$3,$4)", false},
    [Q_IAM_REPLACE] = {"UPDATE iam_entities SET doc=$3,updated=$4 WHERE kind=$1 AND name=$2", false},
    [Q_IAM_UPSERT] = {"INSERT INTO iam_entities(kind,name,doc,updated) VALUES($1,$2,$3,$4) ON CONFLICT(kind,name) "
                      "DO UPDATE SET doc=excluded.doc,updated=excluded.updated",
                      false},
    [Q_IAM_GET] = {"SELECT doc FROM iam_entities WHERE kind=$1 AND name=$2", true},
    [Q_IAM_DELETE] = {"DELETE FROM iam_entities WHERE kind=$1 AND name=$2", false},
    [Q_IAM_LIST] = {"SELECT name,doc FROM iam_entities WHERE kind=$1 AND left(name,length($2))=$2 AND name>$3 "
                    "ORDER BY name LIMIT $4",
                    true},
    /* Training jobs (sagemaker.h). An account id is 12 digits: "ACCOUNT/NAME" orders as (account, name). */
    [Q_JOB_INSERT] = {"INSERT INTO training_jobs(account,name,doc,updated) VALUES($1,$2,$3,$4)", false},
    [Q_JOB_REPLACE] = {"UPDATE training_jobs SET doc=$3,updated=$4 WHERE account=$1 AND name=$2", false},
    [Q_JOB_UPSERT] =
        {"INSERT INTO training_jobs(account,name,doc,updated) VALUES($1,$2,$3,$4) ON CONFLICT(account,name) "
         "DO UPDATE SET doc=excluded.doc,updated=excluded.updated",
         false},
    [Q_JOB_GET] = {"SELECT doc FROM training_jobs WHERE account=$1 AND name=$2", true},
    [Q_JOB_LIST] = {"SELECT account||'/'||name,doc FROM training_jobs WHERE ($1::text IS NULL OR account=$1) AND "
                    "account||'/'||name>$2 ORDER BY account,name LIMIT $3",
                    true},
    [Q_JOB_EVENT_ADD] = {"INSERT INTO training_job_events(account,name,seq,time,message) VALUES($1,$2,$3,$4,$5)",
                         false},
    [Q_JOB_EVENT_LIST] = {"SELECT seq,time,message FROM training_job_events WHERE account=$1 AND name=$2 AND seq>=$3 "
                          "AND seq<$4 ORDER BY seq LIMIT $5",
                          true},
};

/*
 * COLLATE "C" on every ordered text column: listings page with "> after",
 * which must follow the same byte order as SQLite's (and not depend on the
 * database's locale). The schema_version row lets a later build migrate, and
 * an older build refuse a newer schema rather than misread it.
 */
/* Keys of Origin EXTERNAL (version 2). Column names differ from those of keys (Q_GET_KEY joins). */
#define KMS_PG_KEY_IMPORTS_DDL \
    "CREATE TABLE key_imports(" \
    " import_key TEXT COLLATE \"C\" PRIMARY KEY, material_id TEXT NOT NULL, imported BOOLEAN NOT NULL," \
    " material_valid_to BIGINT NOT NULL, wrapping_alg TEXT NOT NULL, wrapping_spec TEXT NOT NULL," \
    " params_valid_to BIGINT NOT NULL, token_hash BYTEA NOT NULL, wrapping_key BYTEA NOT NULL)"
/* The certificate service's sessions and used nonces (version 3; docs/cas.md, "Storage"). */
#define KMS_PG_CAS_SESSIONS_DDL \
    "CREATE TABLE cas_sessions(" \
    " name TEXT COLLATE \"C\" PRIMARY KEY, version BIGINT NOT NULL, record BYTEA NOT NULL, updated BIGINT NOT NULL)"
#define KMS_PG_CAS_NONCES_DDL "CREATE TABLE cas_nonces(nonce TEXT COLLATE \"C\" PRIMARY KEY, expires BIGINT NOT NULL)"
#define KMS_PG_CAS_NONCES_INDEX_DDL "CREATE INDEX cas_nonces_expires ON cas_nonces(expires)"
/* IAM's users, access keys, roles, policies and attachments (version 4; identity.h). */
#define KMS_PG_IAM_DDL \
    "CREATE TABLE iam_entities(kind TEXT COLLATE \"C\" NOT NULL, name TEXT COLLATE \"C\" NOT NULL, doc TEXT NOT NULL," \
    " updated BIGINT NOT NULL, PRIMARY KEY(kind, name))"

/* SageMaker's training jobs and their logs (version 5; sagemaker.h). */
#define KMS_PG_JOBS_DDL \
    "CREATE TABLE training_jobs(account TEXT COLLATE \"C\" NOT NULL, name TEXT COLLATE \"C\" NOT NULL," \
    " doc TEXT NOT NULL, updated BIGINT NOT NULL, PRIMARY KEY(account, name))"
#define KMS_PG_JOB_EVENTS_DDL \
    "CREATE TABLE training_job_events(account TEXT COLLATE \"C\" NOT NULL, name TEXT COLLATE \"C\" NOT NULL," \
    " seq BIGINT NOT NULL, time BIGINT NOT NULL, message TEXT NOT NULL, PRIMARY KEY(account, name, seq))"

static const char *kms_pg_schema =
    "CREATE TABLE keys("
    " key_id TEXT COLLATE \"C\" PRIMARY KEY, arn TEXT NOT NULL, account TEXT COLLATE \"C\" NOT NULL,"
    " created BIGINT NOT NULL, state INTEGER NOT NULL, description TEXT NOT NULL, key_usage TEXT NOT NULL,"
    " key_spec TEXT NOT NULL, deletion_date BIGINT NOT NULL, pending_days INTEGER NOT NULL,"
    " current_version BIGINT NOT NULL, rotation_enabled BOOLEAN NOT NULL, rotation_period INTEGER NOT NULL,"
    " last_rotated BIGINT NOT NULL, policy TEXT NOT NULL, region TEXT COLLATE \"C\" NOT NULL);"
    "CREATE INDEX keys_account_region ON keys(account, region, key_id);"
    "CREATE TABLE key_versions("
    " key_id TEXT COLLATE \"C\" NOT NULL, version BIGINT NOT NULL, wrapped BYTEA NOT NULL, created BIGINT NOT NULL,"
    " on_demand BOOLEAN NOT NULL DEFAULT false, PRIMARY KEY(key_id, version));"
    "CREATE TABLE aliases("
    " account TEXT COLLATE \"C\" NOT NULL, name TEXT COLLATE \"C\" NOT NULL, key_id TEXT COLLATE \"C\" NOT NULL,"
    " created BIGINT NOT NULL, updated BIGINT NOT NULL, region TEXT COLLATE \"C\" NOT NULL,"
    " PRIMARY KEY(account, region, name));"
    "CREATE INDEX aliases_key ON aliases(key_id);"
    "CREATE TABLE grants("
    " grant_id TEXT COLLATE \"C\" PRIMARY KEY, key_id TEXT COLLATE \"C\" NOT NULL, grantee TEXT NOT NULL,"
    " retiring TEXT NOT NULL, issuing_account TEXT NOT NULL, operations TEXT NOT NULL, name TEXT NOT NULL,"
    " constraints TEXT NOT NULL, created BIGINT NOT NULL, region TEXT COLLATE \"C\" NOT NULL);"
    "CREATE INDEX grants_key ON grants(key_id, grant_id);"
    "CREATE TABLE tags("
    " key_id TEXT COLLATE \"C\" NOT NULL, tag_key TEXT COLLATE \"C\" NOT NULL, tag_value TEXT NOT NULL,"
    " PRIMARY KEY(key_id, tag_key));" KMS_PG_KEY_IMPORTS_DDL ";" KMS_PG_CAS_SESSIONS_DDL ";" KMS_PG_CAS_NONCES_DDL
    ";" KMS_PG_CAS_NONCES_INDEX_DDL ";" KMS_PG_IAM_DDL ";" KMS_PG_JOBS_DDL ";" KMS_PG_JOB_EVENTS_DDL ";"
    "INSERT INTO schema_version(version) VALUES(5);";

/*
 * Version 1 (before regions and imported key material) to 2, one statement at a time in the schema transaction; $1 is
 * the default region. A key's region is the one in its ARN (arn:aws:kms:REGION:ACCOUNT:key/ID, written with the
 * configured region when it was made); an alias and a grant get their key's. The region joins the aliases' primary key;
 * key_imports is new.
 */
static const char *const kms_pg_migrate_v2[] = {
    "ALTER TABLE keys ADD COLUMN region TEXT COLLATE \"C\" NOT NULL DEFAULT ''",
    "UPDATE keys SET region=COALESCE(NULLIF(split_part(arn, ':', 4), ''), $1)",
    "DROP INDEX IF EXISTS keys_account",
    "CREATE INDEX keys_account_region ON keys(account, region, key_id)",
    "ALTER TABLE aliases ADD COLUMN region TEXT COLLATE \"C\" NOT NULL DEFAULT ''",
    "UPDATE aliases SET region=COALESCE((SELECT k.region FROM keys k WHERE k.key_id=aliases.key_id), $1)",
    "ALTER TABLE aliases DROP CONSTRAINT aliases_pkey, ADD PRIMARY KEY(account, region, name)",
    "ALTER TABLE grants ADD COLUMN region TEXT COLLATE \"C\" NOT NULL DEFAULT ''",
    "UPDATE grants SET region=COALESCE((SELECT k.region FROM keys k WHERE k.key_id=grants.key_id), $1)",
    KMS_PG_KEY_IMPORTS_DDL, // NOLINT(bugprone-suspicious-missing-comma): one statement in pieces
    "INSERT INTO schema_version(version) VALUES(2)",
};

/* Version 2 to 3: the certificate service's tables (docs/cas.md); nothing else changes. */
static const char *const kms_pg_migrate_v3[] = {
    KMS_PG_CAS_SESSIONS_DDL,
    KMS_PG_CAS_NONCES_DDL,
    KMS_PG_CAS_NONCES_INDEX_DDL,
    "INSERT INTO schema_version(version) VALUES(3)",
};

/* Version 3 to 4: IAM's identities (identity.h); nothing else changes. */
static const char *const kms_pg_migrate_v4[] = {
    KMS_PG_IAM_DDL,
    "INSERT INTO schema_version(version) VALUES(4)",
};

/* Version 4 to 5: SageMaker's training jobs and their logs (sagemaker.h); nothing else changes. */
static const char *const kms_pg_migrate_v5[] = {
    KMS_PG_JOBS_DDL,
    KMS_PG_JOB_EVENTS_DDL,
    "INSERT INTO schema_version(version) VALUES(5)",
};

typedef struct kms_pg_conn {
    PGconn *c;              /* NULL until first used */
    bool busy;              /* taken from the pool (under kms_pg.mu) */
    bool in_tx;             /* inside our BEGIN: a dropped connection is not retried */
    bool prepared[Q_COUNT]; /* statements prepared on c (reset with the connection) */
} kms_pg_conn;

typedef struct kms_pg {
    char *conninfo; /* may hold a password: never logged, wiped at close */
    pthread_mutex_t mu;
    pthread_cond_t free_cv;
    size_t n_conns;
    kms_pg_conn *conns;
    bool warned_sync; /* under mu */
} kms_pg;

/* A number as a text parameter. */
typedef char kms_pg_num[24];

static const char *kms_pg_i64(kms_pg_num b, int64_t v)
{
    (void)snprintf(b, sizeof(kms_pg_num), "%lld", (long long)v);
    return b;
}

static int64_t kms_pg_col_i64(const PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static bool kms_pg_col_bool(const PGresult *r, int row, int col) { return PQgetvalue(r, row, col)[0] == 't'; }

static void kms_pg_copy(char *dst, size_t cap, const PGresult *r, int row, int col)
{
    (void)snprintf(dst, cap, "%s", PQgetvalue(r, row, col));
}

/* libpq's messages span lines (a hint on a tabbed second line); ours are one line. */
static const char *kms_pg_one_line(const char *msg, char *buf, size_t cap)
{
    (void)snprintf(buf, cap, "%s", msg);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = '\0';
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = (buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t') ? ' ' : buf[i];
        if (ch == ' ' && w > 0 && buf[w - 1] == ' ') continue;
        buf[w++] = ch;
    }
    buf[w] = '\0';
    return buf;
}

static const char *kms_pg_conn_msg(const PGconn *c, char *buf, size_t cap)
{
    return kms_pg_one_line(c != NULL ? PQerrorMessage(c) : "out of memory", buf, cap);
}

/* Server notices (NOTICE from CREATE ... IF NOT EXISTS, the FATAL a shutdown sends an idle
 * session) go to our log, one line each, rather than libpq's default of raw stderr. */
static void kms_pg_notice(void *arg, const char *msg)
{
    (void)arg;
    char buf[512];
    CL_LOG_DEBUG("PostgreSQL: %s", kms_pg_one_line(msg, buf, sizeof(buf)));
}

/*
 * Fails a result that is not `want`. Only the server's primary message is
 * kept: the DETAIL of a constraint violation quotes the row's values. A
 * unique violation is CL_ERR_EXISTS (callers name what already exists).
 */
static CL_MUST_USE cl_status kms_pg_check(PGconn *c, const PGresult *r, ExecStatusType want, const char *what)
{
    if (r != NULL && PQresultStatus(r) == want) return CL_OK;
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && strcmp(state, "23505") == 0)
        CL_FAIL(CL_ERR_EXISTS, "key store: %s: the row already exists", what);
    const char *primary = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char buf[512];
    primary = primary != NULL ? kms_pg_one_line(primary, buf, sizeof(buf)) : kms_pg_conn_msg(c, buf, sizeof(buf));
    if (PQstatus(c) == CONNECTION_BAD)
        CL_FAIL(CL_ERR_IO, "key store: %s: lost the connection to PostgreSQL (%s)", what, primary);
    CL_FAIL(CL_ERR_IO, "key store: %s: PostgreSQL says: %s (SQLSTATE %s)", what, primary, state ? state : "none");
}

/* Runs SQL with no parameters (BEGIN, COMMIT, the schema). */
static CL_MUST_USE cl_status kms_pg_simple(PGconn *c, const char *sql, ExecStatusType want, const char *what)
{
    PGresult *r = PQexec(c, sql);
    cl_status rc = kms_pg_check(c, r, want, what);
    PQclear(r);
    return rc;
}

/* Session settings every connection needs; see the top of the file for why synchronous_commit. */
static CL_MUST_USE cl_status kms_pg_session(kms_pg *q, PGconn *c)
{
    cl_status rc = CL_OK;
    PGresult *r = PQexec(c, "SHOW synchronous_commit");
    CL_GUARD_GOTO(kms_pg_check(c, r, PGRES_TUPLES_OK, "reading synchronous_commit"));
    if (PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "off") == 0) {
        CL_GUARD_GOTO(kms_pg_simple(c, "SET synchronous_commit TO on", PGRES_COMMAND_OK, "setting synchronous_commit"));
        pthread_mutex_lock(&q->mu);
        bool warn = !q->warned_sync;
        q->warned_sync = true;
        pthread_mutex_unlock(&q->mu);
        if (warn)
            CL_LOG_WARN("PostgreSQL has synchronous_commit off; cloister-kms turns it on for its own sessions, "
                        "so that an acknowledged key survives a database crash");
    }
out:
    PQclear(r);
    return rc;
}

/* (Re)connects pc. The conninfo never appears in a message: only the database and host libpq resolved. */
static CL_MUST_USE cl_status kms_pg_connect(kms_pg *q, kms_pg_conn *pc)
{
    cl_status rc = CL_OK;
    memset(pc->prepared, 0, sizeof(pc->prepared));
    pc->in_tx = false;
    if (pc->c == NULL) {
        /* Defaults before the conninfo, which may override them: our name, and a bound on a connection
         * attempt to an unreachable host (a worker thread waits for it, the TCP default is minutes).
         * client_encoding after it, so that it cannot: our strings (JSON from requests) are UTF-8. */
        const char *const kw[] = {"application_name", "connect_timeout", "dbname", "client_encoding", NULL};
        const char *const val[] = {"cloister-kms", "10", q->conninfo, "UTF8", NULL};
        pc->c = PQconnectdbParams(kw, val, 1);
        if (pc->c != NULL) (void)PQsetNoticeProcessor(pc->c, kms_pg_notice, NULL);
    } else {
        PQreset(pc->c);
    }
    if (pc->c == NULL || PQstatus(pc->c) != CONNECTION_OK) {
        char buf[512];
        const char *db = pc->c != NULL ? PQdb(pc->c) : NULL;
        const char *host = pc->c != NULL ? PQhost(pc->c) : NULL;
        CL_FAIL_GOTO(CL_ERR_IO,
                     "key store: cannot connect to PostgreSQL database '%s' on '%s': %s (check that it is up and "
                     "'store.conninfo')",
                     db ? db : "?", host ? host : "?", kms_pg_conn_msg(pc->c, buf, sizeof(buf)));
    }
    CL_GUARD_GOTO(kms_pg_session(q, pc->c));
out:
    return rc;
}

/*
 * Runs prepared statement `id`. Parameters are text unless fmts says binary;
 * results are text unless binary_result. A read-only statement outside a
 * transaction is retried once on a new connection when the old one dropped
 * (a restarted database): it cannot have changed anything.
 */
static CL_MUST_USE cl_status kms_pg_run(kms_pg *q, kms_pg_conn *pc, enum kms_pg_q id, int n, const char *const *vals,
                                        const int *lens, const int *fmts, bool binary_result, ExecStatusType want,
                                        PGresult **out)
{
    cl_status rc = CL_OK;
    *out = NULL;
    char name[16], what[80];
    (void)snprintf(name, sizeof(name), "kms%d", (int)id);
    /* The statement's start names it in a message (never its parameters). */
    (void)snprintf(what, sizeof(what), "\"%.48s...\"", kms_pg_sql[id].sql);
    for (int attempt = 0;; attempt++) {
        if (!pc->prepared[id]) {
            PGresult *p = PQprepare(pc->c, name, kms_pg_sql[id].sql, 0, NULL);
            rc = kms_pg_check(pc->c, p, PGRES_COMMAND_OK, what);
            PQclear(p);
            if (rc == CL_OK) pc->prepared[id] = true;
        }
        if (rc == CL_OK) {
            *out = PQexecPrepared(pc->c, name, n, vals, lens, fmts, binary_result ? 1 : 0);
            rc = kms_pg_check(pc->c, *out, want, what);
        }
        if (rc == CL_OK) break;
        bool retry = attempt == 0 && kms_pg_sql[id].read_only && !pc->in_tx && PQstatus(pc->c) == CONNECTION_BAD;
        if (!retry) break;
        PQclear(*out);
        *out = NULL;
        CL_LOG_WARN("key store: the PostgreSQL connection dropped; reconnecting");
        CL_GUARD_GOTO(kms_pg_connect(q, pc));
    }
out:
    if (rc != CL_OK) {
        PQclear(*out);
        *out = NULL;
    }
    return rc;
}

/*
 * Whether an idle pooled connection still works. The server sends an idle
 * session nothing but notices; when it goes away (a restart) it sends a
 * termination notice, then EOF. Reading what is pending, without blocking,
 * finds that, so the connection is replaced before a statement is sent on it
 * rather than failing the statement (which for a write we could not retry).
 */
static bool kms_pg_idle_alive(PGconn *c)
{
    if (PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE) return false;
    struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
    for (int i = 0; i < 4 && poll(&p, 1, 0) == 1; i++)
        if (PQconsumeInput(c) != 1 || PQstatus(c) != CONNECTION_OK) return false;
    return PQstatus(c) == CONNECTION_OK;
}

/* Takes a connection from the pool, connected and idle; waits while all are busy. */
static CL_MUST_USE cl_status kms_pg_acquire(kms_pg *q, kms_pg_conn **out)
{
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    pthread_mutex_lock(&q->mu);
    while (pc == NULL) {
        /* An open connection first: a new one costs a round trip and a backend. */
        for (size_t i = 0; i < q->n_conns && pc == NULL; i++)
            if (!q->conns[i].busy && q->conns[i].c != NULL) pc = &q->conns[i];
        for (size_t i = 0; i < q->n_conns && pc == NULL; i++)
            if (!q->conns[i].busy) pc = &q->conns[i];
        if (pc == NULL) pthread_cond_wait(&q->free_cv, &q->mu);
    }
    pc->busy = true;
    pthread_mutex_unlock(&q->mu);
    bool alive = pc->c != NULL && kms_pg_idle_alive(pc->c);
    if (!alive) CL_GUARD_GOTO(kms_pg_connect(q, pc));
    *out = pc;
out:
    if (rc != CL_OK) {
        pthread_mutex_lock(&q->mu);
        pc->busy = false;
        pthread_cond_signal(&q->free_cv);
        pthread_mutex_unlock(&q->mu);
    }
    return rc;
}

/* Gives pc back, rolling back a transaction a failure left open. NULL is fine. */
static void kms_pg_release(kms_pg *q, kms_pg_conn *pc)
{
    if (pc == NULL) return;
    if (pc->in_tx) {
        PGresult *r = PQexec(pc->c, "ROLLBACK");
        PQclear(r);
        pc->in_tx = false;
    }
    pthread_mutex_lock(&q->mu);
    pc->busy = false;
    pthread_cond_signal(&q->free_cv);
    pthread_mutex_unlock(&q->mu);
}

static CL_MUST_USE cl_status kms_pg_begin(kms_pg_conn *pc)
{
    CL_GUARD(kms_pg_simple(pc->c, "BEGIN", PGRES_COMMAND_OK, "starting a transaction"));
    pc->in_tx = true;
    return CL_OK;
}

/* COMMIT of an aborted transaction "succeeds" as ROLLBACK: the command tag tells which happened. */
static CL_MUST_USE cl_status kms_pg_commit(kms_pg_conn *pc)
{
    cl_status rc = CL_OK;
    PGresult *r = PQexec(pc->c, "COMMIT");
    CL_GUARD_GOTO(kms_pg_check(pc->c, r, PGRES_COMMAND_OK, "committing"));
    CL_ENSURE_GOTO(strcmp(PQcmdStatus(r), "COMMIT") == 0, CL_ERR_IO,
                   "key store: PostgreSQL rolled the transaction back instead of committing it");
    pc->in_tx = false;
out:
    PQclear(r);
    return rc;
}

static bool kms_pg_one_row_changed(const PGresult *r) { return strcmp(PQcmdTuples(CL_UNCONST(r)), "1") == 0; }

/* --- keys ------------------------------------------------------------------- */

static CL_MUST_USE cl_status kms_pg_insert_version(kms_pg *q, kms_pg_conn *pc, const char *key_id, uint32_t version,
                                                   const uint8_t *wrapped, size_t wrapped_len, int64_t created,
                                                   bool on_demand)
{
    kms_pg_num nv, nc;
    const char *v[] = {key_id, kms_pg_i64(nv, version), (const char *)wrapped, kms_pg_i64(nc, created),
                       on_demand ? "t" : "f"};
    const int lens[] = {0, 0, (int)wrapped_len, 0, 0};
    const int fmts[] = {0, 0, 1, 0, 0}; /* the wrapped key as raw bytes, no escaping */
    PGresult *r = NULL;
    cl_status rc = kms_pg_run(q, pc, Q_INSERT_VERSION, 5, v, lens, fmts, false, PGRES_COMMAND_OK, &r);
    PQclear(r);
    if (rc == CL_ERR_EXISTS) CL_FAIL(CL_ERR_EXISTS, "version %u of key %s already exists", version, key_id);
    if (rc != CL_OK) return cl_error_wrap("storing key material");
    return CL_OK;
}

static CL_MUST_USE cl_status kms_pg_create_key(kms_store *s, const kms_key_rec *k, const uint8_t *wrapped,
                                               size_t wrapped_len)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    CL_ENSURE(wrapped_len <= (size_t)1 << 20, CL_ERR_LIMIT, "wrapped key material of %zu bytes is too large",
              wrapped_len);
    kms_pg_num created, state, deletion, pending, version, period, rotated;
    const char *v[] = {k->key_id,
                       k->arn,
                       k->account,
                       kms_pg_i64(created, k->created),
                       kms_pg_i64(state, k->state),
                       k->description,
                       k->key_usage,
                       k->key_spec,
                       kms_pg_i64(deletion, k->deletion_date),
                       kms_pg_i64(pending, k->pending_days),
                       kms_pg_i64(version, k->current_version),
                       k->rotation_enabled ? "t" : "f",
                       kms_pg_i64(period, k->rotation_period_days),
                       kms_pg_i64(rotated, k->last_rotated),
                       k->policy ? k->policy : "",
                       k->region};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_begin(pc));
    rc = kms_pg_run(q, pc, Q_INSERT_KEY, 16, v, NULL, NULL, false, PGRES_COMMAND_OK, &r);
    if (rc == CL_ERR_EXISTS) CL_FAIL_GOTO(CL_ERR_EXISTS, "key %s already exists", k->key_id);
    if (rc != CL_OK) goto out;
    if (wrapped == NULL) {
        PQclear(r);
        r = NULL;
        CL_GUARD_GOTO(kms_pg_run(q, pc, Q_INSERT_IMPORT, 1, v, NULL, NULL, false, PGRES_COMMAND_OK, &r));
    } else {
        CL_GUARD_GOTO(
            kms_pg_insert_version(q, pc, k->key_id, k->current_version, wrapped, wrapped_len, k->created, false));
    }
    CL_GUARD_GOTO(kms_pg_commit(pc));
out:
    PQclear(r);
    kms_pg_release(q, pc); /* rolls back what a failure left open */
    return rc;
}

static CL_MUST_USE cl_status kms_pg_get_key(kms_store *s, const char *key_id, kms_key_rec *out)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    memset(out, 0, sizeof(*out));
    const char *v[] = {key_id};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_GET_KEY, 1, v, NULL, NULL, false, PGRES_TUPLES_OK, &r));
    if (PQntuples(r) == 0) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no key %s", key_id);
    kms_pg_copy(out->key_id, sizeof(out->key_id), r, 0, 0);
    kms_pg_copy(out->arn, sizeof(out->arn), r, 0, 1);
    kms_pg_copy(out->account, sizeof(out->account), r, 0, 2);
    out->created = kms_pg_col_i64(r, 0, 3);
    out->state = (kms_key_state)kms_pg_col_i64(r, 0, 4);
    kms_pg_copy(out->description, sizeof(out->description), r, 0, 5);
    kms_pg_copy(out->key_usage, sizeof(out->key_usage), r, 0, 6);
    kms_pg_copy(out->key_spec, sizeof(out->key_spec), r, 0, 7);
    out->deletion_date = kms_pg_col_i64(r, 0, 8);
    out->pending_days = (int)kms_pg_col_i64(r, 0, 9);
    out->current_version = (uint32_t)kms_pg_col_i64(r, 0, 10);
    out->rotation_enabled = kms_pg_col_bool(r, 0, 11);
    out->rotation_period_days = (int)kms_pg_col_i64(r, 0, 12);
    out->last_rotated = kms_pg_col_i64(r, 0, 13);
    out->policy = strdup(PQgetvalue(r, 0, 14));
    kms_pg_copy(out->region, sizeof(out->region), r, 0, 15);
    if (out->policy == NULL) CL_FAIL_GOTO(CL_ERR_NOMEM, "out of memory for a key policy");
    out->external = kms_pg_col_bool(r, 0, 16);
    out->imported = kms_pg_col_bool(r, 0, 17);
    out->material_valid_to = kms_pg_col_i64(r, 0, 18);
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_update_key(kms_store *s, const kms_key_rec *k)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    kms_pg_num state, deletion, pending, period;
    const char *v[] = {kms_pg_i64(state, k->state),
                       k->description,
                       kms_pg_i64(deletion, k->deletion_date),
                       kms_pg_i64(pending, k->pending_days),
                       k->policy ? k->policy : "",
                       k->rotation_enabled ? "t" : "f",
                       kms_pg_i64(period, k->rotation_period_days),
                       k->key_id};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_UPDATE_KEY, 8, v, NULL, NULL, false, PGRES_COMMAND_OK, &r));
    if (!kms_pg_one_row_changed(r)) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no key %s", k->key_id);
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_delete_key(kms_store *s, const char *key_id)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    /* The key's row first, as tag() and add_version() lock it first: one lock order, no deadlock. */
    static const enum kms_pg_q del[] = {Q_LOCK_KEY,         Q_DEL_KEY_ALIASES, Q_DEL_KEY_GRANTS, Q_DEL_KEY_TAGS,
                                        Q_DEL_KEY_VERSIONS, Q_DEL_KEY_IMPORT,  Q_DEL_KEY};
    const char *v[] = {key_id};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_begin(pc));
    for (size_t i = 0; i < sizeof(del) / sizeof(del[0]); i++) {
        PGresult *r = NULL;
        rc = kms_pg_run(q, pc, del[i], 1, v, NULL, NULL, false,
                        del[i] == Q_LOCK_KEY ? PGRES_TUPLES_OK : PGRES_COMMAND_OK, &r);
        PQclear(r);
        if (rc != CL_OK) goto out;
    }
    CL_GUARD_GOTO(kms_pg_commit(pc));
out:
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_list_keys(kms_store *s, const char *account, const char *region, const char *after,
                                              size_t limit, char (*out)[KMS_KEY_ID_LEN + 1], size_t *n, bool *more)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    *n = 0;
    *more = false;
    kms_pg_num lim;
    const char *v[] = {account, region, after, kms_pg_i64(lim, (int64_t)limit + 1)};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_LIST_KEYS, 4, v, NULL, NULL, false, PGRES_TUPLES_OK, &r));
    size_t rows = (size_t)PQntuples(r);
    *more = rows > limit;
    for (; *n < rows && *n < limit; (*n)++) kms_pg_copy(out[*n], KMS_KEY_ID_LEN + 1, r, (int)*n, 0);
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_get_material(kms_store *s, const char *key_id, uint32_t version, cl_buf *wrapped)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    kms_pg_num ver;
    const char *v[] = {key_id, kms_pg_i64(ver, version)};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    /* Binary result: the bytea arrives as the bytes themselves. */
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_GET_MATERIAL, 2, v, NULL, NULL, true, PGRES_TUPLES_OK, &r));
    if (PQntuples(r) == 0) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no version %u of key %s", version, key_id);
    CL_GUARD_GOTO(cl_buf_append(wrapped, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0)));
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_add_version(kms_store *s, const char *key_id, uint32_t from, const uint8_t *wrapped,
                                                size_t wrapped_len, int64_t now, bool on_demand)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    kms_pg_num to, when, base;
    const char *v[] = {kms_pg_i64(to, (int64_t)from + 1), kms_pg_i64(when, now), key_id, kms_pg_i64(base, from)};
    CL_ENSURE(wrapped_len <= (size_t)1 << 20, CL_ERR_LIMIT, "wrapped key material of %zu bytes is too large",
              wrapped_len);
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_begin(pc));
    /* Under READ COMMITTED a concurrent rotation's row lock makes this wait, then re-check
     * current_version against the committed row: the loser changes nothing. */
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_ROTATE, 4, v, NULL, NULL, false, PGRES_COMMAND_OK, &r));
    if (!kms_pg_one_row_changed(r)) CL_FAIL_GOTO(CL_ERR_STATE, "key %s was rotated concurrently", key_id);
    CL_GUARD_GOTO(kms_pg_insert_version(q, pc, key_id, from + 1, wrapped, wrapped_len, now, on_demand));
    CL_GUARD_GOTO(kms_pg_commit(pc));
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_list_versions(kms_store *s, const char *key_id, uint32_t after, size_t limit,
                                                  uint32_t *versions, int64_t *created, bool *on_demand, size_t *n,
                                                  bool *more)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    *n = 0;
    *more = false;
    kms_pg_num a, lim;
    const char *v[] = {key_id, kms_pg_i64(a, after), kms_pg_i64(lim, (int64_t)limit + 1)};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_LIST_VERSIONS, 3, v, NULL, NULL, false, PGRES_TUPLES_OK, &r));
    size_t rows = (size_t)PQntuples(r);
    *more = rows > limit;
    for (; *n < rows && *n < limit; (*n)++) {
        versions[*n] = (uint32_t)kms_pg_col_i64(r, (int)*n, 0);
        created[*n] = kms_pg_col_i64(r, (int)*n, 1);
        on_demand[*n] = kms_pg_col_bool(r, (int)*n, 2);
    }
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

/* --- aliases ---------------------------------------------------------------- */

static CL_MUST_USE cl_status kms_pg_alias_write(kms_store *s, enum kms_pg_q id, const char *account, const char *region,
                                                const kms_alias_rec *a)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    bool insert = id == Q_INSERT_ALIAS;
    kms_pg_num upd, cre;
    const char *v[] = {a->key_id, kms_pg_i64(upd, a->updated), account, region, a->name, kms_pg_i64(cre, a->created)};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    rc = kms_pg_run(q, pc, id, insert ? 6 : 5, v, NULL, NULL, false, PGRES_COMMAND_OK, &r);
    if (rc == CL_ERR_EXISTS) CL_FAIL_GOTO(CL_ERR_EXISTS, "alias %s already exists", a->name);
    if (rc != CL_OK) goto out;
    if (!insert && !kms_pg_one_row_changed(r)) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no alias %s", a->name);
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_create_alias(kms_store *s, const char *account, const char *region,
                                                 const kms_alias_rec *a)
{
    return kms_pg_alias_write(s, Q_INSERT_ALIAS, account, region, a);
}

static CL_MUST_USE cl_status kms_pg_update_alias(kms_store *s, const char *account, const char *region,
                                                 const kms_alias_rec *a)
{
    return kms_pg_alias_write(s, Q_UPDATE_ALIAS, account, region, a);
}

static void kms_pg_alias_from_row(const PGresult *r, int row, kms_alias_rec *a)
{
    kms_pg_copy(a->name, sizeof(a->name), r, row, 0);
    kms_pg_copy(a->key_id, sizeof(a->key_id), r, row, 1);
    a->created = kms_pg_col_i64(r, row, 2);
    a->updated = kms_pg_col_i64(r, row, 3);
}

static CL_MUST_USE cl_status kms_pg_get_alias(kms_store *s, const char *account, const char *region, const char *name,
                                              kms_alias_rec *out)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    const char *v[] = {account, region, name};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_GET_ALIAS, 3, v, NULL, NULL, false, PGRES_TUPLES_OK, &r));
    if (PQntuples(r) == 0) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no alias %s", name);
    kms_pg_alias_from_row(r, 0, out);
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_delete_alias(kms_store *s, const char *account, const char *region,
                                                 const char *name)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    const char *v[] = {account, region, name};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_DEL_ALIAS, 3, v, NULL, NULL, false, PGRES_COMMAND_OK, &r));
    if (!kms_pg_one_row_changed(r)) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no alias %s", name);
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_list_aliases(kms_store *s, const char *account, const char *region,
                                                 const char *key_id, const char *after, size_t limit,
                                                 kms_alias_rec *out, size_t *n, bool *more)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    *n = 0;
    *more = false;
    kms_pg_num lim;
    const char *v[] = {account, region, after, key_id ? key_id : "", kms_pg_i64(lim, (int64_t)limit + 1)};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_LIST_ALIASES, 5, v, NULL, NULL, false, PGRES_TUPLES_OK, &r));
    size_t rows = (size_t)PQntuples(r);
    *more = rows > limit;
    for (; *n < rows && *n < limit; (*n)++) kms_pg_alias_from_row(r, (int)*n, &out[*n]);
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

/* --- grants ----------------------------------------------------------------- */

static CL_MUST_USE cl_status kms_pg_create_grant(kms_store *s, const kms_grant_rec *g)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    kms_pg_num created;
    const char *v[] = {g->grant_id,
                       g->key_id,
                       g->grantee,
                       g->retiring,
                       g->issuing_account,
                       g->operations,
                       g->name,
                       g->constraints ? g->constraints : "",
                       kms_pg_i64(created, g->created),
                       g->region};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    rc = kms_pg_run(q, pc, Q_INSERT_GRANT, 10, v, NULL, NULL, false, PGRES_COMMAND_OK, &r);
    if (rc == CL_ERR_EXISTS) CL_FAIL_GOTO(CL_ERR_EXISTS, "grant %s already exists", g->grant_id);
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_grant_from_row(const PGresult *r, int row, kms_grant_rec *g)
{
    memset(g, 0, sizeof(*g));
    kms_pg_copy(g->grant_id, sizeof(g->grant_id), r, row, 0);
    kms_pg_copy(g->key_id, sizeof(g->key_id), r, row, 1);
    kms_pg_copy(g->grantee, sizeof(g->grantee), r, row, 2);
    kms_pg_copy(g->retiring, sizeof(g->retiring), r, row, 3);
    kms_pg_copy(g->issuing_account, sizeof(g->issuing_account), r, row, 4);
    kms_pg_copy(g->operations, sizeof(g->operations), r, row, 5);
    kms_pg_copy(g->name, sizeof(g->name), r, row, 6);
    g->constraints = strdup(PQgetvalue(r, row, 7));
    g->created = kms_pg_col_i64(r, row, 8);
    kms_pg_copy(g->region, sizeof(g->region), r, row, 9);
    CL_ENSURE(g->constraints != NULL, CL_ERR_NOMEM, "out of memory for a grant");
    return CL_OK;
}

static CL_MUST_USE cl_status kms_pg_get_grant(kms_store *s, const char *grant_id, kms_grant_rec *out)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    memset(out, 0, sizeof(*out));
    const char *v[] = {grant_id};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_GET_GRANT, 1, v, NULL, NULL, false, PGRES_TUPLES_OK, &r));
    if (PQntuples(r) == 0) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no grant %s", grant_id);
    CL_GUARD_GOTO(kms_pg_grant_from_row(r, 0, out));
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_delete_grant(kms_store *s, const char *grant_id)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    const char *v[] = {grant_id};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_DEL_GRANT, 1, v, NULL, NULL, false, PGRES_COMMAND_OK, &r));
    if (!kms_pg_one_row_changed(r)) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no grant %s", grant_id);
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_list_grants(kms_store *s, const kms_grant_filter *f, const char *after,
                                                size_t limit, kms_grant_rec *out, size_t *n, bool *more)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    *n = 0;
    *more = false;
    kms_pg_num lim;
    /* A NULL filter is bound as SQL NULL: "any". */
    const char *v[] = {
        after, f->key_id, f->grantee, f->retiring, f->grant_id, f->region, kms_pg_i64(lim, (int64_t)limit + 1)};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_LIST_GRANTS, 7, v, NULL, NULL, false, PGRES_TUPLES_OK, &r));
    size_t rows = (size_t)PQntuples(r);
    *more = rows > limit;
    for (; *n < rows && *n < limit; (*n)++) CL_GUARD_GOTO(kms_pg_grant_from_row(r, (int)*n, &out[*n]));
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

/* --- tags ------------------------------------------------------------------- */

static CL_MUST_USE cl_status kms_pg_tag(kms_store *s, const char *key_id, const cl_kvlist *tags, size_t max_tags)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    const char *kv[] = {key_id};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_begin(pc));
    /* Taggers of one key queue on its row, so the count below sees the others' tags. */
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_LOCK_KEY, 1, kv, NULL, NULL, false, PGRES_TUPLES_OK, &r));
    PQclear(r);
    r = NULL;
    for (size_t i = 0; i < tags->count; i++) {
        const char *v[] = {key_id, tags->items[i].key, tags->items[i].value};
        CL_GUARD_GOTO(kms_pg_run(q, pc, Q_UPSERT_TAG, 3, v, NULL, NULL, false, PGRES_COMMAND_OK, &r));
        PQclear(r);
        r = NULL;
    }
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_COUNT_TAGS, 1, kv, NULL, NULL, false, PGRES_TUPLES_OK, &r));
    CL_ENSURE_GOTO(PQntuples(r) == 1, CL_ERR_IO, "key store: counting the tags of %s returned no row", key_id);
    if ((size_t)kms_pg_col_i64(r, 0, 0) > max_tags)
        CL_FAIL_GOTO(CL_ERR_LIMIT, "a key can have at most %zu tags", max_tags);
    CL_GUARD_GOTO(kms_pg_commit(pc));
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_untag(kms_store *s, const char *key_id, const char *const *keys, size_t n)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    const char *kv[] = {key_id};
    PGresult *lock = NULL;
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_begin(pc));
    /* The key's row first, as in tag(): tag and untag lists in different orders cannot deadlock. */
    rc = kms_pg_run(q, pc, Q_LOCK_KEY, 1, kv, NULL, NULL, false, PGRES_TUPLES_OK, &lock);
    PQclear(lock);
    if (rc != CL_OK) goto out;
    for (size_t i = 0; i < n; i++) {
        PGresult *r = NULL;
        const char *v[] = {key_id, keys[i]};
        rc = kms_pg_run(q, pc, Q_DEL_TAG, 2, v, NULL, NULL, false, PGRES_COMMAND_OK, &r);
        PQclear(r);
        if (rc != CL_OK) goto out;
    }
    CL_GUARD_GOTO(kms_pg_commit(pc));
out:
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_list_tags(kms_store *s, const char *key_id, const char *after, size_t limit,
                                              cl_kvlist *out, bool *more)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    *more = false;
    kms_pg_num lim;
    const char *v[] = {key_id, after, kms_pg_i64(lim, (int64_t)limit + 1)};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_LIST_TAGS, 3, v, NULL, NULL, false, PGRES_TUPLES_OK, &r));
    size_t rows = (size_t)PQntuples(r);
    *more = rows > limit;
    for (size_t i = 0; i < rows && i < limit; i++) {
        const char *k = PQgetvalue(r, (int)i, 0), *val = PQgetvalue(r, (int)i, 1);
        CL_GUARD_GOTO(cl_kvlist_add(out, k, (size_t)PQgetlength(r, (int)i, 0), val, (size_t)PQgetlength(r, (int)i, 1)));
    }
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

/* --- the certificate service ------------------------------------------------ */

static CL_MUST_USE cl_status kms_pg_cas_get(kms_store *s, const char *name, int64_t *version, cl_buf *record)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    const char *v[] = {name};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_CAS_GET, 1, v, NULL, NULL, true, PGRES_TUPLES_OK, &r));
    if (PQntuples(r) == 0) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no session %s", name);
    *version = kms_pg_col_i64(r, 0, 0);
    CL_ENSURE_GOTO(*version >= 1, CL_ERR_FORMAT, "key store: session %s has version %lld; the database is damaged",
                   name, (long long)*version);
    CL_GUARD_GOTO(cl_buf_append(record, PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1)));
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_cas_put(kms_store *s, const char *name, int64_t version, const uint8_t *record,
                                            size_t len, int64_t now)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    CL_ENSURE(len <= (size_t)16 << 20, CL_ERR_LIMIT, "a session record of %zu bytes is too large", len);
    kms_pg_num nnow, nver;
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    if (version == 0) {
        const char *v[] = {name, (const char *)record, kms_pg_i64(nnow, now)};
        const int lens[] = {0, (int)len, 0}, fmts[] = {0, 1, 0};
        rc = kms_pg_run(q, pc, Q_CAS_INSERT, 3, v, lens, fmts, false, PGRES_COMMAND_OK, &r);
        if (rc == CL_ERR_EXISTS) rc = CL_RAISE(CL_ERR_EXISTS, "session %s already exists", name);
    } else {
        const char *v[] = {(const char *)record, kms_pg_i64(nnow, now), name, kms_pg_i64(nver, version)};
        const int lens[] = {(int)len, 0, 0, 0}, fmts[] = {1, 0, 0, 0};
        rc = kms_pg_run(q, pc, Q_CAS_UPDATE, 4, v, lens, fmts, false, PGRES_COMMAND_OK, &r);
        if (rc == CL_OK && !kms_pg_one_row_changed(r))
            rc = CL_RAISE(CL_ERR_STATE, "session %s was changed by another request meanwhile", name);
    }
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_cas_use_nonce(kms_store *s, const char *nonce_id, int64_t expires, int64_t now)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    kms_pg_num nnow, nexp;
    const char *purge[] = {kms_pg_i64(nnow, now)};
    const char *use[] = {nonce_id, kms_pg_i64(nexp, expires)};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_begin(pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_CAS_NONCE_PURGE, 1, purge, NULL, NULL, false, PGRES_COMMAND_OK, &r));
    PQclear(r);
    r = NULL;
    /* The primary key decides between two instances taking one nonce at once: one insert waits
     * for the other's commit, then fails as a duplicate. */
    rc = kms_pg_run(q, pc, Q_CAS_NONCE_USE, 2, use, NULL, NULL, false, PGRES_COMMAND_OK, &r);
    if (rc == CL_ERR_EXISTS) CL_FAIL_GOTO(CL_ERR_EXISTS, "the nonce was used already");
    CL_GUARD_GOTO(rc);
    CL_GUARD_GOTO(kms_pg_commit(pc));
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

/* --- open and close ---------------------------------------------------------- */

static void kms_pg_close(kms_store *s)
{
    kms_pg *q = s->impl;
    if (q != NULL) {
        for (size_t i = 0; q->conns != NULL && i < q->n_conns; i++) PQfinish(q->conns[i].c);
        free(q->conns);
        if (q->conninfo != NULL) {
            cl_memzero(q->conninfo, strlen(q->conninfo));
            free(q->conninfo);
        }
        pthread_cond_destroy(&q->free_cv);
        pthread_mutex_destroy(&q->mu);
        free(q);
    }
    free(s);
}

/* --- imported key material ------------------------------------------------------------ */

/* A bytea column of a text result appended to out. */
static CL_MUST_USE cl_status kms_pg_col_bytea(const PGresult *r, int row, int col, cl_buf *out)
{
    size_t n = 0;
    unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
    CL_ENSURE(b != NULL, CL_ERR_NOMEM, "out of memory for a bytea column");
    cl_status rc = cl_buf_append(out, b, n);
    PQfreemem(b);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_get_import(kms_store *s, const char *key_id, kms_import_rec *out,
                                               cl_buf *wrapping_key)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    cl_buf hash;
    cl_buf_init(&hash, KMS_IMPORT_TOKEN_HASH_LEN);
    memset(out, 0, sizeof(*out));
    const char *v[] = {key_id};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_GET_IMPORT, 1, v, NULL, NULL, false, PGRES_TUPLES_OK, &r));
    if (PQntuples(r) == 0) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "key %s has no imported key material", key_id);
    kms_pg_copy(out->material_id, sizeof(out->material_id), r, 0, 0);
    out->imported = kms_pg_col_bool(r, 0, 1);
    out->valid_to = kms_pg_col_i64(r, 0, 2);
    kms_pg_copy(out->wrapping_alg, sizeof(out->wrapping_alg), r, 0, 3);
    kms_pg_copy(out->wrapping_spec, sizeof(out->wrapping_spec), r, 0, 4);
    out->params_valid_to = kms_pg_col_i64(r, 0, 5);
    CL_GUARD_GOTO(kms_pg_col_bytea(r, 0, 6, &hash));
    CL_ENSURE_GOTO(hash.len == 0 || hash.len == KMS_IMPORT_TOKEN_HASH_LEN, CL_ERR_FORMAT,
                   "key store: the import token hash of %s is %zu bytes; the database is damaged", key_id, hash.len);
    if (hash.len > 0) memcpy(out->token_hash, hash.data, KMS_IMPORT_TOKEN_HASH_LEN);
    if (wrapping_key != NULL) CL_GUARD_GOTO(kms_pg_col_bytea(r, 0, 7, wrapping_key));
out:
    cl_buf_free(&hash);
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_set_import_params(kms_store *s, const char *key_id, const kms_import_rec *p,
                                                      const uint8_t *wrapped_key, size_t wrapped_key_len)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    CL_ENSURE(wrapped_key_len <= (size_t)1 << 20, CL_ERR_LIMIT, "a wrapped wrapping key of %zu bytes is too large",
              wrapped_key_len);
    kms_pg_num until;
    const char *v[] = {p->wrapping_alg,
                       p->wrapping_spec,
                       kms_pg_i64(until, p->params_valid_to),
                       (const char *)p->token_hash,
                       (const char *)wrapped_key,
                       key_id};
    const int lens[] = {0, 0, 0, KMS_IMPORT_TOKEN_HASH_LEN, (int)wrapped_key_len, 0};
    const int fmts[] = {0, 0, 0, 1, 1, 0};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_SET_IMPORT_PARAMS, 6, v, lens, fmts, false, PGRES_COMMAND_OK, &r));
    if (!kms_pg_one_row_changed(r)) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "key %s has no import state", key_id);
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

/* Runs statement id with the n parameters v in pc's transaction; *changed: whether a row changed. */
static CL_MUST_USE cl_status kms_pg_tx_run(kms_pg *q, kms_pg_conn *pc, enum kms_pg_q id, int n, const char *const *v,
                                           bool *changed)
{
    PGresult *r = NULL;
    cl_status rc = kms_pg_run(q, pc, id, n, v, NULL, NULL, false, PGRES_COMMAND_OK, &r);
    if (changed != NULL) *changed = rc == CL_OK && kms_pg_one_row_changed(r);
    PQclear(r);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_import_material(kms_store *s, const char *key_id, const uint8_t *wrapped,
                                                    size_t wrapped_len, const char *material_id, int64_t valid_to,
                                                    int64_t now, bool enable)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    bool changed = false;
    kms_pg_num until;
    const char *set[] = {material_id, kms_pg_i64(until, valid_to), key_id};
    const char *key[] = {key_id};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_begin(pc));
    /* The key's row first, as every other transaction on a key locks it first. */
    PGresult *r = NULL;
    rc = kms_pg_run(q, pc, Q_LOCK_KEY, 1, key, NULL, NULL, false, PGRES_TUPLES_OK, &r);
    PQclear(r);
    CL_GUARD_GOTO(rc);
    CL_GUARD_GOTO(kms_pg_tx_run(q, pc, Q_SET_IMPORTED, 3, set, &changed));
    CL_ENSURE_GOTO(changed, CL_ERR_NOT_FOUND, "key %s has no import state", key_id);
    CL_GUARD_GOTO(kms_pg_tx_run(q, pc, Q_DEL_MATERIAL_V1, 1, key, NULL));
    CL_GUARD_GOTO(kms_pg_insert_version(q, pc, key_id, 1, wrapped, wrapped_len, now, false));
    if (enable) CL_GUARD_GOTO(kms_pg_tx_run(q, pc, Q_ENABLE_IMPORTED, 1, key, NULL));
    CL_GUARD_GOTO(kms_pg_commit(pc));
out:
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_delete_material(kms_store *s, const char *key_id, int64_t expired_at, bool *deleted)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    kms_pg_num at;
    const char *drop[] = {key_id, kms_pg_i64(at, expired_at)};
    const char *key[] = {key_id};
    *deleted = false;
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_begin(pc));
    PGresult *r = NULL;
    rc = kms_pg_run(q, pc, Q_LOCK_KEY, 1, key, NULL, NULL, false, PGRES_TUPLES_OK, &r);
    PQclear(r);
    CL_GUARD_GOTO(rc);
    CL_GUARD_GOTO(kms_pg_tx_run(q, pc, Q_DROP_MATERIAL, 2, drop, deleted));
    if (*deleted || expired_at == 0) {
        CL_GUARD_GOTO(kms_pg_tx_run(q, pc, Q_DEL_KEY_VERSIONS, 1, key, NULL));
        CL_GUARD_GOTO(kms_pg_tx_run(q, pc, Q_PENDING_IMPORT, 1, key, NULL));
    }
    CL_GUARD_GOTO(kms_pg_commit(pc));
out:
    if (rc != CL_OK) *deleted = false;
    kms_pg_release(q, pc);
    return rc;
}

/* Other cloister-kms processes may write the same database, and nothing tells this one when
 * they do (LISTEN/NOTIFY could, later): every request reads what it needs. */
/* --- identities (identity.h) --- */

/* Identities (kind, name) and training jobs (account, name) are both a JSON document under a
 * two-part key: one put, one get, one listing; `thing` names the row in errors. */
typedef struct kms_pg_doc_queries {
    enum kms_pg_q insert, replace, upsert, get, list;
} kms_pg_doc_queries;

static CL_MUST_USE cl_status kms_pg_doc_put(kms_store *s, const kms_pg_doc_queries *qs, const char *k1, const char *k2,
                                            const char *doc, kms_iam_put_mode mode, int64_t now, const char *thing)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    kms_pg_num nnow;
    const char *v[] = {k1, k2, doc, kms_pg_i64(nnow, now)};
    enum kms_pg_q id = mode == KMS_IAM_CREATE ? qs->insert : mode == KMS_IAM_REPLACE ? qs->replace : qs->upsert;
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    rc = kms_pg_run(q, pc, id, 4, v, NULL, NULL, false, PGRES_COMMAND_OK, &r);
    if (rc == CL_ERR_EXISTS) rc = CL_RAISE(CL_ERR_EXISTS, "%s already exists", thing);
    if (rc == CL_OK && mode == KMS_IAM_REPLACE && !kms_pg_one_row_changed(r))
        rc = CL_RAISE(CL_ERR_NOT_FOUND, "no %s", thing);
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_doc_get(kms_store *s, const kms_pg_doc_queries *qs, const char *k1, const char *k2,
                                            cl_buf *doc, const char *thing)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    const char *v[] = {k1, k2};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, qs->get, 2, v, NULL, NULL, false, PGRES_TUPLES_OK, &r));
    if (PQntuples(r) == 0) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no %s", thing);
    CL_GUARD_GOTO(cl_buf_append(doc, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0)));
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

/* The list query's parameters are v[0..n-1] then the row limit (one more than `limit`, to say
 * whether there are more); each row is (name, document). */
static CL_MUST_USE cl_status kms_pg_doc_list(kms_store *s, const kms_pg_doc_queries *qs, const char *const *v, int n,
                                             size_t limit, kms_iam_row_fn fn, void *arg, bool *more)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    kms_pg_num nlim;
    *more = false;
    const char *params[4];
    CL_ENSURE(limit > 0 && limit < INT64_MAX, CL_ERR_USAGE, "a listing of %zu rows", limit);
    CL_ENSURE(n >= 0 && n < 4, CL_ERR_INTERNAL, "a listing of %d parameters", n);
    for (int i = 0; i < n; i++) params[i] = v[i];
    params[n] = kms_pg_i64(nlim, (int64_t)limit + 1);
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, qs->list, n + 1, params, NULL, NULL, false, PGRES_TUPLES_OK, &r));
    size_t rows = (size_t)PQntuples(r);
    *more = rows > limit;
    for (size_t i = 0; i < rows && i < limit; i++)
        CL_GUARD_GOTO(fn(arg, PQgetvalue(r, (int)i, 0), PQgetvalue(r, (int)i, 1)));
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static const kms_pg_doc_queries kms_pg_iam_queries = {Q_IAM_INSERT, Q_IAM_REPLACE, Q_IAM_UPSERT, Q_IAM_GET, Q_IAM_LIST};
static const kms_pg_doc_queries kms_pg_job_queries = {Q_JOB_INSERT, Q_JOB_REPLACE, Q_JOB_UPSERT, Q_JOB_GET, Q_JOB_LIST};

static CL_MUST_USE cl_status kms_pg_iam_put(kms_store *s, const char *kind, const char *name, const char *doc,
                                            kms_iam_put_mode mode, int64_t now)
{
    char thing[KMS_STORE_THING_MAX];
    (void)snprintf(thing, sizeof(thing), "%s %s", kind, name);
    return kms_pg_doc_put(s, &kms_pg_iam_queries, kind, name, doc, mode, now, thing);
}

static CL_MUST_USE cl_status kms_pg_iam_get(kms_store *s, const char *kind, const char *name, cl_buf *doc)
{
    char thing[KMS_STORE_THING_MAX];
    (void)snprintf(thing, sizeof(thing), "%s %s", kind, name);
    return kms_pg_doc_get(s, &kms_pg_iam_queries, kind, name, doc, thing);
}

static CL_MUST_USE cl_status kms_pg_iam_delete(kms_store *s, const char *kind, const char *name)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    const char *v[] = {kind, name};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_IAM_DELETE, 2, v, NULL, NULL, false, PGRES_COMMAND_OK, &r));
    if (!kms_pg_one_row_changed(r)) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no %s %s", kind, name);
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_iam_list(kms_store *s, const char *kind, const char *prefix, const char *after,
                                             size_t limit, kms_iam_row_fn fn, void *arg, bool *more)
{
    const char *v[] = {kind, prefix, after};
    return kms_pg_doc_list(s, &kms_pg_iam_queries, v, 3, limit, fn, arg, more);
}

/* --- training jobs (sagemaker.h) --- */

static CL_MUST_USE cl_status kms_pg_job_put(kms_store *s, const char *account, const char *name, const char *doc,
                                            kms_iam_put_mode mode, int64_t now)
{
    char thing[KMS_STORE_THING_MAX];
    (void)snprintf(thing, sizeof(thing), "training job %s in %s", name, account);
    return kms_pg_doc_put(s, &kms_pg_job_queries, account, name, doc, mode, now, thing);
}

static CL_MUST_USE cl_status kms_pg_job_get(kms_store *s, const char *account, const char *name, cl_buf *doc)
{
    char thing[KMS_STORE_THING_MAX];
    (void)snprintf(thing, sizeof(thing), "training job %s in %s", name, account);
    return kms_pg_doc_get(s, &kms_pg_job_queries, account, name, doc, thing);
}

static CL_MUST_USE cl_status kms_pg_job_list(kms_store *s, const char *account, const char *after, size_t limit,
                                             kms_iam_row_fn fn, void *arg, bool *more)
{
    const char *v[] = {account, after};
    return kms_pg_doc_list(s, &kms_pg_job_queries, v, 2, limit, fn, arg, more);
}

static CL_MUST_USE cl_status kms_pg_job_event_add(kms_store *s, const char *account, const char *name, int64_t seq,
                                                  int64_t time_ms, const char *message)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    kms_pg_num nseq, nt;
    const char *v[] = {account, name, kms_pg_i64(nseq, seq), kms_pg_i64(nt, time_ms), message};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    rc = kms_pg_run(q, pc, Q_JOB_EVENT_ADD, 5, v, NULL, NULL, false, PGRES_COMMAND_OK, &r);
    if (rc == CL_ERR_EXISTS) rc = CL_RAISE(CL_ERR_EXISTS, "event %lld of training job %s exists", (long long)seq, name);
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static CL_MUST_USE cl_status kms_pg_job_event_list(kms_store *s, const char *account, const char *name, int64_t from,
                                                   int64_t to, size_t limit, kms_job_event_fn fn, void *arg)
{
    kms_pg *q = s->impl;
    cl_status rc = CL_OK;
    kms_pg_conn *pc = NULL;
    PGresult *r = NULL;
    kms_pg_num nfrom, nto, nlim;
    CL_ENSURE(limit < INT64_MAX, CL_ERR_USAGE, "a listing of %zu log events", limit);
    const char *v[] = {account, name, kms_pg_i64(nfrom, from), kms_pg_i64(nto, to), kms_pg_i64(nlim, (int64_t)limit)};
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    CL_GUARD_GOTO(kms_pg_run(q, pc, Q_JOB_EVENT_LIST, 5, v, NULL, NULL, false, PGRES_TUPLES_OK, &r));
    for (int i = 0; i < PQntuples(r); i++)
        CL_GUARD_GOTO(fn(arg, kms_pg_col_i64(r, i, 0), kms_pg_col_i64(r, i, 1), PQgetvalue(r, i, 2)));
out:
    PQclear(r);
    kms_pg_release(q, pc);
    return rc;
}

static uint64_t kms_pg_generation(kms_store *s)
{
    (void)s;
    return 0;
}

static const kms_store_ops kms_pg_ops = {
    .create_key = kms_pg_create_key,
    .get_key = kms_pg_get_key,
    .update_key = kms_pg_update_key,
    .delete_key = kms_pg_delete_key,
    .list_keys = kms_pg_list_keys,
    .get_material = kms_pg_get_material,
    .add_version = kms_pg_add_version,
    .list_versions = kms_pg_list_versions,
    .create_alias = kms_pg_create_alias,
    .get_alias = kms_pg_get_alias,
    .update_alias = kms_pg_update_alias,
    .delete_alias = kms_pg_delete_alias,
    .list_aliases = kms_pg_list_aliases,
    .create_grant = kms_pg_create_grant,
    .get_grant = kms_pg_get_grant,
    .delete_grant = kms_pg_delete_grant,
    .list_grants = kms_pg_list_grants,
    .tag = kms_pg_tag,
    .untag = kms_pg_untag,
    .list_tags = kms_pg_list_tags,
    .get_import = kms_pg_get_import,
    .set_import_params = kms_pg_set_import_params,
    .import_material = kms_pg_import_material,
    .delete_material = kms_pg_delete_material,
    .cas_get = kms_pg_cas_get,
    .cas_put = kms_pg_cas_put,
    .cas_use_nonce = kms_pg_cas_use_nonce,
    .iam_put = kms_pg_iam_put,
    .iam_get = kms_pg_iam_get,
    .iam_delete = kms_pg_iam_delete,
    .iam_list = kms_pg_iam_list,
    .job_put = kms_pg_job_put,
    .job_get = kms_pg_job_get,
    .job_list = kms_pg_job_list,
    .job_event_add = kms_pg_job_event_add,
    .job_event_list = kms_pg_job_event_list,
    .generation = kms_pg_generation,
    .close = kms_pg_close,
};

/* One statement of a migration, $1 (if it has one) bound to the default region. */
static CL_MUST_USE cl_status kms_pg_migrate_step(kms_pg_conn *pc, const char *sql, const char *default_region)
{
    const char *v[] = {default_region};
    PGresult *r = PQexecParams(pc->c, sql, strstr(sql, "$1") != NULL ? 1 : 0, NULL, v, NULL, NULL, 0);
    char what[96];
    (void)snprintf(what, sizeof(what), "upgrading the schema: \"%.60s...\"", sql);
    cl_status rc = kms_pg_check(pc->c, r, PGRES_COMMAND_OK, what);
    PQclear(r);
    return rc;
}

/* Creates the tables on first use, or brings an older schema up to KMS_PG_SCHEMA_VERSION,
 * under a lock so that instances starting together do not race; a newer schema is refused. */
static CL_MUST_USE cl_status kms_pg_schema_init(kms_pg_conn *pc, const char *default_region)
{
    cl_status rc = CL_OK;
    PGresult *r = NULL;
    CL_GUARD_GOTO(kms_pg_begin(pc));
    CL_GUARD_GOTO(kms_pg_simple(pc->c, "SELECT pg_advisory_xact_lock(" KMS_PG_SCHEMA_LOCK ")", PGRES_TUPLES_OK,
                                "locking the schema"));
    CL_GUARD_GOTO(kms_pg_simple(pc->c, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER PRIMARY KEY)",
                                PGRES_COMMAND_OK, "creating the schema"));
    r = PQexec(pc->c, "SELECT max(version) FROM schema_version");
    CL_GUARD_GOTO(kms_pg_check(pc->c, r, PGRES_TUPLES_OK, "reading the schema version"));
    /* max() of no rows is NULL, read as "": a new database. */
    long long version = PQntuples(r) == 1 ? kms_pg_col_i64(r, 0, 0) : 0;
    CL_ENSURE_GOTO(version >= 0 && version <= KMS_PG_SCHEMA_VERSION, CL_ERR_UNSUPPORTED,
                   "key store schema version is %lld, written by a newer cloister-kms; this build reads version %d "
                   "(run the newer build, or restore a backup made before it)",
                   version, KMS_PG_SCHEMA_VERSION);
    if (version == 0) {
        CL_GUARD_GOTO(kms_pg_simple(pc->c, kms_pg_schema, PGRES_COMMAND_OK, "creating the schema"));
    } else {
        /* Each step from the database's version on, in order, all in this transaction. */
        if (version < 2) {
            for (size_t i = 0; i < sizeof(kms_pg_migrate_v2) / sizeof(kms_pg_migrate_v2[0]); i++)
                CL_GUARD_GOTO(kms_pg_migrate_step(pc, kms_pg_migrate_v2[i], default_region));
            CL_LOG_WARN("key store: PostgreSQL database '%s' was written before regions; its keys, aliases and "
                        "grants are now in the region of their ARNs (%s unless the configuration said otherwise when "
                        "they were made)",
                        PQdb(pc->c), default_region);
        }
        if (version < 3) {
            for (size_t i = 0; i < sizeof(kms_pg_migrate_v3) / sizeof(kms_pg_migrate_v3[0]); i++)
                CL_GUARD_GOTO(kms_pg_migrate_step(pc, kms_pg_migrate_v3[i], default_region));
            CL_LOG_INFO("key store: PostgreSQL database '%s': the certificate service's tables added", PQdb(pc->c));
        }
        if (version < 4) {
            for (size_t i = 0; i < sizeof(kms_pg_migrate_v4) / sizeof(kms_pg_migrate_v4[0]); i++)
                CL_GUARD_GOTO(kms_pg_migrate_step(pc, kms_pg_migrate_v4[i], default_region));
            CL_LOG_INFO("key store: PostgreSQL database '%s': the identities' table added", PQdb(pc->c));
        }
        if (version < 5) {
            for (size_t i = 0; i < sizeof(kms_pg_migrate_v5) / sizeof(kms_pg_migrate_v5[0]); i++)
                CL_GUARD_GOTO(kms_pg_migrate_step(pc, kms_pg_migrate_v5[i], default_region));
            CL_LOG_INFO("key store: PostgreSQL database '%s': the training jobs' tables added (schema version %d)",
                        PQdb(pc->c), KMS_PG_SCHEMA_VERSION);
        }
    }
    CL_GUARD_GOTO(kms_pg_commit(pc));
out:
    PQclear(r);
    if (pc->in_tx) {
        PGresult *rb = PQexec(pc->c, "ROLLBACK");
        PQclear(rb);
        pc->in_tx = false;
    }
    return rc;
}

cl_status kms_store_open_pg(const char *conninfo, size_t pool_size, const char *default_region, kms_store **out)
{
    cl_status rc = CL_OK;
    CL_ENSURE(conninfo != NULL && conninfo[0] != '\0', CL_ERR_USAGE, "no PostgreSQL connection string given");
    if (pool_size == 0) pool_size = 1;
    if (pool_size > KMS_PG_POOL_MAX) pool_size = KMS_PG_POOL_MAX;
    kms_store *s = calloc(1, sizeof(*s));
    kms_pg *q = calloc(1, sizeof(*q));
    kms_pg_conn *conns = calloc(pool_size, sizeof(*conns));
    char *info = strdup(conninfo);
    if (s == NULL || q == NULL || conns == NULL || info == NULL) {
        free(s);
        free(q);
        free(conns);
        if (info != NULL) cl_memzero(info, strlen(info));
        free(info);
        CL_FAIL(CL_ERR_NOMEM, "out of memory for the key store");
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->free_cv, NULL);
    q->conns = conns;
    q->n_conns = pool_size;
    q->conninfo = info;
    s->ops = &kms_pg_ops;
    s->impl = q;
    /* One connection now: an unreachable database fails the start, not the first request. */
    kms_pg_conn *pc = NULL;
    CL_GUARD_GOTO(kms_pg_acquire(q, &pc));
    rc = kms_pg_schema_init(pc, default_region);
    if (rc == CL_OK)
        CL_LOG_INFO("key store: PostgreSQL database '%s' on '%s', up to %zu connections", PQdb(pc->c), PQhost(pc->c),
                    pool_size);
    kms_pg_release(q, pc);
    if (rc != CL_OK) goto out;
    *out = s;
out:
    if (rc != CL_OK) kms_pg_close(s);
    return rc;
}
