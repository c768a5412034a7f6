/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SQLite key store. One connection behind a mutex: SQLite serialises writers
 * anyway, and a KMS request does a handful of indexed lookups. WAL with
 * synchronous=FULL makes every committed transaction survive power loss
 * (sqlite.org/pragma.html#pragma_synchronous: "FULL ... WAL mode ... durable").
 *
 * Every statement, transactions included, is a row of kms_sq_sql, prepared
 * once at open (SQLITE_PREPARE_PERSISTENT: parsing SQL on every request showed
 * up in profiles) and run by kms_sq_run, which binds typed parameters, steps,
 * and reports a row, the end, a duplicate (CL_ERR_EXISTS) or an error naming
 * the statement. Rows are read through the kms_col_* helpers, which refuse a
 * value that does not fit its field rather than truncate it. A store call is
 * kms_sq_enter ... kms_sq_leave: the statements are only used under mu, and
 * leave is the one cleanup path (it resets a statement left on a row, rolls
 * back a transaction a failure left open, and unlocks). Bindings point at the
 * caller's memory (SQLITE_STATIC), so a statement's are cleared whenever it
 * is reset, before the caller's call returns.
 */
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/log.h"

#include "store.h"

/* The statements of kms_sq_sql, by table. */
// clang-format off
enum kms_sq {
    S_BEGIN, S_COMMIT, S_ROLLBACK,
    S_INSERT_KEY, S_INSERT_VERSION, S_GET_KEY, S_UPDATE_KEY, S_DEL_KEY_ALIASES, S_DEL_KEY_GRANTS, S_DEL_KEY_TAGS,
    S_DEL_KEY_VERSIONS, S_DEL_KEY, S_LIST_KEYS, S_GET_MATERIAL, S_ROTATE, S_LIST_VERSIONS,
    S_INSERT_ALIAS, S_UPDATE_ALIAS, S_GET_ALIAS, S_DEL_ALIAS, S_LIST_ALIASES,
    S_INSERT_GRANT, S_GET_GRANT, S_DEL_GRANT, S_LIST_GRANTS,
    S_UPSERT_TAG, S_COUNT_TAGS, S_DEL_TAG, S_LIST_TAGS,
    S_CAS_GET, S_CAS_INSERT, S_CAS_UPDATE, S_CAS_NONCE_PURGE, S_CAS_NONCE_USE,
    S_IAM_INSERT, S_IAM_REPLACE, S_IAM_UPSERT, S_IAM_GET, S_IAM_DELETE, S_IAM_LIST,
    S_INSERT_IMPORT, S_GET_IMPORT, S_SET_IMPORT_PARAMS, S_PUT_MATERIAL, S_SET_IMPORTED, S_ENABLE_IMPORTED,
    S_DROP_MATERIAL, S_PENDING_IMPORT, S_DEL_KEY_IMPORT,
    S_JOB_INSERT, S_JOB_REPLACE, S_JOB_UPSERT, S_JOB_GET, S_JOB_LIST, S_JOB_EVENT_ADD, S_JOB_EVENT_LIST,
    S_COUNT
};
// clang-format on

#define KMS_KEY_COLS \
    "key_id,arn,account,created,state,description,key_usage,key_spec,deletion_date,pending_days," \
    "current_version,rotation_enabled,rotation_period,last_rotated,policy,region"
#define KMS_GRANT_COLS "grant_id,key_id,grantee,retiring,issuing_account,operations,name,constraints,created,region"
#define KMS_ALIAS_COLS "name,key_id,created,updated"
#define KMS_IMPORT_COLS \
    "import_key,material_id,imported,material_valid_to,wrapping_alg,wrapping_spec,params_valid_to,token_hash," \
    "wrapping_key"
/* kms_key_state values as SQL text: the enum's values are the stored ones. */
#define KMS_SQ_ENABLED "0"
#define KMS_SQ_PENDING_DELETION "2"
#define KMS_SQ_PENDING_IMPORT "3"
_Static_assert(KMS_KEY_ENABLED == 0 && KMS_KEY_PENDING_DELETION == 2 && KMS_KEY_PENDING_IMPORT == 3,
               "the key states in SQL text");

/* name: what the statement does, for messages. */
static const struct {
    const char *name;
    const char *sql;
} kms_sq_sql[S_COUNT] = {
    /* IMMEDIATE: take the write lock at BEGIN, so a transaction never fails half-way for want of it. */
    [S_BEGIN] = {"begin a transaction", "BEGIN IMMEDIATE"},
    [S_COMMIT] = {"commit", "COMMIT"},
    [S_ROLLBACK] = {"roll back", "ROLLBACK"},
    [S_INSERT_KEY] = {"insert key", "INSERT INTO keys(" KMS_KEY_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"},
    [S_INSERT_VERSION] = {"insert key material",
                          "INSERT INTO key_versions(key_id,version,wrapped,created,on_demand) VALUES(?,?,?,?,?)"},
    /* The import columns have names of their own, so the join needs no table prefixes. */
    [S_GET_KEY] = {"read key", "SELECT " KMS_KEY_COLS ",import_key IS NOT NULL,coalesce(imported,0),"
                               "coalesce(material_valid_to,0) FROM keys LEFT JOIN key_imports ON import_key=key_id "
                               "WHERE key_id=?"},
    [S_UPDATE_KEY] = {"update key", "UPDATE keys SET state=?,description=?,deletion_date=?,pending_days=?,policy=?,"
                                    "rotation_enabled=?,rotation_period=? WHERE key_id=?"},
    [S_DEL_KEY_ALIASES] = {"delete the key's aliases", "DELETE FROM aliases WHERE key_id=?"},
    [S_DEL_KEY_GRANTS] = {"delete the key's grants", "DELETE FROM grants WHERE key_id=?"},
    [S_DEL_KEY_TAGS] = {"delete the key's tags", "DELETE FROM tags WHERE key_id=?"},
    [S_DEL_KEY_VERSIONS] = {"delete the key's material", "DELETE FROM key_versions WHERE key_id=?"},
    [S_DEL_KEY] = {"delete key", "DELETE FROM keys WHERE key_id=?"},
    [S_LIST_KEYS] = {"list keys",
                     "SELECT key_id FROM keys WHERE account=? AND region=? AND key_id>? ORDER BY key_id LIMIT ?"},
    [S_GET_MATERIAL] = {"read key material", "SELECT wrapped FROM key_versions WHERE key_id=? AND version=?"},
    [S_ROTATE] = {"rotate key",
                  "UPDATE keys SET current_version=?, last_rotated=? WHERE key_id=? AND current_version=?"},
    [S_LIST_VERSIONS] = {"list key versions", "SELECT version,created,on_demand FROM key_versions "
                                              "WHERE key_id=? AND version>? ORDER BY version LIMIT ?"},
    [S_INSERT_ALIAS] = {"insert alias",
                        "INSERT INTO aliases(key_id,updated,account,region,name,created) VALUES(?,?,?,?,?,?)"},
    [S_UPDATE_ALIAS] = {"update alias",
                        "UPDATE aliases SET key_id=?, updated=? WHERE account=? AND region=? AND name=?"},
    [S_GET_ALIAS] = {"read alias", "SELECT " KMS_ALIAS_COLS " FROM aliases WHERE account=? AND region=? AND name=?"},
    [S_DEL_ALIAS] = {"delete alias", "DELETE FROM aliases WHERE account=? AND region=? AND name=?"},
    [S_LIST_ALIASES] = {"list aliases", "SELECT " KMS_ALIAS_COLS " FROM aliases WHERE account=?1 AND region=?2 "
                                        "AND name>?3 AND (?4='' OR key_id=?4) ORDER BY name LIMIT ?5"},
    [S_INSERT_GRANT] = {"insert grant", "INSERT INTO grants(" KMS_GRANT_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?)"},
    [S_GET_GRANT] = {"read grant", "SELECT " KMS_GRANT_COLS " FROM grants WHERE grant_id=?"},
    [S_DEL_GRANT] = {"delete grant", "DELETE FROM grants WHERE grant_id=?"},
    /* A NULL filter is bound as SQL NULL: "any". */
    [S_LIST_GRANTS] = {"list grants", "SELECT " KMS_GRANT_COLS " FROM grants WHERE grant_id>?1 "
                                      "AND (?2 IS NULL OR key_id=?2) AND (?3 IS NULL OR grantee=?3) "
                                      "AND (?4 IS NULL OR retiring=?4) AND (?5 IS NULL OR grant_id=?5) "
                                      "AND (?6 IS NULL OR region=?6) ORDER BY grant_id LIMIT ?7"},
    [S_UPSERT_TAG] = {"write tag", "INSERT OR REPLACE INTO tags(key_id,tag_key,tag_value) VALUES(?,?,?)"},
    [S_COUNT_TAGS] = {"count tags", "SELECT count(*) FROM tags WHERE key_id=?"},
    [S_DEL_TAG] = {"delete tag", "DELETE FROM tags WHERE key_id=? AND tag_key=?"},
    [S_LIST_TAGS] = {"list tags",
                     "SELECT tag_key,tag_value FROM tags WHERE key_id=? AND tag_key>? ORDER BY tag_key LIMIT ?"},
    /* The certificate service's sessions and used nonces (cas_store.c). */
    [S_CAS_GET] = {"read session", "SELECT version,record FROM cas_sessions WHERE name=?"},
    [S_CAS_INSERT] = {"insert session", "INSERT INTO cas_sessions(name,version,record,updated) VALUES(?,1,?,?)"},
    [S_CAS_UPDATE] = {"update session", "UPDATE cas_sessions SET version=version+1,record=?,updated=? "
                                        "WHERE name=? AND version=?"},
    [S_CAS_NONCE_PURGE] = {"drop expired nonces", "DELETE FROM cas_nonces WHERE expires<?"},
    [S_CAS_NONCE_USE] = {"mark nonce used", "INSERT INTO cas_nonces(nonce,expires) VALUES(?,?)"},
    [S_INSERT_IMPORT] = {"insert import state", "INSERT INTO key_imports(" KMS_IMPORT_COLS ") "
                                                "VALUES(?,'',0,0,'','',0,x'',x'')"},
    [S_GET_IMPORT] = {"read import state", "SELECT " KMS_IMPORT_COLS " FROM key_imports WHERE import_key=?"},
    [S_SET_IMPORT_PARAMS] = {"write import parameters",
                             "UPDATE key_imports SET wrapping_alg=?,wrapping_spec=?,params_valid_to=?,token_hash=?,"
                             "wrapping_key=? WHERE import_key=?"},
    [S_PUT_MATERIAL] = {"write imported key material", "INSERT OR REPLACE INTO key_versions(key_id,version,wrapped,"
                                                       "created,on_demand) VALUES(?,1,?,?,0)"},
    [S_SET_IMPORTED] = {"record imported key material",
                        "UPDATE key_imports SET imported=1,material_id=?,material_valid_to=? WHERE import_key=?"},
    [S_ENABLE_IMPORTED] = {"enable a key with imported material",
                           "UPDATE keys SET state=" KMS_SQ_ENABLED
                           " WHERE key_id=? AND state<>" KMS_SQ_PENDING_DELETION},
    [S_DROP_MATERIAL] = {"record deleted key material",
                         "UPDATE key_imports SET imported=0,material_valid_to=0 WHERE import_key=?1 AND imported=1 "
                         "AND (?2=0 OR material_valid_to=?2)"},
    [S_PENDING_IMPORT] = {"make a key pending import", "UPDATE keys SET state=" KMS_SQ_PENDING_IMPORT
                                                       " WHERE key_id=? AND state<>" KMS_SQ_PENDING_DELETION},
    [S_DEL_KEY_IMPORT] = {"delete the key's import state", "DELETE FROM key_imports WHERE import_key=?"},
    [S_IAM_INSERT] = {"insert identity", "INSERT INTO iam_entities(kind,name,doc,updated) VALUES(?1,?2,?3,?4)"},
    [S_IAM_REPLACE] = {"update identity", "UPDATE iam_entities SET doc=?3,updated=?4 WHERE kind=?1 AND name=?2"},
    [S_IAM_UPSERT] = {"write identity",
                      "INSERT INTO iam_entities(kind,name,doc,updated) VALUES(?1,?2,?3,?4) "
                      "ON CONFLICT(kind,name) DO UPDATE SET doc=excluded.doc,updated=excluded.updated"},
    [S_IAM_GET] = {"read identity", "SELECT doc FROM iam_entities WHERE kind=? AND name=?"},
    [S_IAM_DELETE] = {"delete identity", "DELETE FROM iam_entities WHERE kind=? AND name=?"},
    /* Names with the prefix ?2 (substr: no LIKE, whose wildcards names could hold), after ?3. */
    /* Training jobs (sagemaker.h). An account id is 12 digits: "ACCOUNT/NAME" orders as (account, name). */
    [S_JOB_INSERT] = {"insert training job", "INSERT INTO training_jobs(account,name,doc,updated) VALUES(?1,?2,?3,?4)"},
    [S_JOB_REPLACE] = {"update training job",
                       "UPDATE training_jobs SET doc=?3,updated=?4 WHERE account=?1 AND name=?2"},
    [S_JOB_UPSERT] = {"write training job", "INSERT INTO training_jobs(account,name,doc,updated) VALUES(?1,?2,?3,?4) "
                                            "ON CONFLICT(account,name) DO UPDATE SET doc=excluded.doc,"
                                            "updated=excluded.updated"},
    [S_JOB_GET] = {"read training job", "SELECT doc FROM training_jobs WHERE account=? AND name=?"},
    [S_JOB_LIST] = {"list training jobs", "SELECT account||'/'||name,doc FROM training_jobs WHERE (?1 IS NULL OR "
                                          "account=?1) AND account||'/'||name>?2 ORDER BY account,name LIMIT ?3"},
    [S_JOB_EVENT_ADD] = {"append to a training job's log", "INSERT INTO training_job_events(account,name,seq,time,"
                                                           "message) VALUES(?,?,?,?,?)"},
    [S_JOB_EVENT_LIST] = {"read a training job's log",
                          "SELECT seq,time,message FROM training_job_events WHERE account=? AND name=? AND seq>=? "
                          "AND seq<? ORDER BY seq LIMIT ?"},
    [S_IAM_LIST] = {"list identities", "SELECT name,doc FROM iam_entities WHERE kind=?1 AND "
                                       "substr(name,1,length(?2))=?2 AND name>?3 ORDER BY name LIMIT ?4"},
};

/* Run once at open, outside any transaction: the durability settings (see the top of the file). */
static const char *kms_setup = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;";

/*
 * The schema's version is SQLite's user_version (sqlite.org/pragma.html#pragma_user_version):
 * 0 in a new file and in the stores written before regions, whose tables exist then; 1 with
 * regions and key_imports; 2 with the certificate service's tables. A new file is created at
 * KMS_SQ_SCHEMA_VERSION, an older store migrated one step after the other (kms_migrate_v1,
 * kms_migrate_v2); 3 with the identities of IAM and STS (kms_migrate_v3); 4 with SageMaker's
 * training jobs (kms_migrate_v4). A later change adds a step and a version.
 */
#define KMS_SQ_SCHEMA_VERSION 4
/* SageMaker's training jobs (version 4; sagemaker.h): a JSON document per job, and its log. */
#define KMS_SQ_JOBS_DDL \
    "CREATE TABLE training_jobs(" \
    " account TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, updated INTEGER NOT NULL," \
    " PRIMARY KEY(account, name))"
#define KMS_SQ_JOB_EVENTS_DDL \
    "CREATE TABLE training_job_events(" \
    " account TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL, time INTEGER NOT NULL," \
    " message TEXT NOT NULL, PRIMARY KEY(account, name, seq))"
/* IAM's users, access keys, roles, policies and their attachments (identity.h): one JSON
 * document per entity, by kind and name; secrets in them are sealed under the root key. */
#define KMS_SQ_IAM_DDL \
    "CREATE TABLE iam_entities(" \
    " kind TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY(kind, name))"
/* Keys of Origin EXTERNAL. Column names differ from those of keys (S_GET_KEY joins). IF NOT
 * EXISTS: a store of before regions may have it already. */
#define KMS_SQ_KEY_IMPORTS_DDL \
    "CREATE TABLE IF NOT EXISTS key_imports(" \
    " import_key TEXT PRIMARY KEY, material_id TEXT NOT NULL, imported INTEGER NOT NULL," \
    " material_valid_to INTEGER NOT NULL, wrapping_alg TEXT NOT NULL, wrapping_spec TEXT NOT NULL," \
    " params_valid_to INTEGER NOT NULL, token_hash BLOB NOT NULL, wrapping_key BLOB NOT NULL)"
/* The certificate service's sessions and used nonces (docs/cas.md, "Storage"). */
#define KMS_SQ_CAS_SESSIONS_DDL \
    "CREATE TABLE cas_sessions(" \
    " name TEXT PRIMARY KEY, version INTEGER NOT NULL, record BLOB NOT NULL, updated INTEGER NOT NULL)"
#define KMS_SQ_CAS_NONCES_DDL "CREATE TABLE cas_nonces(nonce TEXT PRIMARY KEY, expires INTEGER NOT NULL)"
#define KMS_SQ_CAS_NONCES_INDEX_DDL "CREATE INDEX cas_nonces_expires ON cas_nonces(expires)"
static const char *kms_schema =
    "CREATE TABLE keys("
    " key_id TEXT PRIMARY KEY, arn TEXT NOT NULL, account TEXT NOT NULL, created INTEGER NOT NULL,"
    " state INTEGER NOT NULL, description TEXT NOT NULL, key_usage TEXT NOT NULL, key_spec TEXT NOT NULL,"
    " deletion_date INTEGER NOT NULL, pending_days INTEGER NOT NULL, current_version INTEGER NOT NULL,"
    " rotation_enabled INTEGER NOT NULL, rotation_period INTEGER NOT NULL, last_rotated INTEGER NOT NULL,"
    " policy TEXT NOT NULL, region TEXT NOT NULL);"
    "CREATE INDEX keys_account_region ON keys(account, region, key_id);"
    "CREATE TABLE key_versions("
    " key_id TEXT NOT NULL, version INTEGER NOT NULL, wrapped BLOB NOT NULL, created INTEGER NOT NULL,"
    " on_demand INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(key_id, version));"
    "CREATE TABLE aliases("
    " account TEXT NOT NULL, region TEXT NOT NULL, name TEXT NOT NULL, key_id TEXT NOT NULL,"
    " created INTEGER NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY(account, region, name));"
    "CREATE TABLE grants("
    " grant_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, grantee TEXT NOT NULL, retiring TEXT NOT NULL,"
    " issuing_account TEXT NOT NULL, operations TEXT NOT NULL, name TEXT NOT NULL, constraints TEXT NOT NULL,"
    " created INTEGER NOT NULL, region TEXT NOT NULL);"
    "CREATE INDEX grants_key ON grants(key_id, grant_id);"
    "CREATE TABLE tags("
    " key_id TEXT NOT NULL, tag_key TEXT NOT NULL, tag_value TEXT NOT NULL, PRIMARY KEY(key_id, "
    "tag_key));" KMS_SQ_KEY_IMPORTS_DDL ";" KMS_SQ_CAS_SESSIONS_DDL ";" KMS_SQ_CAS_NONCES_DDL
    ";" KMS_SQ_CAS_NONCES_INDEX_DDL ";" KMS_SQ_IAM_DDL ";" KMS_SQ_JOBS_DDL ";" KMS_SQ_JOB_EVENTS_DDL ";"
    "PRAGMA user_version=4;";

/*
 * A store of before regions (version 0 with tables) to version 1, one statement at a time in
 * the opening transaction; ?1 is the default region. A key's region is the one in its ARN
 * (arn:aws:kms:REGION:ACCOUNT:key/ID, written with the configured region when it was made);
 * an alias and a grant get their key's. Aliases are rebuilt: the region joins their primary key.
 * key_imports holds keys of Origin EXTERNAL.
 */
static const char *const kms_migrate_v1[] = {
    "ALTER TABLE keys ADD COLUMN region TEXT NOT NULL DEFAULT ''",
    "UPDATE keys SET region=substr(substr(arn, instr(arn, ':kms:') + 5), 1,"
    " instr(substr(arn, instr(arn, ':kms:') + 5), ':') - 1) WHERE instr(arn, ':kms:') > 0",
    "UPDATE keys SET region=?1 WHERE region=''",
    "DROP INDEX IF EXISTS keys_account",
    "CREATE INDEX keys_account_region ON keys(account, region, key_id)",
    "CREATE TABLE aliases_regions("
    " account TEXT NOT NULL, region TEXT NOT NULL, name TEXT NOT NULL, key_id TEXT NOT NULL,"
    " created INTEGER NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY(account, region, name))",
    "INSERT INTO aliases_regions(account, region, name, key_id, created, updated)"
    " SELECT account, COALESCE((SELECT region FROM keys WHERE keys.key_id=aliases.key_id), ?1), name, key_id,"
    " created, updated FROM aliases",
    "DROP TABLE aliases",
    "ALTER TABLE aliases_regions RENAME TO aliases",
    "ALTER TABLE grants ADD COLUMN region TEXT NOT NULL DEFAULT ''",
    "UPDATE grants SET region=COALESCE((SELECT region FROM keys WHERE keys.key_id=grants.key_id), ?1)",
    KMS_SQ_KEY_IMPORTS_DDL,
    "PRAGMA user_version=1",
};

/* Version 1 to 2: the certificate service's tables (docs/cas.md); nothing else changes. */
static const char *const kms_migrate_v2[] = {
    KMS_SQ_CAS_SESSIONS_DDL,
    KMS_SQ_CAS_NONCES_DDL,
    KMS_SQ_CAS_NONCES_INDEX_DDL,
    "PRAGMA user_version=2",
};

/* Version 2 to 3: IAM's identities (identity.h); nothing else changes. */
static const char *const kms_migrate_v3[] = {
    KMS_SQ_IAM_DDL,
    "PRAGMA user_version=3",
};

/* Version 3 to 4: SageMaker's training jobs and their logs (sagemaker.h); nothing else changes. */
static const char *const kms_migrate_v4[] = {
    KMS_SQ_JOBS_DDL,
    KMS_SQ_JOB_EVENTS_DDL,
    "PRAGMA user_version=4",
};

typedef struct kms_sqlite {
    sqlite3 *db;
    pthread_mutex_t mu;        /* held from kms_sq_enter to kms_sq_leave */
    sqlite3_stmt *st[S_COUNT]; /* kms_sq_sql, prepared at open */
    /* Advanced by every call that changed a row (kms_sq_leave). This process is the database's
     * only user while it runs (the data directory's lock), so nothing else changes it unseen. */
    _Atomic uint64_t generation;
} kms_sqlite;

/* One parameter of a statement, made with KMS_TEXT / KMS_INT / KMS_BLOB. */
typedef struct kms_sq_arg {
    enum { KMS_ARG_TEXT, KMS_ARG_INT, KMS_ARG_BLOB } type;
    const void *p; /* text (NULL binds SQL NULL) or blob, borrowed until the statement is reset */
    size_t len;    /* blob */
    int64_t i;
} kms_sq_arg;

#define KMS_TEXT(s) ((kms_sq_arg){.type = KMS_ARG_TEXT, .p = (s)})
#define KMS_INT(v) ((kms_sq_arg){.type = KMS_ARG_INT, .i = (int64_t)(v)})
#define KMS_BLOB(b, n) ((kms_sq_arg){.type = KMS_ARG_BLOB, .p = (b), .len = (n)})

/* A store call (kms_sq_enter to kms_sq_leave), and where its latest statement stands. */
typedef struct kms_sq_call {
    kms_sqlite *q;
    enum kms_sq id;              /* the statement last run */
    bool row;                    /* it stopped on a row, ready for the kms_col_* readers */
    int changes;                 /* once it is done: the rows it changed */
    sqlite3_int64 total_changes; /* the connection's count of changed rows when the call began */
} kms_sq_call;

/* kms_sq_run with its parameters written inline: KMS_SQ_RUN(&c, S_GET_KEY, KMS_TEXT(id)). */
#define KMS_SQ_RUN(c, id, ...) \
    kms_sq_run((c), (id), (const kms_sq_arg[]){__VA_ARGS__}, \
               sizeof((const kms_sq_arg[]){__VA_ARGS__}) / sizeof(kms_sq_arg))

/* store.h: frees what a record owns and zeroes it. */
void kms_grant_rec_clear(kms_grant_rec *g)
{
    free(g->constraints);
    memset(g, 0, sizeof(*g));
}

/* store.h: frees what a record owns and zeroes it. */
void kms_key_rec_clear(kms_key_rec *k)
{
    free(k->policy);
    memset(k, 0, sizeof(*k));
}

/* --- statements ---------------------------------------------------------------- */

/* Resets statement id (ending its read, if any) and drops its bindings. sqlite3_reset's result
 * repeats the last step's error, which kms_sq_next has already reported; clearing cannot fail. */
static void kms_sq_reset(kms_sqlite *q, enum kms_sq id)
{
    (void)sqlite3_reset(q->st[id]);
    (void)sqlite3_clear_bindings(q->st[id]);
}

/* Raises the failure SQLite reports for statement id: a duplicate primary key or unique value is
 * CL_ERR_EXISTS (callers say what exists); anything else CL_ERR_IO with SQLite's message. */
static CL_MUST_USE cl_status kms_sq_raise(kms_sqlite *q, enum kms_sq id)
{
    int ext = sqlite3_extended_errcode(q->db);
    if (ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE)
        return CL_RAISE(CL_ERR_EXISTS, "key store: %s: the row already exists", kms_sq_sql[id].name);
    if ((ext & 0xff) == SQLITE_BUSY)
        return CL_RAISE(CL_ERR_IO,
                        "key store: %s: another process kept the database locked (SQLite error %d); is a second "
                        "cloister-kms using the same data directory?",
                        kms_sq_sql[id].name, ext);
    return CL_RAISE(CL_ERR_IO, "key store: %s: %s (SQLite error %d)", kms_sq_sql[id].name, sqlite3_errmsg(q->db), ext);
}

/* Binds a to parameter i (from 1) of statement id; SQLITE_STATIC: a borrows the caller's memory. */
static CL_MUST_USE cl_status kms_sq_bind(kms_sqlite *q, enum kms_sq id, int i, const kms_sq_arg *a)
{
    sqlite3_stmt *st = q->st[id];
    CL_ENSURE(a->len <= INT_MAX, CL_ERR_LIMIT, "key store: %s: a value of %zu bytes is too large", kms_sq_sql[id].name,
              a->len);
    int src = a->type == KMS_ARG_INT    ? sqlite3_bind_int64(st, i, a->i)
              : a->type == KMS_ARG_BLOB ? sqlite3_bind_blob(st, i, a->p, (int)a->len, SQLITE_STATIC)
              : a->p != NULL            ? sqlite3_bind_text(st, i, a->p, -1, SQLITE_STATIC)
                                        : sqlite3_bind_null(st, i);
    if (src != SQLITE_OK) return kms_sq_raise(q, id);
    return CL_OK;
}

/* Steps c's statement once: c->row when a row is ready; otherwise the statement is done (or failed)
 * and has been reset, and c->changes counts the rows it changed. */
static CL_MUST_USE cl_status kms_sq_next(kms_sq_call *c)
{
    int src = sqlite3_step(c->q->st[c->id]);
    c->row = src == SQLITE_ROW;
    if (c->row) return CL_OK;
    c->changes = sqlite3_changes(c->q->db);
    cl_status rc = src == SQLITE_DONE ? CL_OK : kms_sq_raise(c->q, c->id);
    kms_sq_reset(c->q, c->id);
    return rc;
}

/* Resets c's statement if it stopped on a row (a listing at its limit, a read that failed). */
static void kms_sq_end(kms_sq_call *c)
{
    if (c->row) kms_sq_reset(c->q, c->id);
    c->row = false;
}

/*
 * Runs statement id in call c with the n parameters args (as many as its SQL has) and steps it
 * once (see kms_sq_next); read a row with kms_col_*, the next with kms_sq_next. The statement run
 * before it in c is ended first. On failure the statement is reset and nothing of it stays bound.
 */
static CL_MUST_USE cl_status kms_sq_run(kms_sq_call *c, enum kms_sq id, const kms_sq_arg *args, size_t n)
{
    cl_status rc = CL_OK;
    kms_sqlite *q = c->q;
    kms_sq_end(c);
    *c = (kms_sq_call){.q = q, .id = id, .total_changes = c->total_changes};
    CL_ENSURE_GOTO(n == (size_t)sqlite3_bind_parameter_count(q->st[id]), CL_ERR_INTERNAL,
                   "key store: %s takes %d parameters, not %zu", kms_sq_sql[id].name,
                   sqlite3_bind_parameter_count(q->st[id]), n);
    for (size_t i = 0; i < n; i++) CL_GUARD_GOTO(kms_sq_bind(q, id, (int)i + 1, &args[i]));
    CL_GUARD_GOTO(kms_sq_next(c));
out:
    if (rc != CL_OK) kms_sq_reset(q, id);
    return rc;
}

/* Starts a store call on s: its statements are used under the store's mutex until kms_sq_leave. */
static kms_sq_call kms_sq_enter(kms_store *s)
{
    kms_sqlite *q = s->impl;
    pthread_mutex_lock(&q->mu);
    return (kms_sq_call){.q = q, .total_changes = sqlite3_total_changes64(q->db)};
}

/*
 * Ends call c, whatever happened, and returns rc: ends its statement, rolls back a transaction
 * still open (SQLite itself rolls back after some errors: sqlite.org/lang_transaction.html,
 * "Response To Errors Within A Transaction"), and unlocks. ROLLBACK is stepped here, not by
 * kms_sq_run, so that the thread's error stays the failure that led here.
 */
static CL_MUST_USE cl_status kms_sq_leave(kms_sq_call *c, cl_status rc)
{
    kms_sqlite *q = c->q;
    kms_sq_end(c);
    if (!sqlite3_get_autocommit(q->db)) {
        int src = sqlite3_step(q->st[S_ROLLBACK]);
        if (src != SQLITE_DONE)
            CL_LOG_ERROR("key store: ROLLBACK of a failed call failed: %s (SQLite error %d); if later writes fail "
                         "with \"cannot start a transaction within a transaction\", restart cloister-kms",
                         sqlite3_errmsg(q->db), sqlite3_extended_errcode(q->db));
        kms_sq_reset(q, S_ROLLBACK);
    }
    /* Rolled back or not: a reader that kept something re-reads it (the cheap side to err on). */
    if (sqlite3_total_changes64(q->db) != c->total_changes) atomic_fetch_add(&q->generation, 1);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* S_BEGIN or S_COMMIT in call c. kms_sq_leave rolls back a transaction that was not committed, also
 * when COMMIT failed (SQLite then leaves it open). */
static CL_MUST_USE cl_status kms_sq_tx(kms_sq_call *c, enum kms_sq which) { return kms_sq_run(c, which, NULL, 0); }

/* --- columns of the current row -------------------------------------------------- */

/* Fails unless cond holds for column col of c's row: a value this store never writes means a
 * database written by something else, or damaged. */
#define KMS_COL_ENSURE(c, col, cond, fmt, ...) \
    CL_ENSURE((cond), CL_ERR_FORMAT, \
              "key store: %s: column %s " fmt "; the database was not written by this cloister-kms or is damaged " \
              "(restore it from a backup)", \
              kms_sq_sql[(c)->id].name, sqlite3_column_name((c)->q->st[(c)->id], (col)), __VA_ARGS__)

/* c's statement, once column col of its row is known to hold a value of SQLite type `type`. */
static CL_MUST_USE cl_status kms_col_typed(const kms_sq_call *c, int col, int type, sqlite3_stmt **st)
{
    static const char *const names[] = {"?", "an integer", "a real", "text", "a blob", "NULL"}; /* by type code, 1..5 */
    *st = c->q->st[c->id];
    int got = sqlite3_column_type(*st, col);
    KMS_COL_ENSURE(c, col, got == type, "holds %s, not %s", names[got], names[type]);
    return CL_OK;
}

/* Column col as text, borrowed until the next step: *s is NUL-terminated and holds *len bytes, with
 * no NUL among them (every text column is NOT NULL and written from a C string). */
static CL_MUST_USE cl_status kms_col_str(const kms_sq_call *c, int col, const char **s, size_t *len)
{
    sqlite3_stmt *st;
    CL_GUARD(kms_col_typed(c, col, SQLITE_TEXT, &st));
    *s = (const char *)sqlite3_column_text(st, col);
    *len = (size_t)sqlite3_column_bytes(st, col);
    CL_ENSURE(*s != NULL, CL_ERR_NOMEM, "key store: %s: out of memory", kms_sq_sql[c->id].name);
    KMS_COL_ENSURE(c, col, memchr(*s, 0, *len) == NULL, "holds a NUL byte among its %zu", *len);
    return CL_OK;
}

/* Column col as text into dst of cap bytes (with the NUL). A longer value is an error, not cut short:
 * every field is as large as anything this store writes into it. */
static CL_MUST_USE cl_status kms_col_text(const kms_sq_call *c, int col, char *dst, size_t cap)
{
    const char *s;
    size_t len;
    CL_GUARD(kms_col_str(c, col, &s, &len));
    KMS_COL_ENSURE(c, col, len < cap, "holds %zu bytes, more than the %zu this field takes", len, cap - 1);
    memcpy(dst, s, len + 1);
    return CL_OK;
}

/* Column col as a new string in *dst (free() it). */
static CL_MUST_USE cl_status kms_col_dup(const kms_sq_call *c, int col, char **dst)
{
    const char *s;
    size_t len;
    CL_GUARD(kms_col_str(c, col, &s, &len));
    *dst = strndup(s, len);
    CL_ENSURE(*dst != NULL, CL_ERR_NOMEM, "key store: %s: out of memory for %zu bytes", kms_sq_sql[c->id].name, len);
    return CL_OK;
}

/* Column col as an integer in [lo, hi]. */
static CL_MUST_USE cl_status kms_col_int(const kms_sq_call *c, int col, int64_t lo, int64_t hi, int64_t *v)
{
    sqlite3_stmt *st;
    CL_GUARD(kms_col_typed(c, col, SQLITE_INTEGER, &st));
    *v = sqlite3_column_int64(st, col);
    KMS_COL_ENSURE(c, col, *v >= lo && *v <= hi, "holds %lld, outside [%lld, %lld]", (long long)*v, (long long)lo,
                   (long long)hi);
    return CL_OK;
}

/* Column col (BLOB) appended to out. */
static CL_MUST_USE cl_status kms_col_blob(const kms_sq_call *c, int col, cl_buf *out)
{
    sqlite3_stmt *st;
    CL_GUARD(kms_col_typed(c, col, SQLITE_BLOB, &st));
    const void *p = sqlite3_column_blob(st, col); /* NULL for an empty blob */
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    CL_ENSURE(p != NULL || len == 0, CL_ERR_NOMEM, "key store: %s: out of memory", kms_sq_sql[c->id].name);
    return cl_buf_append(out, p, len);
}

/* --- keys ------------------------------------------------------------------------ */

/* Inserts version `version` of key_id's wrapped material; part of the caller's transaction. */
static CL_MUST_USE cl_status kms_sqlite_insert_version(kms_sq_call *c, const char *key_id, uint32_t version,
                                                       const uint8_t *wrapped, size_t wrapped_len, int64_t created,
                                                       bool on_demand)
{
    cl_status rc = KMS_SQ_RUN(c, S_INSERT_VERSION, KMS_TEXT(key_id), KMS_INT(version), KMS_BLOB(wrapped, wrapped_len),
                              KMS_INT(created), KMS_INT(on_demand));
    if (rc == CL_ERR_EXISTS) CL_FAIL(CL_ERR_EXISTS, "version %u of key %s already exists", version, key_id);
    return rc;
}

/* store.h: the key and its version-1 material in one transaction; CL_ERR_EXISTS for a key id in use. */
static CL_MUST_USE cl_status kms_sqlite_create_key(kms_store *s, const kms_key_rec *k, const uint8_t *wrapped,
                                                   size_t wrapped_len)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_sq_tx(&c, S_BEGIN));
    rc = KMS_SQ_RUN(&c, S_INSERT_KEY, KMS_TEXT(k->key_id), KMS_TEXT(k->arn), KMS_TEXT(k->account), KMS_INT(k->created),
                    KMS_INT(k->state), KMS_TEXT(k->description), KMS_TEXT(k->key_usage), KMS_TEXT(k->key_spec),
                    KMS_INT(k->deletion_date), KMS_INT(k->pending_days), KMS_INT(k->current_version),
                    KMS_INT(k->rotation_enabled), KMS_INT(k->rotation_period_days), KMS_INT(k->last_rotated),
                    KMS_TEXT(k->policy ? k->policy : ""), KMS_TEXT(k->region));
    if (rc == CL_ERR_EXISTS) CL_FAIL_GOTO(CL_ERR_EXISTS, "key %s already exists", k->key_id);
    CL_GUARD_GOTO(rc);
    if (wrapped == NULL)
        CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_INSERT_IMPORT, KMS_TEXT(k->key_id)));
    else
        CL_GUARD_GOTO(
            kms_sqlite_insert_version(&c, k->key_id, k->current_version, wrapped, wrapped_len, k->created, false));
    CL_GUARD_GOTO(kms_sq_tx(&c, S_COMMIT));
