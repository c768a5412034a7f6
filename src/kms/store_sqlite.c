/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SQLite key store. One connection behind a mutex: SQLite serialises writers
 * anyway, and a KMS request does a handful of indexed lookups. WAL with
 * synchronous=FULL makes every committed transaction survive power loss
 * (sqlite.org/pragma.html#pragma_synchronous: "FULL ... WAL mode ... durable").
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/*
 * Every statement is prepared once (SQLITE_PREPARE_PERSISTENT) and kept for the
 * life of the connection: parsing SQL on every request showed up in profiles
 * (sqlite3Parser). Statements are only used under mu, each function uses a
 * given SQL text at most once at a time, and kms_done() resets a statement
 * (ending its read transaction) and clears its bindings (which point at the
 * caller's memory, SQLITE_STATIC) before the mutex is released.
 */
#define KMS_STMT_MAX 48

typedef struct kms_stmt_slot {
    const char *sql; /* a string literal: lives as long as the program */
    sqlite3_stmt *st;
} kms_stmt_slot;

typedef struct kms_sqlite {
    sqlite3 *db;
    pthread_mutex_t mu;
    kms_stmt_slot stmts[KMS_STMT_MAX];
    size_t n_stmts;
} kms_sqlite;

#define KMS_SQL_FAIL(db, what) CL_FAIL_GOTO(CL_ERR_IO, "key store: %s: %s", what, sqlite3_errmsg(db))

void kms_grant_rec_clear(kms_grant_rec *g)
{
    free(g->constraints);
    memset(g, 0, sizeof(*g));
}

void kms_key_rec_clear(kms_key_rec *k)
{
    free(k->policy);
    memset(k, 0, sizeof(*k));
}

static const char *kms_schema =
    "CREATE TABLE IF NOT EXISTS keys("
    " key_id TEXT PRIMARY KEY, arn TEXT NOT NULL, account TEXT NOT NULL, created INTEGER NOT NULL,"
    " state INTEGER NOT NULL, description TEXT NOT NULL, key_usage TEXT NOT NULL, key_spec TEXT NOT NULL,"
    " deletion_date INTEGER NOT NULL, pending_days INTEGER NOT NULL, current_version INTEGER NOT NULL,"
    " rotation_enabled INTEGER NOT NULL, rotation_period INTEGER NOT NULL, last_rotated INTEGER NOT NULL,"
    " policy TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS keys_account ON keys(account, key_id);"
    "CREATE TABLE IF NOT EXISTS key_versions("
    " key_id TEXT NOT NULL, version INTEGER NOT NULL, wrapped BLOB NOT NULL, created INTEGER NOT NULL,"
    " on_demand INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(key_id, version));"
    "CREATE TABLE IF NOT EXISTS aliases("
    " account TEXT NOT NULL, name TEXT NOT NULL, key_id TEXT NOT NULL, created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL, PRIMARY KEY(account, name));"
    "CREATE TABLE IF NOT EXISTS grants("
    " grant_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, grantee TEXT NOT NULL, retiring TEXT NOT NULL,"
    " issuing_account TEXT NOT NULL, operations TEXT NOT NULL, name TEXT NOT NULL, constraints TEXT NOT NULL,"
    " created INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS grants_key ON grants(key_id, grant_id);"
    "CREATE TABLE IF NOT EXISTS tags("
    " key_id TEXT NOT NULL, tag_key TEXT NOT NULL, tag_value TEXT NOT NULL, PRIMARY KEY(key_id, tag_key));";

static void kms_copy(char *dst, size_t cap, const unsigned char *src)
{
    (void)snprintf(dst, cap, "%s", src != NULL ? (const char *)src : "");
}

/* The cached statement for sql (prepared on first use); caller holds q->mu. Returns an SQLite code. */
static int kms_prep(kms_sqlite *q, const char *sql, sqlite3_stmt **st)
{
    for (size_t i = 0; i < q->n_stmts; i++) {
        if (q->stmts[i].sql == sql || strcmp(q->stmts[i].sql, sql) == 0) {
            *st = q->stmts[i].st;
            return SQLITE_OK;
        }
    }
    int src = sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (src != SQLITE_OK) return src;
    if (q->n_stmts == KMS_STMT_MAX) {
        /* A new SQL text was added without raising KMS_STMT_MAX: fail loudly rather than leak. */
        sqlite3_finalize(*st);
        *st = NULL;
        return SQLITE_FULL;
    }
    q->stmts[q->n_stmts].sql = sql;
    q->stmts[q->n_stmts].st = *st;
    q->n_stmts++;
    return SQLITE_OK;
}

/* Hands a statement from kms_prep back: resets it and drops its bindings. NULL is fine. */
static void kms_done(sqlite3_stmt *st)
{
    if (st == NULL) return;
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
}

static cl_status kms_sqlite_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        cl_status rc = CL_RAISE(CL_ERR_IO, "key store: %s", err ? err : "exec failed");
        sqlite3_free(err);
        return rc;
    }
    return CL_OK;
}

