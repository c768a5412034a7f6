/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key store interface. SQLite (store_sqlite.c) is the embedded default;
 * PostgreSQL (store_pg.c) implements the same table of functions, for
 * several cloister-kms instances sharing one database. The store
 * only ever sees key material wrapped under the root key (keys.c): a stolen
 * database file reveals no key.
 *
 * Every write is durable when it returns (SQLite: WAL, synchronous=FULL;
 * PostgreSQL: committed with synchronous_commit on), so a key whose creation
 * was acknowledged survives a crash.
 */
#ifndef CLOISTER_KMS_STORE_H
#define CLOISTER_KMS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/kv.h"

#include "region.h"

#define KMS_KEY_ID_LEN 36
#define KMS_ARN_MAX 512
#define KMS_DESCRIPTION_MAX 8192
#define KMS_ALIAS_MAX 256
#define KMS_ACCOUNT_LEN 12
/* What a store error names a row by: "role NAME", "training job NAME in ACCOUNT" (cut past it). */
#define KMS_STORE_THING_MAX 1024

typedef enum kms_key_state {
    KMS_KEY_ENABLED = 0,
    KMS_KEY_DISABLED,
    KMS_KEY_PENDING_DELETION,
    /* Origin EXTERNAL without live key material: never imported, deleted, or expired. */
    KMS_KEY_PENDING_IMPORT,
} kms_key_state;

/* Keys, aliases and grants belong to an account and a region, as in AWS KMS: a key id names
 * one key whatever the region (ids are random UUIDs), but a request sees only its region's. */
typedef struct kms_key_rec {
    char key_id[KMS_KEY_ID_LEN + 1];
    char arn[KMS_ARN_MAX + 1]; /* arn:PARTITION:kms:REGION:ACCOUNT:key/ID, as created (material is bound to it) */
    char account[KMS_ACCOUNT_LEN + 1];
    char region[KMS_REGION_MAX + 1];
    int64_t created;
    kms_key_state state;
    char description[KMS_DESCRIPTION_MAX + 1];
    char key_usage[32]; /* ENCRYPT_DECRYPT */
    char key_spec[32];  /* SYMMETRIC_DEFAULT */
    int64_t deletion_date;
    int pending_days;
    uint32_t current_version;
    bool rotation_enabled;
    int rotation_period_days;
    int64_t last_rotated; /* when current_version became current */
    char *policy;         /* JSON text, owned (free with kms_key_rec_clear) */
    /* Imported key material (Origin EXTERNAL), read by get_key from the key_imports table and
     * written only by the import functions below. */
    bool external;             /* Origin EXTERNAL */
    bool imported;             /* its material is stored (it may have expired since) */
    int64_t material_valid_to; /* when it expires; 0: it does not */
} kms_key_rec;

void kms_key_rec_clear(kms_key_rec *k);

typedef struct kms_alias_rec {
    char name[KMS_ALIAS_MAX + 1]; /* "alias/..." */
    char key_id[KMS_KEY_ID_LEN + 1];
    int64_t created;
    int64_t updated;
} kms_alias_rec;

#define KMS_GRANT_ID_LEN 64
#define KMS_GRANT_OPS_MAX 512
#define KMS_GRANT_NAME_MAX 256

typedef struct kms_grant_rec {
    char grant_id[KMS_GRANT_ID_LEN + 1];
    char key_id[KMS_KEY_ID_LEN + 1];
    char grantee[KMS_ARN_MAX + 1];
    char retiring[KMS_ARN_MAX + 1]; /* "" when none */
    char issuing_account[KMS_ACCOUNT_LEN + 1];
    char region[KMS_REGION_MAX + 1];        /* its key's */
    char operations[KMS_GRANT_OPS_MAX + 1]; /* "Decrypt,Encrypt" */
    char name[KMS_GRANT_NAME_MAX + 1];
    char *constraints; /* JSON text of the Constraints member, "" when none; owned */
    int64_t created;
} kms_grant_rec;

void kms_grant_rec_clear(kms_grant_rec *g);

/* Which grants a listing returns. */
typedef struct kms_grant_filter {
    const char *key_id;   /* NULL: any */
    const char *grantee;  /* NULL: any */
    const char *retiring; /* NULL: any */
    const char *grant_id; /* NULL: any */
    const char *region;   /* NULL: any */
} kms_grant_filter;