out:
    return kms_sq_leave(&c, rc);
}

/* store.h: key_id's record into out (out->policy allocated; empty on failure); CL_ERR_NOT_FOUND. */
static CL_MUST_USE cl_status kms_sqlite_get_key(kms_store *s, const char *key_id, kms_key_rec *out)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    int64_t v[7];
    memset(out, 0, sizeof(*out));
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_GET_KEY, KMS_TEXT(key_id)));
    CL_ENSURE_GOTO(c.row, CL_ERR_NOT_FOUND, "no key %s", key_id);
    CL_GUARD_GOTO(kms_col_text(&c, 0, out->key_id, sizeof(out->key_id)));
    CL_GUARD_GOTO(kms_col_text(&c, 1, out->arn, sizeof(out->arn)));
    CL_GUARD_GOTO(kms_col_text(&c, 2, out->account, sizeof(out->account)));
    CL_GUARD_GOTO(kms_col_int(&c, 3, INT64_MIN, INT64_MAX, &out->created));
    CL_GUARD_GOTO(kms_col_int(&c, 4, KMS_KEY_ENABLED, KMS_KEY_PENDING_IMPORT, &v[0]));
    CL_GUARD_GOTO(kms_col_text(&c, 5, out->description, sizeof(out->description)));
    CL_GUARD_GOTO(kms_col_text(&c, 6, out->key_usage, sizeof(out->key_usage)));
    CL_GUARD_GOTO(kms_col_text(&c, 7, out->key_spec, sizeof(out->key_spec)));
    CL_GUARD_GOTO(kms_col_int(&c, 8, INT64_MIN, INT64_MAX, &out->deletion_date));
    CL_GUARD_GOTO(kms_col_int(&c, 9, INT_MIN, INT_MAX, &v[1]));
    CL_GUARD_GOTO(kms_col_int(&c, 10, 1, UINT32_MAX, &v[2]));
    CL_GUARD_GOTO(kms_col_int(&c, 11, 0, 1, &v[3]));
    CL_GUARD_GOTO(kms_col_int(&c, 12, INT_MIN, INT_MAX, &v[4]));
    CL_GUARD_GOTO(kms_col_int(&c, 13, INT64_MIN, INT64_MAX, &out->last_rotated));
    CL_GUARD_GOTO(kms_col_dup(&c, 14, &out->policy));
    CL_GUARD_GOTO(kms_col_text(&c, 15, out->region, sizeof(out->region)));
    CL_GUARD_GOTO(kms_col_int(&c, 16, 0, 1, &v[5]));
    CL_GUARD_GOTO(kms_col_int(&c, 17, 0, 1, &v[6]));
    CL_GUARD_GOTO(kms_col_int(&c, 18, 0, INT64_MAX, &out->material_valid_to));
    out->external = v[5] != 0;
    out->imported = v[6] != 0;
    out->state = (kms_key_state)v[0];
    out->pending_days = (int)v[1];
    out->current_version = (uint32_t)v[2];
    out->rotation_enabled = v[3] != 0;
    out->rotation_period_days = (int)v[4];