static cl_status kms_sqlite_create_key(kms_store *s, const kms_key_rec *k, const uint8_t *wrapped, size_t wrapped_len)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL, *st2 = NULL;
    pthread_mutex_lock(&q->mu);
    bool in_tx = false;
    CL_GUARD_GOTO(kms_sqlite_exec(q->db, "BEGIN IMMEDIATE"));
    in_tx = true;
    if (kms_prep(q,
                 "INSERT INTO keys(key_id,arn,account,created,state,description,key_usage,key_spec,"
                 "deletion_date,pending_days,current_version,rotation_enabled,rotation_period,last_rotated,"
                 "policy) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                 &st) != SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st, 1, k->key_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, k->arn, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, k->account, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, k->created);
    sqlite3_bind_int(st, 5, (int)k->state);
    sqlite3_bind_text(st, 6, k->description, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, k->key_usage, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, k->key_spec, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, k->deletion_date);
    sqlite3_bind_int(st, 10, k->pending_days);
    sqlite3_bind_int64(st, 11, k->current_version);
    sqlite3_bind_int(st, 12, k->rotation_enabled);
    sqlite3_bind_int(st, 13, k->rotation_period_days);
    sqlite3_bind_int64(st, 14, k->last_rotated);
    sqlite3_bind_text(st, 15, k->policy ? k->policy : "", -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) KMS_SQL_FAIL(q->db, "insert key");
    if (kms_prep(q, "INSERT INTO key_versions(key_id,version,wrapped,created) VALUES(?,?,?,?)", &st2) != SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st2, 1, k->key_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st2, 2, k->current_version);
    sqlite3_bind_blob(st2, 3, wrapped, (int)wrapped_len, SQLITE_STATIC);
    sqlite3_bind_int64(st2, 4, k->created);
    if (sqlite3_step(st2) != SQLITE_DONE) KMS_SQL_FAIL(q->db, "insert key material");
    CL_GUARD_GOTO(kms_sqlite_exec(q->db, "COMMIT"));
    in_tx = false;
out:
    kms_done(st);
    kms_done(st2);
    if (in_tx) (void)kms_sqlite_exec(q->db, "ROLLBACK");
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_get_key(kms_store *s, const char *key_id, kms_key_rec *out)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&q->mu);
    if (kms_prep(q,
                 "SELECT key_id,arn,account,created,state,description,key_usage,key_spec,deletion_date,"
                 "pending_days,current_version,rotation_enabled,rotation_period,last_rotated,policy "
                 "FROM keys WHERE key_id=?",
                 &st) != SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no key %s", key_id);
    if (step != SQLITE_ROW) KMS_SQL_FAIL(q->db, "read key");
    kms_copy(out->key_id, sizeof(out->key_id), sqlite3_column_text(st, 0));
    kms_copy(out->arn, sizeof(out->arn), sqlite3_column_text(st, 1));
    kms_copy(out->account, sizeof(out->account), sqlite3_column_text(st, 2));
    out->created = sqlite3_column_int64(st, 3);
    out->state = (kms_key_state)sqlite3_column_int(st, 4);
    kms_copy(out->description, sizeof(out->description), sqlite3_column_text(st, 5));
    kms_copy(out->key_usage, sizeof(out->key_usage), sqlite3_column_text(st, 6));
    kms_copy(out->key_spec, sizeof(out->key_spec), sqlite3_column_text(st, 7));
    out->deletion_date = sqlite3_column_int64(st, 8);
    out->pending_days = sqlite3_column_int(st, 9);
    out->current_version = (uint32_t)sqlite3_column_int64(st, 10);
    out->rotation_enabled = sqlite3_column_int(st, 11) != 0;
    out->rotation_period_days = sqlite3_column_int(st, 12);
    out->last_rotated = sqlite3_column_int64(st, 13);
    const unsigned char *pol = sqlite3_column_text(st, 14);
    out->policy = strdup(pol ? (const char *)pol : "");
    if (out->policy == NULL) CL_FAIL_GOTO(CL_ERR_NOMEM, "out of memory for a key policy");
out:
    kms_done(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_update_key(kms_store *s, const kms_key_rec *k)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (kms_prep(q,
                 "UPDATE keys SET state=?,description=?,deletion_date=?,pending_days=?,policy=?,"
                 "rotation_enabled=?,rotation_period=? WHERE key_id=?",
                 &st) != SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_int(st, 1, (int)k->state);
    sqlite3_bind_text(st, 2, k->description, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, k->deletion_date);
    sqlite3_bind_int(st, 4, k->pending_days);
    sqlite3_bind_text(st, 5, k->policy ? k->policy : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, k->rotation_enabled);
    sqlite3_bind_int(st, 7, k->rotation_period_days);
    sqlite3_bind_text(st, 8, k->key_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) KMS_SQL_FAIL(q->db, "update key");
    if (sqlite3_changes(q->db) != 1) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no key %s", k->key_id);
out:
    kms_done(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_delete_key(kms_store *s, const char *key_id)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    static const char *sql[] = {"DELETE FROM aliases WHERE key_id=?", "DELETE FROM grants WHERE key_id=?",
                                "DELETE FROM tags WHERE key_id=?", "DELETE FROM key_versions WHERE key_id=?",
                                "DELETE FROM keys WHERE key_id=?"};
    pthread_mutex_lock(&q->mu);
    bool in_tx = false;
    CL_GUARD_GOTO(kms_sqlite_exec(q->db, "BEGIN IMMEDIATE"));
    in_tx = true;
    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
        sqlite3_stmt *st = NULL;
        if (kms_prep(q, sql[i], &st) != SQLITE_OK) KMS_SQL_FAIL(q->db, "prepare");
        sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        kms_done(st);
        if (step != SQLITE_DONE) KMS_SQL_FAIL(q->db, "delete key");
    }
    CL_GUARD_GOTO(kms_sqlite_exec(q->db, "COMMIT"));
    in_tx = false;
out:
    if (in_tx) (void)kms_sqlite_exec(q->db, "ROLLBACK");
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_list_keys(kms_store *s, const char *account, const char *after, size_t limit,
                                      char (*out)[KMS_KEY_ID_LEN + 1], size_t *n, bool *more)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    *n = 0;
    *more = false;
    pthread_mutex_lock(&q->mu);
    if (kms_prep(q, "SELECT key_id FROM keys WHERE account=? AND key_id>? ORDER BY key_id LIMIT ?", &st) != SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, after, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit + 1);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == limit) {
            *more = true;
            break;
        }
        kms_copy(out[*n], KMS_KEY_ID_LEN + 1, sqlite3_column_text(st, 0));
        (*n)++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) KMS_SQL_FAIL(q->db, "list keys");
out:
    kms_done(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_get_material(kms_store *s, const char *key_id, uint32_t version, cl_buf *wrapped)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (kms_prep(q, "SELECT wrapped FROM key_versions WHERE key_id=? AND version=?", &st) != SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, version);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no version %u of key %s", version, key_id);
    if (step != SQLITE_ROW) KMS_SQL_FAIL(q->db, "read key material");
    CL_GUARD_GOTO(cl_buf_append(wrapped, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0)));
out:
    kms_done(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_add_version(kms_store *s, const char *key_id, uint32_t from, const uint8_t *wrapped,
                                        size_t wrapped_len, int64_t now, bool on_demand)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL, *st2 = NULL;
    pthread_mutex_lock(&q->mu);
    bool in_tx = false;
    CL_GUARD_GOTO(kms_sqlite_exec(q->db, "BEGIN IMMEDIATE"));
    in_tx = true;
    if (kms_prep(q, "UPDATE keys SET current_version=?, last_rotated=? WHERE key_id=? AND current_version=?", &st) !=
        SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_int64(st, 1, (sqlite3_int64)from + 1);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, key_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, from);
    if (sqlite3_step(st) != SQLITE_DONE) KMS_SQL_FAIL(q->db, "rotate key");
    if (sqlite3_changes(q->db) != 1) CL_FAIL_GOTO(CL_ERR_STATE, "key %s was rotated concurrently", key_id);
    if (kms_prep(q, "INSERT INTO key_versions(key_id,version,wrapped,created,on_demand) VALUES(?,?,?,?,?)", &st2) !=
        SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st2, 1, key_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st2, 2, (sqlite3_int64)from + 1);
    sqlite3_bind_blob(st2, 3, wrapped, (int)wrapped_len, SQLITE_STATIC);
    sqlite3_bind_int64(st2, 4, now);
    sqlite3_bind_int(st2, 5, on_demand);
    if (sqlite3_step(st2) != SQLITE_DONE) KMS_SQL_FAIL(q->db, "insert key material");
    CL_GUARD_GOTO(kms_sqlite_exec(q->db, "COMMIT"));
    in_tx = false;
out:
    kms_done(st);
    kms_done(st2);
    if (in_tx) (void)kms_sqlite_exec(q->db, "ROLLBACK");
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_list_versions(kms_store *s, const char *key_id, uint32_t after, size_t limit,
                                          uint32_t *versions, int64_t *created, bool *on_demand, size_t *n, bool *more)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    *n = 0;
    *more = false;
    pthread_mutex_lock(&q->mu);
    if (kms_prep(q,
                 "SELECT version,created,on_demand FROM key_versions WHERE key_id=? AND version>? "
                 "ORDER BY version LIMIT ?",
                 &st) != SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit + 1);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == limit) {
            *more = true;
            break;
        }
        versions[*n] = (uint32_t)sqlite3_column_int64(st, 0);
        created[*n] = sqlite3_column_int64(st, 1);
        on_demand[*n] = sqlite3_column_int(st, 2) != 0;
        (*n)++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) KMS_SQL_FAIL(q->db, "list key versions");
out:
    kms_done(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_alias_write(kms_store *s, const char *sql, const char *account, const kms_alias_rec *a,
                                        bool insert)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (kms_prep(q, sql, &st) != SQLITE_OK) KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st, 1, a->key_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, a->updated);
    sqlite3_bind_text(st, 3, account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, a->name, -1, SQLITE_STATIC);
    if (insert) sqlite3_bind_int64(st, 5, a->created);
    int step = sqlite3_step(st);
    if (step == SQLITE_CONSTRAINT) CL_FAIL_GOTO(CL_ERR_EXISTS, "alias %s already exists", a->name);
    if (step != SQLITE_DONE) KMS_SQL_FAIL(q->db, "write alias");
    if (!insert && sqlite3_changes(q->db) != 1) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no alias %s", a->name);
out:
    kms_done(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_create_alias(kms_store *s, const char *account, const kms_alias_rec *a)
{
    return kms_sqlite_alias_write(s, "INSERT INTO aliases(key_id,updated,account,name,created) VALUES(?,?,?,?,?)",
                                  account, a, true);
}

static cl_status kms_sqlite_update_alias(kms_store *s, const char *account, const kms_alias_rec *a)
{
    return kms_sqlite_alias_write(s, "UPDATE aliases SET key_id=?, updated=? WHERE account=? AND name=?", account, a,
                                  false);
}

static void kms_alias_from_row(sqlite3_stmt *st, kms_alias_rec *a)
{
    kms_copy(a->name, sizeof(a->name), sqlite3_column_text(st, 0));
    kms_copy(a->key_id, sizeof(a->key_id), sqlite3_column_text(st, 1));
    a->created = sqlite3_column_int64(st, 2);
    a->updated = sqlite3_column_int64(st, 3);
}

static cl_status kms_sqlite_get_alias(kms_store *s, const char *account, const char *name, kms_alias_rec *out)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (kms_prep(q, "SELECT name,key_id,created,updated FROM aliases WHERE account=? AND name=?", &st) != SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no alias %s", name);
    if (step != SQLITE_ROW) KMS_SQL_FAIL(q->db, "read alias");
    kms_alias_from_row(st, out);
out:
    kms_done(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_delete_alias(kms_store *s, const char *account, const char *name)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (kms_prep(q, "DELETE FROM aliases WHERE account=? AND name=?", &st) != SQLITE_OK) KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) KMS_SQL_FAIL(q->db, "delete alias");
    if (sqlite3_changes(q->db) != 1) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no alias %s", name);
out:
    kms_done(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_list_aliases(kms_store *s, const char *account, const char *key_id, const char *after,
                                         size_t limit, kms_alias_rec *out, size_t *n, bool *more)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    *n = 0;
    *more = false;
    pthread_mutex_lock(&q->mu);
    if (kms_prep(q,
                 "SELECT name,key_id,created,updated FROM aliases WHERE account=? AND name>? "
                 "AND (?='' OR key_id=?) ORDER BY name LIMIT ?",
                 &st) != SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, after, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key_id ? key_id : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, key_id ? key_id : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)limit + 1);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == limit) {
            *more = true;
            break;
        }
        kms_alias_from_row(st, &out[*n]);
        (*n)++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) KMS_SQL_FAIL(q->db, "list aliases");
out:
    kms_done(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_create_grant(kms_store *s, const kms_grant_rec *g)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (kms_prep(q,
                 "INSERT INTO grants(grant_id,key_id,grantee,retiring,issuing_account,operations,name,"
                 "constraints,created) VALUES(?,?,?,?,?,?,?,?,?)",
                 &st) != SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st, 1, g->grant_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, g->key_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, g->grantee, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, g->retiring, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, g->issuing_account, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, g->operations, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, g->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, g->constraints ? g->constraints : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, g->created);
    if (sqlite3_step(st) != SQLITE_DONE) KMS_SQL_FAIL(q->db, "insert grant");
out:
    kms_done(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

#define KMS_GRANT_COLS "grant_id,key_id,grantee,retiring,issuing_account,operations,name,constraints,created"

static cl_status kms_grant_from_row(sqlite3_stmt *st, kms_grant_rec *g)
{
    memset(g, 0, sizeof(*g));
    kms_copy(g->grant_id, sizeof(g->grant_id), sqlite3_column_text(st, 0));
    kms_copy(g->key_id, sizeof(g->key_id), sqlite3_column_text(st, 1));
    kms_copy(g->grantee, sizeof(g->grantee), sqlite3_column_text(st, 2));
    kms_copy(g->retiring, sizeof(g->retiring), sqlite3_column_text(st, 3));
    kms_copy(g->issuing_account, sizeof(g->issuing_account), sqlite3_column_text(st, 4));
    kms_copy(g->operations, sizeof(g->operations), sqlite3_column_text(st, 5));
    kms_copy(g->name, sizeof(g->name), sqlite3_column_text(st, 6));
    const unsigned char *c = sqlite3_column_text(st, 7);
    g->constraints = strdup(c ? (const char *)c : "");
    g->created = sqlite3_column_int64(st, 8);
    CL_ENSURE(g->constraints != NULL, CL_ERR_NOMEM, "out of memory for a grant");
    return CL_OK;
}

static cl_status kms_sqlite_get_grant(kms_store *s, const char *grant_id, kms_grant_rec *out)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&q->mu);
    if (kms_prep(q, "SELECT " KMS_GRANT_COLS " FROM grants WHERE grant_id=?", &st) != SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st, 1, grant_id, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no grant %s", grant_id);
    if (step != SQLITE_ROW) KMS_SQL_FAIL(q->db, "read grant");
    CL_GUARD_GOTO(kms_grant_from_row(st, out));
out:
    kms_done(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_delete_grant(kms_store *s, const char *grant_id)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    if (kms_prep(q, "DELETE FROM grants WHERE grant_id=?", &st) != SQLITE_OK) KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st, 1, grant_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) KMS_SQL_FAIL(q->db, "delete grant");
    if (sqlite3_changes(q->db) != 1) CL_FAIL_GOTO(CL_ERR_NOT_FOUND, "no grant %s", grant_id);
out:
    kms_done(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_list_grants(kms_store *s, const kms_grant_filter *f, const char *after, size_t limit,
                                        kms_grant_rec *out, size_t *n, bool *more)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    *n = 0;
    *more = false;
    pthread_mutex_lock(&q->mu);
    if (kms_prep(q,
                 "SELECT " KMS_GRANT_COLS " FROM grants WHERE grant_id>?1 "
                 "AND (?2 IS NULL OR key_id=?2) AND (?3 IS NULL OR grantee=?3) "
                 "AND (?4 IS NULL OR retiring=?4) AND (?5 IS NULL OR grant_id=?5) "
                 "ORDER BY grant_id LIMIT ?6",
                 &st) != SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
    if (f->key_id) sqlite3_bind_text(st, 2, f->key_id, -1, SQLITE_STATIC);
    if (f->grantee) sqlite3_bind_text(st, 3, f->grantee, -1, SQLITE_STATIC);
    if (f->retiring) sqlite3_bind_text(st, 4, f->retiring, -1, SQLITE_STATIC);
    if (f->grant_id) sqlite3_bind_text(st, 5, f->grant_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)limit + 1);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == limit) {
            *more = true;
            break;
        }
        CL_GUARD_GOTO(kms_grant_from_row(st, &out[*n]));
        (*n)++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) KMS_SQL_FAIL(q->db, "list grants");
out:
    kms_done(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_tag(kms_store *s, const char *key_id, const cl_kvlist *tags, size_t max_tags)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL, *cnt = NULL;
    pthread_mutex_lock(&q->mu);
    bool in_tx = false;
    CL_GUARD_GOTO(kms_sqlite_exec(q->db, "BEGIN IMMEDIATE"));
    in_tx = true;
    if (kms_prep(q, "INSERT OR REPLACE INTO tags(key_id,tag_key,tag_value) VALUES(?,?,?)", &st) != SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    for (size_t i = 0; i < tags->count; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, tags->items[i].key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, tags->items[i].value, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) KMS_SQL_FAIL(q->db, "write tag");
    }
    if (kms_prep(q, "SELECT count(*) FROM tags WHERE key_id=?", &cnt) != SQLITE_OK) KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(cnt, 1, key_id, -1, SQLITE_STATIC);
    if (sqlite3_step(cnt) != SQLITE_ROW) KMS_SQL_FAIL(q->db, "count tags");
    if ((size_t)sqlite3_column_int64(cnt, 0) > max_tags)
        CL_FAIL_GOTO(CL_ERR_LIMIT, "a key can have at most %zu tags", max_tags);
    CL_GUARD_GOTO(kms_sqlite_exec(q->db, "COMMIT"));
    in_tx = false;
out:
    kms_done(st);
    kms_done(cnt);
    if (in_tx) (void)kms_sqlite_exec(q->db, "ROLLBACK");
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_untag(kms_store *s, const char *key_id, const char *const *keys, size_t n)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&q->mu);
    bool in_tx = false;
    CL_GUARD_GOTO(kms_sqlite_exec(q->db, "BEGIN IMMEDIATE"));
    in_tx = true;
    if (kms_prep(q, "DELETE FROM tags WHERE key_id=? AND tag_key=?", &st) != SQLITE_OK) KMS_SQL_FAIL(q->db, "prepare");
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, keys[i], -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) KMS_SQL_FAIL(q->db, "delete tag");
    }
    CL_GUARD_GOTO(kms_sqlite_exec(q->db, "COMMIT"));
    in_tx = false;