/* The import state of an Origin EXTERNAL key (ops_import.c). */
#define KMS_MATERIAL_ID_LEN 64 /* BackingKeyIdType: 64 lower-case hex digits */
#define KMS_IMPORT_TOKEN_HASH_LEN 32
typedef struct kms_import_rec {
    char material_id[KMS_MATERIAL_ID_LEN + 1]; /* "" until material was first imported; kept after deletion */
    bool imported;
    int64_t valid_to; /* 0: does not expire */
    /* The latest GetParametersForImport: "" / 0 when none was issued. The wrapping private key
     * itself (wrapped under the root key) is read into a caller's buffer. */
    char wrapping_alg[32];
    char wrapping_spec[16];
    int64_t params_valid_to;
    uint8_t token_hash[KMS_IMPORT_TOKEN_HASH_LEN]; /* SHA-256 of the import token */
} kms_import_rec;

/* How iam_put writes: a new entity (CL_ERR_EXISTS when the name is taken), an existing one
 * (CL_ERR_NOT_FOUND when it is not), or either. */
typedef enum kms_iam_put_mode {
    KMS_IAM_CREATE = 0,
    KMS_IAM_REPLACE,
    KMS_IAM_UPSERT,
} kms_iam_put_mode;

/* One row of an iam_list, called with the store busy: it must not call the store. */
typedef CL_MUST_USE cl_status (*kms_iam_row_fn)(void *arg, const char *name, const char *doc);

/* One event of a training job's log (job_event_list), called with the store busy: it must not
 * call the store. */
typedef CL_MUST_USE cl_status (*kms_job_event_fn)(void *arg, int64_t seq, int64_t time_ms, const char *message);