out:
    if (rc != CL_OK) kms_key_rec_clear(out);
    return kms_sq_leave(&c, rc);
}

/* store.h: writes k's mutable fields; CL_ERR_NOT_FOUND when the key is gone. */
static CL_MUST_USE cl_status kms_sqlite_update_key(kms_store *s, const kms_key_rec *k)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = KMS_SQ_RUN(&c, S_UPDATE_KEY, KMS_INT(k->state), KMS_TEXT(k->description), KMS_INT(k->deletion_date),
                              KMS_INT(k->pending_days), KMS_TEXT(k->policy ? k->policy : ""),
                              KMS_INT(k->rotation_enabled), KMS_INT(k->rotation_period_days), KMS_TEXT(k->key_id));
    if (rc == CL_OK && c.changes != 1) rc = CL_RAISE(CL_ERR_NOT_FOUND, "no key %s", k->key_id);
    return kms_sq_leave(&c, rc);
}

/* store.h: the key, its material, aliases, grants and tags, in one transaction. */
static CL_MUST_USE cl_status kms_sqlite_delete_key(kms_store *s, const char *key_id)
{
    static const enum kms_sq del[] = {S_DEL_KEY_ALIASES,  S_DEL_KEY_GRANTS, S_DEL_KEY_TAGS,
                                      S_DEL_KEY_VERSIONS, S_DEL_KEY_IMPORT, S_DEL_KEY};
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_sq_tx(&c, S_BEGIN));
    for (size_t i = 0; i < sizeof(del) / sizeof(del[0]); i++) CL_GUARD_GOTO(KMS_SQ_RUN(&c, del[i], KMS_TEXT(key_id)));
    CL_GUARD_GOTO(kms_sq_tx(&c, S_COMMIT));