out:
    kms_done(st);
    if (in_tx) (void)kms_sqlite_exec(q->db, "ROLLBACK");
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static cl_status kms_sqlite_list_tags(kms_store *s, const char *key_id, const char *after, size_t limit, cl_kvlist *out,
                                      bool *more)
{
    kms_sqlite *q = s->impl;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    *more = false;
    pthread_mutex_lock(&q->mu);
    if (kms_prep(q, "SELECT tag_key,tag_value FROM tags WHERE key_id=? AND tag_key>? ORDER BY tag_key LIMIT ?", &st) !=
        SQLITE_OK)
        KMS_SQL_FAIL(q->db, "prepare");
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, after, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit + 1);
    int step;
    size_t n = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            *more = true;
            break;
        }
        const char *k = (const char *)sqlite3_column_text(st, 0);
        const char *v = (const char *)sqlite3_column_text(st, 1);
        CL_GUARD_GOTO(cl_kvlist_add(out, k ? k : "", k ? strlen(k) : 0, v ? v : "", v ? strlen(v) : 0));
        n++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) KMS_SQL_FAIL(q->db, "list tags");
out:
    kms_done(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static void kms_sqlite_close(kms_store *s)
{
    kms_sqlite *q = s->impl;
    if (q != NULL) {
        for (size_t i = 0; i < q->n_stmts; i++) sqlite3_finalize(q->stmts[i].st);
        q->n_stmts = 0;
        sqlite3_close(q->db);
        pthread_mutex_destroy(&q->mu);
        free(q);
    }
    free(s);
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
    .close = kms_sqlite_close,
};

cl_status kms_store_open_sqlite(const char *path, kms_store **out)
{
    cl_status rc = CL_OK;
    kms_store *s = calloc(1, sizeof(*s));
    kms_sqlite *q = calloc(1, sizeof(*q));
    if (s == NULL || q == NULL) {
        free(s);
        free(q);
        CL_FAIL(CL_ERR_NOMEM, "out of memory for the key store");
    }
    pthread_mutex_init(&q->mu, NULL);
    s->ops = &kms_sqlite_ops;
    s->impl = q;
    if (sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK)
        CL_FAIL_GOTO(CL_ERR_IO, "cannot open key store %s: %s", path, q->db ? sqlite3_errmsg(q->db) : "no memory");
    sqlite3_busy_timeout(q->db, 5000);
    CL_GUARD_GOTO(kms_sqlite_exec(q->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"));
    CL_GUARD_GOTO(kms_sqlite_exec(q->db, kms_schema));
    *out = s;
out:
    if (rc != CL_OK) kms_sqlite_close(s);
    return rc;
}

void kms_store_close(kms_store *s)
{
    if (s != NULL) s->ops->close(s);
}