typedef struct kms_store kms_store;
typedef struct kms_store_ops {
    /* Adds a key and its version-1 wrapped material in one transaction. wrapped NULL: a key
     * of Origin EXTERNAL, without material (its import row instead, nothing imported). */
    CL_MUST_USE cl_status (*create_key)(kms_store *s, const kms_key_rec *k, const uint8_t *wrapped, size_t wrapped_len);
    CL_MUST_USE cl_status (*get_key)(kms_store *s, const char *key_id, kms_key_rec *out); /* CL_ERR_NOT_FOUND */
    /* Writes state, description, deletion fields, rotation settings and policy. */
    CL_MUST_USE cl_status (*update_key)(kms_store *s, const kms_key_rec *k);
    /* Removes a key, its material and its aliases (deletion when due). */
    CL_MUST_USE cl_status (*delete_key)(kms_store *s, const char *key_id);
    /* Keys of an account in a region in key id order, after `after` ("" for the start);
     * up to `limit` ids into out (each KMS_KEY_ID_LEN + 1); *more when others follow. */
    CL_MUST_USE cl_status (*list_keys)(kms_store *s, const char *account, const char *region, const char *after,
                                       size_t limit, char (*out)[KMS_KEY_ID_LEN + 1], size_t *n, bool *more);
    CL_MUST_USE cl_status (*get_material)(kms_store *s, const char *key_id, uint32_t version, cl_buf *wrapped);
    /* Rotation: adds version `from + 1` and makes it current, in one
     * transaction, only if `from` is still current (CL_ERR_STATE otherwise:
     * a concurrent rotation won). */
    CL_MUST_USE cl_status (*add_version)(kms_store *s, const char *key_id, uint32_t from, const uint8_t *wrapped,
                                         size_t wrapped_len, int64_t now, bool on_demand);
    /* Versions of a key (version 1 first), for ListKeyRotations. */
    CL_MUST_USE cl_status (*list_versions)(kms_store *s, const char *key_id, uint32_t after, size_t limit,
                                           uint32_t *versions, int64_t *created, bool *on_demand, size_t *n,
                                           bool *more);
    /* Aliases are named within an account and a region. */
    CL_MUST_USE cl_status (*create_alias)(kms_store *s, const char *account, const char *region,
                                          const kms_alias_rec *a); /* CL_ERR_EXISTS */
    CL_MUST_USE cl_status (*get_alias)(kms_store *s, const char *account, const char *region, const char *name,
                                       kms_alias_rec *out);
    CL_MUST_USE cl_status (*update_alias)(kms_store *s, const char *account, const char *region,
                                          const kms_alias_rec *a);
    CL_MUST_USE cl_status (*delete_alias)(kms_store *s, const char *account, const char *region, const char *name);
    /* Aliases after `after` in name order, optionally only those of key_id. */
    CL_MUST_USE cl_status (*list_aliases)(kms_store *s, const char *account, const char *region, const char *key_id,
                                          const char *after, size_t limit, kms_alias_rec *out, size_t *n, bool *more);
    CL_MUST_USE cl_status (*create_grant)(kms_store *s, const kms_grant_rec *g);
    CL_MUST_USE cl_status (*get_grant)(kms_store *s, const char *grant_id, kms_grant_rec *out); /* CL_ERR_NOT_FOUND */
    CL_MUST_USE cl_status (*delete_grant)(kms_store *s, const char *grant_id);                  /* CL_ERR_NOT_FOUND */
    /* Grants matching f in grant id order after `after`; out entries must be
     * cleared by the caller. */
    CL_MUST_USE cl_status (*list_grants)(kms_store *s, const kms_grant_filter *f, const char *after, size_t limit,
                                         kms_grant_rec *out, size_t *n, bool *more);
    /* Tags: set (insert or replace) all of `tags` in one transaction, failing
     * with CL_ERR_LIMIT if the key would end up with more than max_tags. */
    CL_MUST_USE cl_status (*tag)(kms_store *s, const char *key_id, const cl_kvlist *tags, size_t max_tags);
    CL_MUST_USE cl_status (*untag)(kms_store *s, const char *key_id, const char *const *keys, size_t n);
    /* Tags in key order after `after`, appended to out. */
    CL_MUST_USE cl_status (*list_tags)(kms_store *s, const char *key_id, const char *after, size_t limit,
                                       cl_kvlist *out, bool *more);
    /* Imported key material. get_import: CL_ERR_NOT_FOUND for a key that is not EXTERNAL;
     * wrapping_key (may be NULL) gets the wrapped private key of the latest parameters. */
    CL_MUST_USE cl_status (*get_import)(kms_store *s, const char *key_id, kms_import_rec *out, cl_buf *wrapping_key);
    /* Replaces the key's import parameters (alg, spec, validity, token hash, wrapped private key). */
    CL_MUST_USE cl_status (*set_import_params)(kms_store *s, const char *key_id, const kms_import_rec *params,
                                               const uint8_t *wrapped_key, size_t wrapped_key_len);
    /* Stores version-1 material (replacing any), its id and expiry, and (enable) makes the key
     * Enabled unless it is PendingDeletion, in one transaction. */
    CL_MUST_USE cl_status (*import_material)(kms_store *s, const char *key_id, const uint8_t *wrapped,
                                             size_t wrapped_len, const char *material_id, int64_t valid_to, int64_t now,
                                             bool enable);
    /* Deletes the imported material and makes the key PendingImport (unless PendingDeletion), in
     * one transaction. expired_at 0: whatever its expiry; otherwise only if the material still
     * expires at expired_at (*deleted false when it was reimported or deleted meanwhile). */
    CL_MUST_USE cl_status (*delete_material)(kms_store *s, const char *key_id, int64_t expired_at, bool *deleted);
    /* The certificate service (cas_store.c): one record per session, wrapped under the root key,
     * with a version each write advances. cas_get appends the record to out; CL_ERR_NOT_FOUND. */
    CL_MUST_USE cl_status (*cas_get)(kms_store *s, const char *name, int64_t *version, cl_buf *record);
    /* version 0 creates the session (CL_ERR_EXISTS when the name is taken); any other replaces the
     * record only while its version is still `version` (CL_ERR_STATE: another write came first). */
    CL_MUST_USE cl_status (*cas_put)(kms_store *s, const char *name, int64_t version, const uint8_t *record, size_t len,
                                     int64_t now);
    /* Marks an attestation nonce used until `expires` (Unix seconds), dropping the marks of nonces
     * expired before `now`; CL_ERR_EXISTS when it is marked already (a replay). */
    CL_MUST_USE cl_status (*cas_use_nonce)(kms_store *s, const char *nonce_id, int64_t expires, int64_t now);
    /* IAM's entities (identity.h): a JSON document per kind ("user", "akey", "role", ...) and
     * name. iam_get appends the document to doc (CL_ERR_NOT_FOUND); iam_delete raises
     * CL_ERR_NOT_FOUND for no such row; iam_list calls fn for up to `limit` rows of kind whose
     * name starts with prefix, after `after`, in name order, and sets *more when others follow. */
    CL_MUST_USE cl_status (*iam_put)(kms_store *s, const char *kind, const char *name, const char *doc,
                                     kms_iam_put_mode mode, int64_t now);
    CL_MUST_USE cl_status (*iam_get)(kms_store *s, const char *kind, const char *name, cl_buf *doc);
    CL_MUST_USE cl_status (*iam_delete)(kms_store *s, const char *kind, const char *name);
    CL_MUST_USE cl_status (*iam_list)(kms_store *s, const char *kind, const char *prefix, const char *after,
                                      size_t limit, kms_iam_row_fn fn, void *arg, bool *more);
    /* SageMaker's training jobs (sagemaker.h): one JSON document per job, by account and name.
     * job_put writes as iam_put does (its modes, CL_ERR_EXISTS, CL_ERR_NOT_FOUND); job_get
     * appends the document to doc (CL_ERR_NOT_FOUND); job_list calls fn(arg, "ACCOUNT/NAME",
     * doc) for up to `limit` jobs of account (NULL: of every account) after `after` (an
     * "ACCOUNT/NAME", "" for the start), in that order, and sets *more when others follow. */
    CL_MUST_USE cl_status (*job_put)(kms_store *s, const char *account, const char *name, const char *doc,
                                     kms_iam_put_mode mode, int64_t now);
    CL_MUST_USE cl_status (*job_get)(kms_store *s, const char *account, const char *name, cl_buf *doc);
    CL_MUST_USE cl_status (*job_list)(kms_store *s, const char *account, const char *after, size_t limit,
                                      kms_iam_row_fn fn, void *arg, bool *more);
    /* A job's log: event number seq (0, 1, 2, ... as the job wrote them; CL_ERR_EXISTS for a number
     * taken), its time in milliseconds and its line; job_event_list calls fn for up to `limit`
     * events numbered from..to-1, in order. */
    CL_MUST_USE cl_status (*job_event_add)(kms_store *s, const char *account, const char *name, int64_t seq,
                                           int64_t time_ms, const char *message);
    CL_MUST_USE cl_status (*job_event_list)(kms_store *s, const char *account, const char *name, int64_t from,
                                            int64_t to, size_t limit, kms_job_event_fn fn, void *arg);
    /* A number that changes whenever what the store holds may have changed, so that a reader may
     * keep a record for as long as it does not (key_cache.h). 0: the store cannot tell (another
     * process may write it unseen), and nothing read from it may be kept. Thread-safe. */
    uint64_t (*generation)(kms_store *s);
    void (*close)(kms_store *s);
} kms_store_ops;

struct kms_store {
    const kms_store_ops *ops;
    void *impl;
};

/*
 * Opening a store brings an older schema up to date, step by step in one transaction. Stores
 * written before regions existed hold keys, aliases and grants without one: a key's region is
 * the one its ARN names (the server's configured region when it was created), an alias's and a
 * grant's their key's; default_region (the config's "region") for a row whose region cannot be
 * told. A store of before the certificate service gains its tables. A newer schema is refused.
 */
CL_MUST_USE cl_status kms_store_open_sqlite(const char *path, const char *default_region, kms_store **out);
/* PostgreSQL (store_pg.c): conninfo is a libpq connection string or a postgresql:// URI
 * (it may hold a password: it is never logged); up to pool_size connections, one per
 * concurrent caller. Creates the schema on first use; fails if the database is unreachable. */
CL_MUST_USE cl_status kms_store_open_pg(const char *conninfo, size_t pool_size, const char *default_region,
                                        kms_store **out);
void kms_store_close(kms_store *s);

#endif