out:
    return kms_sq_leave(&c, rc);
}

/* store.h: up to limit key ids of account in region after `after`, in id order; *more when others follow. */
static CL_MUST_USE cl_status kms_sqlite_list_keys(kms_store *s, const char *account, const char *region,
                                                  const char *after, size_t limit, char (*out)[KMS_KEY_ID_LEN + 1],
                                                  size_t *n, bool *more)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    *n = 0;
    CL_GUARD_GOTO(
        KMS_SQ_RUN(&c, S_LIST_KEYS, KMS_TEXT(account), KMS_TEXT(region), KMS_TEXT(after), KMS_INT(limit + 1)));
    for (; c.row && *n < limit; (*n)++) {
        CL_GUARD_GOTO(kms_col_text(&c, 0, out[*n], KMS_KEY_ID_LEN + 1));
        CL_GUARD_GOTO(kms_sq_next(&c));
    }
out:
    *more = rc == CL_OK && c.row;
    return kms_sq_leave(&c, rc);
}

/* store.h: appends version `version` of key_id's wrapped material to wrapped; CL_ERR_NOT_FOUND. */
static CL_MUST_USE cl_status kms_sqlite_get_material(kms_store *s, const char *key_id, uint32_t version,
                                                     cl_buf *wrapped)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_GET_MATERIAL, KMS_TEXT(key_id), KMS_INT(version)));
    CL_ENSURE_GOTO(c.row, CL_ERR_NOT_FOUND, "no version %u of key %s", version, key_id);
    CL_GUARD_GOTO(kms_col_blob(&c, 0, wrapped));
out:
    return kms_sq_leave(&c, rc);
}

/* store.h: version from + 1 becomes current, in one transaction, only if `from` still is
 * (CL_ERR_STATE: a concurrent rotation won). */
static CL_MUST_USE cl_status kms_sqlite_add_version(kms_store *s, const char *key_id, uint32_t from,
                                                    const uint8_t *wrapped, size_t wrapped_len, int64_t now,
                                                    bool on_demand)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_sq_tx(&c, S_BEGIN));
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_ROTATE, KMS_INT((int64_t)from + 1), KMS_INT(now), KMS_TEXT(key_id), KMS_INT(from)));
    CL_ENSURE_GOTO(c.changes == 1, CL_ERR_STATE, "key %s was rotated concurrently", key_id);
    CL_GUARD_GOTO(kms_sqlite_insert_version(&c, key_id, from + 1, wrapped, wrapped_len, now, on_demand));
    CL_GUARD_GOTO(kms_sq_tx(&c, S_COMMIT));
out:
    return kms_sq_leave(&c, rc);
}

/* store.h: up to limit versions of key_id after `after`, in order, with when each was made and how. */
static CL_MUST_USE cl_status kms_sqlite_list_versions(kms_store *s, const char *key_id, uint32_t after, size_t limit,
                                                      uint32_t *versions, int64_t *created, bool *on_demand, size_t *n,
                                                      bool *more)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    int64_t version, od;
    *n = 0;
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_LIST_VERSIONS, KMS_TEXT(key_id), KMS_INT(after), KMS_INT(limit + 1)));
    for (; c.row && *n < limit; (*n)++) {
        CL_GUARD_GOTO(kms_col_int(&c, 0, 1, UINT32_MAX, &version));
        CL_GUARD_GOTO(kms_col_int(&c, 1, INT64_MIN, INT64_MAX, &created[*n]));
        CL_GUARD_GOTO(kms_col_int(&c, 2, 0, 1, &od));
        versions[*n] = (uint32_t)version;
        on_demand[*n] = od != 0;
        CL_GUARD_GOTO(kms_sq_next(&c));
    }
out:
    *more = rc == CL_OK && c.row;
    return kms_sq_leave(&c, rc);
}

/* --- aliases --------------------------------------------------------------------- */

/* store.h: a new alias of account in region; CL_ERR_EXISTS when the name is taken. */
static CL_MUST_USE cl_status kms_sqlite_create_alias(kms_store *s, const char *account, const char *region,
                                                     const kms_alias_rec *a)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = KMS_SQ_RUN(&c, S_INSERT_ALIAS, KMS_TEXT(a->key_id), KMS_INT(a->updated), KMS_TEXT(account),
                              KMS_TEXT(region), KMS_TEXT(a->name), KMS_INT(a->created));
    if (rc == CL_ERR_EXISTS) rc = CL_RAISE(CL_ERR_EXISTS, "alias %s already exists", a->name);
    return kms_sq_leave(&c, rc);
}

/* store.h: points an existing alias at a->key_id; CL_ERR_NOT_FOUND when there is no such alias. */
static CL_MUST_USE cl_status kms_sqlite_update_alias(kms_store *s, const char *account, const char *region,
                                                     const kms_alias_rec *a)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = KMS_SQ_RUN(&c, S_UPDATE_ALIAS, KMS_TEXT(a->key_id), KMS_INT(a->updated), KMS_TEXT(account),
                              KMS_TEXT(region), KMS_TEXT(a->name));
    if (rc == CL_OK && c.changes != 1) rc = CL_RAISE(CL_ERR_NOT_FOUND, "no alias %s", a->name);
    return kms_sq_leave(&c, rc);
}

/* An alias row (KMS_ALIAS_COLS) into a. */
static CL_MUST_USE cl_status kms_alias_from_row(const kms_sq_call *c, kms_alias_rec *a)
{
    CL_GUARD(kms_col_text(c, 0, a->name, sizeof(a->name)));
    CL_GUARD(kms_col_text(c, 1, a->key_id, sizeof(a->key_id)));
    CL_GUARD(kms_col_int(c, 2, INT64_MIN, INT64_MAX, &a->created));
    return kms_col_int(c, 3, INT64_MIN, INT64_MAX, &a->updated);
}

/* store.h: alias `name` of account in region into out; CL_ERR_NOT_FOUND. */
static CL_MUST_USE cl_status kms_sqlite_get_alias(kms_store *s, const char *account, const char *region,
                                                  const char *name, kms_alias_rec *out)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_GET_ALIAS, KMS_TEXT(account), KMS_TEXT(region), KMS_TEXT(name)));
    CL_ENSURE_GOTO(c.row, CL_ERR_NOT_FOUND, "no alias %s", name);
    CL_GUARD_GOTO(kms_alias_from_row(&c, out));
out:
    return kms_sq_leave(&c, rc);
}

/* store.h: removes alias `name` of account in region; CL_ERR_NOT_FOUND when there was none. */
static CL_MUST_USE cl_status kms_sqlite_delete_alias(kms_store *s, const char *account, const char *region,
                                                     const char *name)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = KMS_SQ_RUN(&c, S_DEL_ALIAS, KMS_TEXT(account), KMS_TEXT(region), KMS_TEXT(name));
    if (rc == CL_OK && c.changes != 1) rc = CL_RAISE(CL_ERR_NOT_FOUND, "no alias %s", name);
    return kms_sq_leave(&c, rc);
}

/* store.h: up to limit aliases of account in region after `after` in name order, only key_id's unless NULL. */
static CL_MUST_USE cl_status kms_sqlite_list_aliases(kms_store *s, const char *account, const char *region,
                                                     const char *key_id, const char *after, size_t limit,
                                                     kms_alias_rec *out, size_t *n, bool *more)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    *n = 0;
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_LIST_ALIASES, KMS_TEXT(account), KMS_TEXT(region), KMS_TEXT(after),
                             KMS_TEXT(key_id ? key_id : ""), KMS_INT(limit + 1)));
    for (; c.row && *n < limit; (*n)++) {
        CL_GUARD_GOTO(kms_alias_from_row(&c, &out[*n]));
        CL_GUARD_GOTO(kms_sq_next(&c));
    }
out:
    *more = rc == CL_OK && c.row;
    return kms_sq_leave(&c, rc);
}

/* --- grants ---------------------------------------------------------------------- */

/* store.h: a new grant; CL_ERR_EXISTS when its id is taken. */
static CL_MUST_USE cl_status kms_sqlite_create_grant(kms_store *s, const kms_grant_rec *g)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc =
        KMS_SQ_RUN(&c, S_INSERT_GRANT, KMS_TEXT(g->grant_id), KMS_TEXT(g->key_id), KMS_TEXT(g->grantee),
                   KMS_TEXT(g->retiring), KMS_TEXT(g->issuing_account), KMS_TEXT(g->operations), KMS_TEXT(g->name),
                   KMS_TEXT(g->constraints ? g->constraints : ""), KMS_INT(g->created), KMS_TEXT(g->region));
    if (rc == CL_ERR_EXISTS) rc = CL_RAISE(CL_ERR_EXISTS, "grant %s already exists", g->grant_id);
    return kms_sq_leave(&c, rc);
}

/* A grant row (KMS_GRANT_COLS) into g (g->constraints allocated); on failure g is left empty. */
static CL_MUST_USE cl_status kms_grant_from_row(const kms_sq_call *c, kms_grant_rec *g)
{
    cl_status rc = CL_OK;
    memset(g, 0, sizeof(*g));
    CL_GUARD_GOTO(kms_col_text(c, 0, g->grant_id, sizeof(g->grant_id)));
    CL_GUARD_GOTO(kms_col_text(c, 1, g->key_id, sizeof(g->key_id)));
    CL_GUARD_GOTO(kms_col_text(c, 2, g->grantee, sizeof(g->grantee)));
    CL_GUARD_GOTO(kms_col_text(c, 3, g->retiring, sizeof(g->retiring)));
    CL_GUARD_GOTO(kms_col_text(c, 4, g->issuing_account, sizeof(g->issuing_account)));
    CL_GUARD_GOTO(kms_col_text(c, 5, g->operations, sizeof(g->operations)));
    CL_GUARD_GOTO(kms_col_text(c, 6, g->name, sizeof(g->name)));
    CL_GUARD_GOTO(kms_col_dup(c, 7, &g->constraints));
    CL_GUARD_GOTO(kms_col_int(c, 8, INT64_MIN, INT64_MAX, &g->created));
    CL_GUARD_GOTO(kms_col_text(c, 9, g->region, sizeof(g->region)));
out:
    if (rc != CL_OK) kms_grant_rec_clear(g);
    return rc;
}

/* store.h: grant grant_id into out (left empty on failure); CL_ERR_NOT_FOUND. */
static CL_MUST_USE cl_status kms_sqlite_get_grant(kms_store *s, const char *grant_id, kms_grant_rec *out)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    memset(out, 0, sizeof(*out));
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_GET_GRANT, KMS_TEXT(grant_id)));
    CL_ENSURE_GOTO(c.row, CL_ERR_NOT_FOUND, "no grant %s", grant_id);
    CL_GUARD_GOTO(kms_grant_from_row(&c, out));
out:
    return kms_sq_leave(&c, rc);
}

/* store.h: removes grant grant_id; CL_ERR_NOT_FOUND when there was none. */
static CL_MUST_USE cl_status kms_sqlite_delete_grant(kms_store *s, const char *grant_id)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = KMS_SQ_RUN(&c, S_DEL_GRANT, KMS_TEXT(grant_id));
    if (rc == CL_OK && c.changes != 1) rc = CL_RAISE(CL_ERR_NOT_FOUND, "no grant %s", grant_id);
    return kms_sq_leave(&c, rc);
}

/* store.h: up to limit grants matching f after `after` in id order; the caller clears out[0..*n),
 * also on failure. */
static CL_MUST_USE cl_status kms_sqlite_list_grants(kms_store *s, const kms_grant_filter *f, const char *after,
                                                    size_t limit, kms_grant_rec *out, size_t *n, bool *more)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    *n = 0;
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_LIST_GRANTS, KMS_TEXT(after), KMS_TEXT(f->key_id), KMS_TEXT(f->grantee),
                             KMS_TEXT(f->retiring), KMS_TEXT(f->grant_id), KMS_TEXT(f->region), KMS_INT(limit + 1)));
    for (; c.row && *n < limit; (*n)++) {
        CL_GUARD_GOTO(kms_grant_from_row(&c, &out[*n]));
        CL_GUARD_GOTO(kms_sq_next(&c));
    }
out:
    *more = rc == CL_OK && c.row;
    return kms_sq_leave(&c, rc);
}

/* --- tags ------------------------------------------------------------------------ */

/* store.h: sets every tag in one transaction; CL_ERR_LIMIT, changing nothing, past max_tags. */
static CL_MUST_USE cl_status kms_sqlite_tag(kms_store *s, const char *key_id, const cl_kvlist *tags, size_t max_tags)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    int64_t count;
    CL_GUARD_GOTO(kms_sq_tx(&c, S_BEGIN));
    for (size_t i = 0; i < tags->count; i++)
        CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_UPSERT_TAG, KMS_TEXT(key_id), KMS_TEXT(tags->items[i].key),
                                 KMS_TEXT(tags->items[i].value)));
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_COUNT_TAGS, KMS_TEXT(key_id)));
    CL_ENSURE_GOTO(c.row, CL_ERR_INTERNAL, "key store: counting the tags of %s returned no row", key_id);
    CL_GUARD_GOTO(kms_col_int(&c, 0, 0, INT64_MAX, &count));
    CL_ENSURE_GOTO((uint64_t)count <= max_tags, CL_ERR_LIMIT, "a key can have at most %zu tags", max_tags);
    CL_GUARD_GOTO(kms_sq_tx(&c, S_COMMIT));
out:
    return kms_sq_leave(&c, rc);
}

/* store.h: removes the n tag keys (absent ones are no error) in one transaction. */
static CL_MUST_USE cl_status kms_sqlite_untag(kms_store *s, const char *key_id, const char *const *keys, size_t n)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_sq_tx(&c, S_BEGIN));
    for (size_t i = 0; i < n; i++) CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_DEL_TAG, KMS_TEXT(key_id), KMS_TEXT(keys[i])));
    CL_GUARD_GOTO(kms_sq_tx(&c, S_COMMIT));
out:
    return kms_sq_leave(&c, rc);
}

/* store.h: up to limit tags of key_id after `after` in key order, appended to out. */
static CL_MUST_USE cl_status kms_sqlite_list_tags(kms_store *s, const char *key_id, const char *after, size_t limit,
                                                  cl_kvlist *out, bool *more)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    const char *k, *v;
    size_t klen, vlen;
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_LIST_TAGS, KMS_TEXT(key_id), KMS_TEXT(after), KMS_INT(limit + 1)));
    for (size_t i = 0; c.row && i < limit; i++) {
        CL_GUARD_GOTO(kms_col_str(&c, 0, &k, &klen));
        CL_GUARD_GOTO(kms_col_str(&c, 1, &v, &vlen));
        CL_GUARD_GOTO(cl_kvlist_add(out, k, klen, v, vlen));
        CL_GUARD_GOTO(kms_sq_next(&c));
    }
out:
    *more = rc == CL_OK && c.row;
    return kms_sq_leave(&c, rc);
}

/* --- imported key material ------------------------------------------------------------ */

/* store.h: the import state of key_id (CL_ERR_NOT_FOUND: not an EXTERNAL key); the wrapped
 * wrapping key appended to wrapping_key unless NULL. */
static CL_MUST_USE cl_status kms_sqlite_get_import(kms_store *s, const char *key_id, kms_import_rec *out,
                                                   cl_buf *wrapping_key)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    int64_t imported;
    cl_buf hash;
    cl_buf_init(&hash, KMS_IMPORT_TOKEN_HASH_LEN);
    memset(out, 0, sizeof(*out));
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_GET_IMPORT, KMS_TEXT(key_id)));
    CL_ENSURE_GOTO(c.row, CL_ERR_NOT_FOUND, "key %s has no imported key material", key_id);
    CL_GUARD_GOTO(kms_col_text(&c, 1, out->material_id, sizeof(out->material_id)));
    CL_GUARD_GOTO(kms_col_int(&c, 2, 0, 1, &imported));
    CL_GUARD_GOTO(kms_col_int(&c, 3, 0, INT64_MAX, &out->valid_to));
    CL_GUARD_GOTO(kms_col_text(&c, 4, out->wrapping_alg, sizeof(out->wrapping_alg)));
    CL_GUARD_GOTO(kms_col_text(&c, 5, out->wrapping_spec, sizeof(out->wrapping_spec)));
    CL_GUARD_GOTO(kms_col_int(&c, 6, 0, INT64_MAX, &out->params_valid_to));
    CL_GUARD_GOTO(kms_col_blob(&c, 7, &hash));
    KMS_COL_ENSURE(&c, 7, hash.len == 0 || hash.len == KMS_IMPORT_TOKEN_HASH_LEN, "holds %zu bytes", hash.len);
    if (hash.len > 0) memcpy(out->token_hash, hash.data, KMS_IMPORT_TOKEN_HASH_LEN);
    if (wrapping_key != NULL) CL_GUARD_GOTO(kms_col_blob(&c, 8, wrapping_key));
    out->imported = imported != 0;
out:
    cl_buf_free(&hash);
    return kms_sq_leave(&c, rc);
}

/* store.h: replaces key_id's import parameters. */
static CL_MUST_USE cl_status kms_sqlite_set_import_params(kms_store *s, const char *key_id, const kms_import_rec *p,
                                                          const uint8_t *wrapped_key, size_t wrapped_key_len)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = KMS_SQ_RUN(&c, S_SET_IMPORT_PARAMS, KMS_TEXT(p->wrapping_alg), KMS_TEXT(p->wrapping_spec),
                              KMS_INT(p->params_valid_to), KMS_BLOB(p->token_hash, KMS_IMPORT_TOKEN_HASH_LEN),
                              KMS_BLOB(wrapped_key, wrapped_key_len), KMS_TEXT(key_id));
    if (rc == CL_OK && c.changes != 1) rc = CL_RAISE(CL_ERR_NOT_FOUND, "key %s has no import state", key_id);
    return kms_sq_leave(&c, rc);
}

/* store.h: version-1 material of key_id (replacing any), its id and expiry; with enable, the key
 * becomes Enabled unless PendingDeletion. One transaction. */
static CL_MUST_USE cl_status kms_sqlite_import_material(kms_store *s, const char *key_id, const uint8_t *wrapped,
                                                        size_t wrapped_len, const char *material_id, int64_t valid_to,
                                                        int64_t now, bool enable)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_sq_tx(&c, S_BEGIN));
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_SET_IMPORTED, KMS_TEXT(material_id), KMS_INT(valid_to), KMS_TEXT(key_id)));
    CL_ENSURE_GOTO(c.changes == 1, CL_ERR_NOT_FOUND, "key %s has no import state", key_id);
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_PUT_MATERIAL, KMS_TEXT(key_id), KMS_BLOB(wrapped, wrapped_len), KMS_INT(now)));
    if (enable) CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_ENABLE_IMPORTED, KMS_TEXT(key_id)));
    CL_GUARD_GOTO(kms_sq_tx(&c, S_COMMIT));
out:
    return kms_sq_leave(&c, rc);
}

/* store.h: deletes key_id's imported material (only if it still expires at expired_at, unless 0)
 * and makes the key PendingImport unless it is PendingDeletion. One transaction. */
static CL_MUST_USE cl_status kms_sqlite_delete_material(kms_store *s, const char *key_id, int64_t expired_at,
                                                        bool *deleted)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    *deleted = false;
    CL_GUARD_GOTO(kms_sq_tx(&c, S_BEGIN));
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_DROP_MATERIAL, KMS_TEXT(key_id), KMS_INT(expired_at)));
    *deleted = c.changes == 1;
    if (*deleted || expired_at == 0) {
        CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_DEL_KEY_VERSIONS, KMS_TEXT(key_id)));
        CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_PENDING_IMPORT, KMS_TEXT(key_id)));
    }
    CL_GUARD_GOTO(kms_sq_tx(&c, S_COMMIT));
out:
    if (rc != CL_OK) *deleted = false;
    return kms_sq_leave(&c, rc);
}

/* --- the certificate service ------------------------------------------------------ */

/* store.h: a session's version and record; CL_ERR_NOT_FOUND. */
static CL_MUST_USE cl_status kms_sqlite_cas_get(kms_store *s, const char *name, int64_t *version, cl_buf *record)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_CAS_GET, KMS_TEXT(name)));
    CL_ENSURE_GOTO(c.row, CL_ERR_NOT_FOUND, "no session %s", name);
    CL_GUARD_GOTO(kms_col_int(&c, 0, 1, INT64_MAX, version));
    CL_GUARD_GOTO(kms_col_blob(&c, 1, record));
out:
    return kms_sq_leave(&c, rc);
}

/* store.h: creates (version 0) or replaces a session record while its version is `version`. */
static CL_MUST_USE cl_status kms_sqlite_cas_put(kms_store *s, const char *name, int64_t version, const uint8_t *record,
                                                size_t len, int64_t now)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    if (version == 0) {
        rc = KMS_SQ_RUN(&c, S_CAS_INSERT, KMS_TEXT(name), KMS_BLOB(record, len), KMS_INT(now));
        if (rc == CL_ERR_EXISTS) rc = CL_RAISE(CL_ERR_EXISTS, "session %s already exists", name);
    } else {
        rc = KMS_SQ_RUN(&c, S_CAS_UPDATE, KMS_BLOB(record, len), KMS_INT(now), KMS_TEXT(name), KMS_INT(version));
        if (rc == CL_OK && c.changes != 1)
            rc = CL_RAISE(CL_ERR_STATE, "session %s was changed by another request meanwhile", name);
    }
    return kms_sq_leave(&c, rc);
}

/* store.h: marks a nonce used (CL_ERR_EXISTS when it was), dropping expired marks, in one transaction. */
static CL_MUST_USE cl_status kms_sqlite_cas_use_nonce(kms_store *s, const char *nonce_id, int64_t expires, int64_t now)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_sq_tx(&c, S_BEGIN));
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_CAS_NONCE_PURGE, KMS_INT(now)));
    rc = KMS_SQ_RUN(&c, S_CAS_NONCE_USE, KMS_TEXT(nonce_id), KMS_INT(expires));
    if (rc == CL_ERR_EXISTS) CL_FAIL_GOTO(CL_ERR_EXISTS, "the nonce was used already");
    CL_GUARD_GOTO(rc);
    CL_GUARD_GOTO(kms_sq_tx(&c, S_COMMIT));
out:
    return kms_sq_leave(&c, rc);
}

/* --- identities (identity.h) ------------------------------------------------------- */

/* Identities (kind, name) and training jobs (account, name) are both a JSON document under a
 * two-part key: one put, one get, one way through a listing; `thing` names the row in errors. */
typedef struct kms_sq_doc_queries {
    enum kms_sq insert, replace, upsert, get;
} kms_sq_doc_queries;

static CL_MUST_USE cl_status kms_sq_doc_put(kms_store *s, const kms_sq_doc_queries *qs, const char *k1, const char *k2,
                                            const char *doc, kms_iam_put_mode mode, int64_t now, const char *thing)
{
    kms_sq_call c = kms_sq_enter(s);
    enum kms_sq id = mode == KMS_IAM_CREATE ? qs->insert : mode == KMS_IAM_REPLACE ? qs->replace : qs->upsert;
    cl_status rc = KMS_SQ_RUN(&c, id, KMS_TEXT(k1), KMS_TEXT(k2), KMS_TEXT(doc), KMS_INT(now));
    if (rc == CL_ERR_EXISTS) rc = CL_RAISE(CL_ERR_EXISTS, "%s already exists", thing);
    if (rc == CL_OK && mode == KMS_IAM_REPLACE && c.changes != 1) rc = CL_RAISE(CL_ERR_NOT_FOUND, "no %s", thing);
    return kms_sq_leave(&c, rc);
}

static CL_MUST_USE cl_status kms_sq_doc_get(kms_store *s, const kms_sq_doc_queries *qs, const char *k1, const char *k2,
                                            cl_buf *doc, const char *thing)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    const char *text;
    size_t len;
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, qs->get, KMS_TEXT(k1), KMS_TEXT(k2)));
    CL_ENSURE_GOTO(c.row, CL_ERR_NOT_FOUND, "no %s", thing);
    CL_GUARD_GOTO(kms_col_str(&c, 0, &text, &len));
    CL_GUARD_GOTO(cl_buf_append(doc, text, len));
out:
    return kms_sq_leave(&c, rc);
}

/* The rows of a listing query run with limit + 1 as its limit: (name, document) each to fn, at
 * most `limit`, and *more when there was one past them. */
static CL_MUST_USE cl_status kms_sq_doc_rows(kms_sq_call *c, size_t limit, kms_iam_row_fn fn, void *arg, bool *more)
{
    for (size_t n = 0; c->row; n++) {
        if (n == limit) {
            *more = true;
            break;
        }
        const char *name, *doc;
        size_t nl, dl;
        CL_GUARD(kms_col_str(c, 0, &name, &nl));
        CL_GUARD(kms_col_str(c, 1, &doc, &dl));
        CL_GUARD(fn(arg, name, doc));
        CL_GUARD(kms_sq_next(c));
    }
    return CL_OK;
}

static const kms_sq_doc_queries kms_sq_iam_queries = {S_IAM_INSERT, S_IAM_REPLACE, S_IAM_UPSERT, S_IAM_GET};
static const kms_sq_doc_queries kms_sq_job_queries = {S_JOB_INSERT, S_JOB_REPLACE, S_JOB_UPSERT, S_JOB_GET};

static CL_MUST_USE cl_status kms_sqlite_iam_put(kms_store *s, const char *kind, const char *name, const char *doc,
                                                kms_iam_put_mode mode, int64_t now)
{
    char thing[KMS_STORE_THING_MAX];
    (void)snprintf(thing, sizeof(thing), "%s %s", kind, name);
    return kms_sq_doc_put(s, &kms_sq_iam_queries, kind, name, doc, mode, now, thing);
}

static CL_MUST_USE cl_status kms_sqlite_iam_get(kms_store *s, const char *kind, const char *name, cl_buf *doc)
{
    char thing[KMS_STORE_THING_MAX];
    (void)snprintf(thing, sizeof(thing), "%s %s", kind, name);
    return kms_sq_doc_get(s, &kms_sq_iam_queries, kind, name, doc, thing);
}

static CL_MUST_USE cl_status kms_sqlite_iam_delete(kms_store *s, const char *kind, const char *name)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = KMS_SQ_RUN(&c, S_IAM_DELETE, KMS_TEXT(kind), KMS_TEXT(name));
    if (rc == CL_OK && c.changes != 1) rc = CL_RAISE(CL_ERR_NOT_FOUND, "no %s %s", kind, name);
    return kms_sq_leave(&c, rc);
}

static CL_MUST_USE cl_status kms_sqlite_iam_list(kms_store *s, const char *kind, const char *prefix, const char *after,
                                                 size_t limit, kms_iam_row_fn fn, void *arg, bool *more)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    *more = false;
    CL_ENSURE_GOTO(limit > 0 && limit < INT64_MAX, CL_ERR_USAGE, "a listing of %zu identities", limit);
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_IAM_LIST, KMS_TEXT(kind), KMS_TEXT(prefix), KMS_TEXT(after), KMS_INT(limit + 1)));
    CL_GUARD_GOTO(kms_sq_doc_rows(&c, limit, fn, arg, more));
out:
    return kms_sq_leave(&c, rc);
}

/* --- training jobs (sagemaker.h) ---------------------------------------------------- */

static CL_MUST_USE cl_status kms_sqlite_job_put(kms_store *s, const char *account, const char *name, const char *doc,
                                                kms_iam_put_mode mode, int64_t now)
{
    char thing[KMS_STORE_THING_MAX];
    (void)snprintf(thing, sizeof(thing), "training job %s in %s", name, account);
    return kms_sq_doc_put(s, &kms_sq_job_queries, account, name, doc, mode, now, thing);
}

static CL_MUST_USE cl_status kms_sqlite_job_get(kms_store *s, const char *account, const char *name, cl_buf *doc)
{
    char thing[KMS_STORE_THING_MAX];
    (void)snprintf(thing, sizeof(thing), "training job %s in %s", name, account);
    return kms_sq_doc_get(s, &kms_sq_job_queries, account, name, doc, thing);
}

static CL_MUST_USE cl_status kms_sqlite_job_list(kms_store *s, const char *account, const char *after, size_t limit,
                                                 kms_iam_row_fn fn, void *arg, bool *more)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    *more = false;
    CL_ENSURE_GOTO(limit > 0 && limit < INT64_MAX, CL_ERR_USAGE, "a listing of %zu training jobs", limit);
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_JOB_LIST, KMS_TEXT(account), KMS_TEXT(after), KMS_INT(limit + 1)));
    CL_GUARD_GOTO(kms_sq_doc_rows(&c, limit, fn, arg, more));
out:
    return kms_sq_leave(&c, rc);
}

static CL_MUST_USE cl_status kms_sqlite_job_event_add(kms_store *s, const char *account, const char *name, int64_t seq,
                                                      int64_t time_ms, const char *message)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = KMS_SQ_RUN(&c, S_JOB_EVENT_ADD, KMS_TEXT(account), KMS_TEXT(name), KMS_INT(seq), KMS_INT(time_ms),
                              KMS_TEXT(message));
    if (rc == CL_ERR_EXISTS) rc = CL_RAISE(CL_ERR_EXISTS, "event %lld of training job %s exists", (long long)seq, name);
    return kms_sq_leave(&c, rc);
}

static CL_MUST_USE cl_status kms_sqlite_job_event_list(kms_store *s, const char *account, const char *name,
                                                       int64_t from, int64_t to, size_t limit, kms_job_event_fn fn,
                                                       void *arg)
{
    kms_sq_call c = kms_sq_enter(s);
    cl_status rc = CL_OK;
    CL_ENSURE_GOTO(limit < INT64_MAX, CL_ERR_USAGE, "a listing of %zu log events", limit);
    CL_GUARD_GOTO(KMS_SQ_RUN(&c, S_JOB_EVENT_LIST, KMS_TEXT(account), KMS_TEXT(name), KMS_INT(from), KMS_INT(to),
                             KMS_INT(limit)));
    while (c.row) {
        int64_t seq, t;
        const char *msg;
        size_t ml;
        CL_GUARD_GOTO(kms_col_int(&c, 0, 0, INT64_MAX, &seq));
        CL_GUARD_GOTO(kms_col_int(&c, 1, 0, INT64_MAX, &t));
        CL_GUARD_GOTO(kms_col_str(&c, 2, &msg, &ml));
        CL_GUARD_GOTO(fn(arg, seq, t, msg));
        CL_GUARD_GOTO(kms_sq_next(&c));
    }
out:
    return kms_sq_leave(&c, rc);
}

/* --- open and close ---------------------------------------------------------------- */

/* Finalizes the statements and closes the database; s may come from a failed open. A statement's
 * finalize repeats its last error, already reported; a failed close is logged. */
static void kms_sqlite_close(kms_store *s)
{
    kms_sqlite *q = s->impl;
    if (q != NULL) {
        for (int id = 0; id < S_COUNT; id++) (void)sqlite3_finalize(q->st[id]);
        if (sqlite3_close(q->db) != SQLITE_OK)
            CL_LOG_ERROR("key store: closing the SQLite database failed: %s", sqlite3_errmsg(q->db));
        pthread_mutex_destroy(&q->mu);
        free(q);
    }
    free(s);
}

static uint64_t kms_sqlite_generation(kms_store *s)
{
    kms_sqlite *q = s->impl;
    return atomic_load(&q->generation) + 1; /* never 0: this store can tell */
}

static const kms_store_ops kms_sqlite_ops = {
    .create_key = kms_sqlite_create_key,
    .get_key = kms_sqlite_get_key,
    .update_key = kms_sqlite_update_key,
    .delete_key = kms_sqlite_delete_key,
    .list_keys = kms_sqlite_list_keys,
    .get_material = kms_sqlite_get_material,
    .add_version = kms_sqlite_add_version,
    .list_versions = kms_sqlite_list_versions,
    .create_alias = kms_sqlite_create_alias,
    .get_alias = kms_sqlite_get_alias,
    .update_alias = kms_sqlite_update_alias,
    .delete_alias = kms_sqlite_delete_alias,
    .list_aliases = kms_sqlite_list_aliases,
    .create_grant = kms_sqlite_create_grant,
    .get_grant = kms_sqlite_get_grant,
    .delete_grant = kms_sqlite_delete_grant,
    .list_grants = kms_sqlite_list_grants,
    .tag = kms_sqlite_tag,
    .untag = kms_sqlite_untag,
    .list_tags = kms_sqlite_list_tags,
    .get_import = kms_sqlite_get_import,
    .set_import_params = kms_sqlite_set_import_params,
    .import_material = kms_sqlite_import_material,
    .delete_material = kms_sqlite_delete_material,
    .cas_get = kms_sqlite_cas_get,
    .cas_put = kms_sqlite_cas_put,
    .cas_use_nonce = kms_sqlite_cas_use_nonce,
    .iam_put = kms_sqlite_iam_put,
    .iam_get = kms_sqlite_iam_get,
    .iam_delete = kms_sqlite_iam_delete,
    .iam_list = kms_sqlite_iam_list,
    .job_put = kms_sqlite_job_put,
    .job_get = kms_sqlite_job_get,
    .job_list = kms_sqlite_job_list,
    .job_event_add = kms_sqlite_job_event_add,
    .job_event_list = kms_sqlite_job_event_list,
    .generation = kms_sqlite_generation,
    .close = kms_sqlite_close,
};

/* One statement of setup (no row expected back), with ?1, if it has one, bound to region. */
static CL_MUST_USE cl_status kms_sq_setup_step(sqlite3 *db, const char *path, const char *sql, const char *region)
{
    sqlite3_stmt *st = NULL;
    cl_status rc = CL_OK;
    int src = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (src == SQLITE_OK && sqlite3_bind_parameter_count(st) > 0)
        src = sqlite3_bind_text(st, 1, region, -1, SQLITE_STATIC);
    while (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) src = SQLITE_OK;
    if (src != SQLITE_DONE)
        rc = CL_RAISE(CL_ERR_IO, "key store %s: upgrading its schema: \"%.60s...\": %s (SQLite error %d)", path, sql,
                      sqlite3_errmsg(db), sqlite3_extended_errcode(db));
    (void)sqlite3_finalize(st); /* repeats the step's error, reported above */
    return rc;
}

/* A one-integer query of setup into *v. */
static CL_MUST_USE cl_status kms_sq_setup_int(sqlite3 *db, const char *path, const char *sql, int64_t *v)
{
    sqlite3_stmt *st = NULL;
    cl_status rc = CL_OK;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
        rc = CL_RAISE(CL_ERR_IO, "key store %s: %s: %s", path, sql, sqlite3_errmsg(db));
    else
        *v = sqlite3_column_int64(st, 0);
    (void)sqlite3_finalize(st);
    return rc;
}

/*
 * Creates the schema in a new file, or brings an older one to KMS_SQ_SCHEMA_VERSION, in one
 * IMMEDIATE transaction: a second server opening the same file at once waits, then finds the
 * work done. A newer schema is refused, not misread.
 */
static CL_MUST_USE cl_status kms_sq_schema(sqlite3 *db, const char *path, const char *default_region)
{
    cl_status rc = CL_OK;
    char *err = NULL;
    int64_t version = 0, tables = 0;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &err) != SQLITE_OK)
        CL_FAIL_GOTO(CL_ERR_IO, "key store %s: %s", path, err != NULL ? err : sqlite3_errmsg(db));
    CL_GUARD_GOTO(kms_sq_setup_int(db, path, "PRAGMA user_version", &version));
    CL_GUARD_GOTO(
        kms_sq_setup_int(db, path, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='keys'", &tables));
    CL_ENSURE_GOTO(version <= KMS_SQ_SCHEMA_VERSION, CL_ERR_UNSUPPORTED,
                   "key store %s has schema version %lld, written by a newer cloister-kms; this build reads version "
                   "%d (run the newer build, or restore a backup made before it)",
                   path, (long long)version, KMS_SQ_SCHEMA_VERSION);
    if (version == 0 && tables == 0) {
        if (sqlite3_exec(db, kms_schema, NULL, NULL, &err) != SQLITE_OK)
            CL_FAIL_GOTO(CL_ERR_IO, "key store %s: creating the schema: %s", path,
                         err != NULL ? err : sqlite3_errmsg(db));
    } else {
        /* Each step from the store's version on, in order, all in this transaction. */
        if (version < 1) {
            for (size_t i = 0; i < sizeof(kms_migrate_v1) / sizeof(kms_migrate_v1[0]); i++)
                CL_GUARD_GOTO(kms_sq_setup_step(db, path, kms_migrate_v1[i], default_region));
            CL_LOG_WARN("key store %s: written before regions; its keys, aliases and grants are now in the region of "
                        "their ARNs (%s unless the configuration said otherwise when they were made)",
                        path, default_region);
        }
        if (version < 2) {
            for (size_t i = 0; i < sizeof(kms_migrate_v2) / sizeof(kms_migrate_v2[0]); i++)
                CL_GUARD_GOTO(kms_sq_setup_step(db, path, kms_migrate_v2[i], default_region));
            CL_LOG_INFO("key store %s: the certificate service's tables added", path);
        }
        if (version < 3) {
            for (size_t i = 0; i < sizeof(kms_migrate_v3) / sizeof(kms_migrate_v3[0]); i++)
                CL_GUARD_GOTO(kms_sq_setup_step(db, path, kms_migrate_v3[i], default_region));
            CL_LOG_INFO("key store %s: the identities' table added", path);
        }
        if (version < 4) {
            for (size_t i = 0; i < sizeof(kms_migrate_v4) / sizeof(kms_migrate_v4[0]); i++)
                CL_GUARD_GOTO(kms_sq_setup_step(db, path, kms_migrate_v4[i], default_region));
            CL_LOG_INFO("key store %s: the training jobs' tables added (schema version %d)", path,
                        KMS_SQ_SCHEMA_VERSION);
        }
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, &err) != SQLITE_OK)
        CL_FAIL_GOTO(CL_ERR_IO, "key store %s: committing its schema: %s", path,
                     err != NULL ? err : sqlite3_errmsg(db));
out:
    sqlite3_free(err);
    if (!sqlite3_get_autocommit(db)) (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL); /* the failure is raised */
    return rc;
}

/* store.h: opens (creating if need be) the store at path, brings its schema up to date and
 * prepares every statement. */
cl_status kms_store_open_sqlite(const char *path, const char *default_region, kms_store **out)
{
    cl_status rc = CL_OK;
    char *err = NULL;
    kms_store *s = calloc(1, sizeof(*s));
    CL_ENSURE(s != NULL, CL_ERR_NOMEM, "out of memory for the key store");
    s->ops = &kms_sqlite_ops;
    kms_sqlite *q = s->impl = calloc(1, sizeof(kms_sqlite));
    CL_ENSURE_GOTO(q != NULL, CL_ERR_NOMEM, "out of memory for the key store");
    pthread_mutex_init(&q->mu, NULL);
    if (sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK)
        CL_FAIL_GOTO(CL_ERR_IO, "cannot open key store %s: %s", path, q->db ? sqlite3_errmsg(q->db) : "no memory");
    /* Another process on the same file (a second cloister-kms by mistake) is waited for, not failed at once. */
    CL_ENSURE_GOTO(sqlite3_busy_timeout(q->db, 5000) == SQLITE_OK, CL_ERR_IO,
                   "key store %s: setting a busy timeout: %s", path, sqlite3_errmsg(q->db));
    if (sqlite3_exec(q->db, kms_setup, NULL, NULL, &err) != SQLITE_OK)
        CL_FAIL_GOTO(CL_ERR_IO, "key store %s: setting up: %s", path, err != NULL ? err : sqlite3_errmsg(q->db));
    CL_GUARD_GOTO(kms_sq_schema(q->db, path, default_region));
    for (int id = 0; id < S_COUNT; id++)
        if (sqlite3_prepare_v3(q->db, kms_sq_sql[id].sql, -1, SQLITE_PREPARE_PERSISTENT, &q->st[id], NULL) != SQLITE_OK)
            CL_FAIL_GOTO(CL_ERR_IO, "key store %s: preparing %s: %s", path, kms_sq_sql[id].name, sqlite3_errmsg(q->db));
    *out = s;
out:
    sqlite3_free(err);
    if (rc != CL_OK) kms_sqlite_close(s);
    return rc;
}

/* store.h: closes s (NULL is fine). */
void kms_store_close(kms_store *s)
{
    if (s != NULL) s->ops->close(s);
}
