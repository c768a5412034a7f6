/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The job's inputs (docs/training-jobs.md, "Inputs"): every object under each channel's S3Uri,
 * read with the C S3 client under the role's session, then told apart by content:
 *  - a Fernet token (Fernet spec: version byte 0x80, so its base64url starts "gAAAAA"), as the
 *    walk-through's data engineer makes it with Python cryptography:
 *    Fernet(base64.b64encode(plaintext_data_key)). Fernet decodes its key with
 *    urlsafe_b64decode, which maps '-' and '_' and leaves '+' and '/' as they are, so the
 *    32 bytes it uses are exactly the KMS data key's plaintext: the first 16 sign, the last 16
 *    encrypt. The data key's CiphertextBlob is the hyperparameter encrypted_data_key (base64)
 *    or the object "<key>.key" beside the token (its raw bytes);
 *  - a Cloister sealed envelope (cloister/envelope.h), unsealed with the recipient provider;
 *  - anything else is taken as it is.
 * Both key releases are KMS Decrypt with Recipient (cloister/recipient.h): the plaintext key
 * never crosses the host. What comes out is then an .npy (magic "\x93NUMPY", NumPy's format
 * description, numpy.lib.format), a pickle (refused: unpickling runs code), or CSV text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloister/attestation.h"
#include "cloister/crypto.h"
#include "cloister/envelope.h"
#include "cloister/fernet.h"
#include "cloister/log.h"
#include "cloister/mem.h"

#include "job.h"

#define INPUT_BLOB_MAX ((size_t)6144) /* a CiphertextBlob is at most 6144 bytes (KMS Decrypt) */
#define INPUT_NPY_MAGIC "\x93NUMPY"
#define INPUT_PICKLE_REFUSED \
    "pickled Python objects are refused: unpickling runs code; write CSV or numpy.save(..., allow_pickle=False)"

typedef struct input_object {
    char *key;
    size_t channel;
    uint64_t size;
} input_object;

/* The data keys released so far, by CiphertextBlob: one Decrypt per distinct blob. */
typedef struct input_keys {
    uint8_t blob_sha[JOB_MAX_DATA_KEYS][32];
    cl_buf key[JOB_MAX_DATA_KEYS]; /* secret */
    size_t n;
} input_keys;

typedef struct input_state {
    job *j;
    input_object *objs;
    size_t n_objs;
    uint64_t total;
    input_keys keys;
} input_state;

static bool input_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static bool input_is_listed(const input_state *st, size_t channel, const char *key)
{
    for (size_t i = 0; i < st->n_objs; i++)
        if (st->objs[i].channel == channel && strcmp(st->objs[i].key, key) == 0) return true;
    return false;
}

/* Lists a channel (ListObjectsV2, every page); keys ending in '/' are folder markers. */
static CL_MUST_USE cl_status input_list(input_state *st, size_t ci, input_object **all, size_t *n_all)
{
    const job_channel *ch = &st->j->doc.channels[ci];
    cl_status rc = CL_OK;
    cl_s3_list_page page = {0};
    char token[1100] = "";
    for (;;) {
        cl_s3_list_params lp = {.prefix = ch->prefix, .continuation_token = token[0] ? token : NULL};
        CL_GUARD_CTX_GOTO(cl_s3_list_objects_v2(st->j->s3, ch->bucket, &lp, &page), "listing s3://%s/%s (channel %s)",
                          ch->bucket, ch->prefix, ch->name);
        for (size_t i = 0; i < page.n_entries; i++) {
            if (input_has_suffix(page.entries[i].key, "/")) continue;
            CL_ENSURE_GOTO(*n_all < (size_t)JOB_MAX_OBJECTS * 2, CL_ERR_LIMIT,
                           "channel %s: more than %d objects under s3://%s/%s", ch->name, JOB_MAX_OBJECTS * 2,
                           ch->bucket, ch->prefix);
            char *k = strdup(page.entries[i].key);
            CL_ENSURE_GOTO(k != NULL, CL_ERR_NOMEM, "out of memory listing the inputs");
            (*all)[(*n_all)++] = (input_object){.key = k, .channel = ci, .size = page.entries[i].size};
        }
        bool more = page.truncated && page.next_token != NULL && strlen(page.next_token) < sizeof(token);
        if (more) (void)snprintf(token, sizeof(token), "%s", page.next_token);
        cl_s3_list_page_free(&page);
        if (!more) break;
    }
out:
    cl_s3_list_page_free(&page);
    return rc;
}

/* A fresh attestation document of the job's recipient key (a recent timestamp for each KMS exchange). */
static CL_MUST_USE cl_status input_attest(job *j, cl_buf *doc)
{
    CL_GUARD_CTX(cl_recipient_attest(&j->rcpt, j->nsm, NULL, 0, doc), "getting an attestation document");
    return CL_OK;
}

cl_status job_recipient_provider(job *j, const char *key_id, cl_key_provider **out)
{
    cl_status rc = CL_OK;
    cl_buf doc;
    cl_buf_init(&doc, CL_ATTEST_MAX_DOC_LEN);
    CL_GUARD_GOTO(input_attest(j, &doc));
    CL_GUARD_GOTO(cl_kms_recipient_provider_open(j->kms, &j->rcpt, doc.data, doc.len, key_id, out));
out:
    cl_buf_free(&doc);
    return rc;
}

/* The Fernet key of a token: Decrypt(blob) with Recipient, once per distinct blob. */
static CL_MUST_USE cl_status input_fernet_key(input_state *st, const char *bucket, const char *key, const cl_buf **out)
{
    job *j = st->j;
    cl_status rc = CL_OK;
    cl_buf blob, doc;
    cl_buf_init(&blob, INPUT_BLOB_MAX);
    cl_buf_init(&doc, CL_ATTEST_MAX_DOC_LEN);
    char blob_key[CL_S3_MAX_KEY + 8];
    uint8_t sha[32];
    int64_t t0 = job_now_ms();
    if (j->doc.encrypted_data_key != NULL) {
        const char *b64 = j->doc.encrypted_data_key;
        CL_ENSURE_GOTO(cl_base64_decode(b64, strlen(b64), false, &blob) == CL_OK, CL_ERR_FORMAT,
                       "hyperparameter encrypted_data_key is not base64 (give the data key's CiphertextBlob, "
                       "base64-encoded)");
    } else {
        int n = snprintf(blob_key, sizeof(blob_key), "%s.key", key);
        CL_ENSURE_GOTO(n > 0 && (size_t)n <= CL_S3_MAX_KEY, CL_ERR_LIMIT, "s3://%s/%s: its .key name is too long",
                       bucket, key);
        int64_t tt = job_now_ms();
        rc = cl_s3_get_object(j->s3, bucket, blob_key, NULL, INPUT_BLOB_MAX, &blob, NULL);
        j->transfer_ms += job_now_ms() - tt;
        t0 += job_now_ms() - tt;
        if (rc == CL_ERR_NOT_FOUND)
            CL_FAIL_GOTO(CL_ERR_NOT_FOUND,
                         "s3://%s/%s is a Fernet token, and its data key is nowhere: give the data key's "
                         "CiphertextBlob as s3://%s/%s or as the hyperparameter encrypted_data_key (base64)",
                         bucket, key, bucket, blob_key);
        CL_GUARD_CTX_GOTO(rc, "reading the data key of s3://%s/%s", bucket, key);
    }
    CL_ENSURE_GOTO(blob.len > 0, CL_ERR_FORMAT, "the data key of s3://%s/%s is empty", bucket, key);
    CL_GUARD_GOTO(cl_sha256(blob.data, blob.len, sha));
    for (size_t i = 0; i < st->keys.n; i++)
        if (memcmp(st->keys.blob_sha[i], sha, 32) == 0) {
            *out = &st->keys.key[i];
            goto out;
        }
    CL_ENSURE_GOTO(st->keys.n < JOB_MAX_DATA_KEYS, CL_ERR_LIMIT, "the inputs use more than %d data keys",
                   JOB_MAX_DATA_KEYS);
    cl_buf *k = &st->keys.key[st->keys.n];
    CL_GUARD_GOTO(input_attest(j, &doc));
    CL_GUARD_CTX_GOTO(
        cl_kms_decrypt_for_recipient(j->kms, &j->rcpt, doc.data, doc.len, NULL, blob.data, blob.len, NULL, k),
        "releasing the data key of s3://%s/%s", bucket, key);
    CL_ENSURE_GOTO(k->len == CL_FERNET_KEY_LEN, CL_ERR_KEY,
                   "the data key of s3://%s/%s is %zu bytes; a Fernet key is the base64 of a 32-byte key "
                   "(GenerateDataKey KeySpec AES_256)",
                   bucket, key, k->len);
    memcpy(st->keys.blob_sha[st->keys.n], sha, 32);
    st->keys.n++;
    *out = k;
out:
    j->key_release_ms += job_now_ms() - t0;
    cl_buf_free(&blob);
    cl_buf_free(&doc);
    return rc;
}

/* Opens an object in place: plain stays as it is; a token or an envelope becomes its plaintext. */
static CL_MUST_USE cl_status input_open(input_state *st, const char *bucket, const char *key, cl_buf *obj)
{
    cl_status rc = CL_OK;
    cl_buf pt;
    cl_buf_init_secret(&pt, JOB_MAX_OBJECT);
    cl_key_provider *kp = NULL;
    cl_reader r = cl_reader_make(obj->data, obj->len);
    if (cl_reader_starts_with_str(&r, "gAAAAA")) {
        const cl_buf *k = NULL;
        cl_buf_rstrip(obj, "\r\n "); /* a token saved to a file with a newline */
        CL_GUARD_GOTO(input_fernet_key(st, bucket, key, &k));
        CL_ENSURE_GOTO(k != NULL, CL_ERR_INTERNAL, "s3://%s/%s: no data key was released for it", bucket, key);
        rc = cl_fernet_decrypt(k->data, (const char *)obj->data, obj->len, (uint64_t)time(NULL), CL_FERNET_NO_TTL, &pt);
        if (rc == CL_ERR_AUTH)
            CL_FAIL_GOTO(CL_ERR_AUTH,
                         "s3://%s/%s: the Fernet token's HMAC does not match: the object was altered, or was "
                         "encrypted under another data key than the one given",
                         bucket, key);
        CL_GUARD_CTX_GOTO(rc, "s3://%s/%s", bucket, key);
    } else if (cl_reader_starts_with(&r, CL_ENVELOPE_MAGIC, CL_ENVELOPE_MAGIC_LEN)) {
        int64_t t0 = job_now_ms();
        rc = job_recipient_provider(st->j, NULL, &kp);
        if (rc == CL_OK) rc = cl_envelope_unseal_mem(kp, NULL, obj->data, obj->len, &pt);
        st->j->key_release_ms += job_now_ms() - t0;
        CL_GUARD_CTX_GOTO(rc, "s3://%s/%s", bucket, key);
    } else {
        goto out; /* as it is */
    }
    cl_buf_reset(obj);
    CL_GUARD_GOTO(cl_buf_append(obj, pt.data, pt.len));
out:
    cl_key_provider_destroy(kp);
    cl_buf_free(&pt);
    return rc;
}

/* npy's header is a Python dict literal; dtype object is "'descr': '|O'" (numpy.lib.format). */
static bool input_npy_is_object(const cl_buf *b)
{
    cl_reader r = cl_reader_make(b->data, b->len < 4096 ? b->len : 4096);
    cl_reader before;
    bool found = false;
    cl_reader_until(&r, '\n', &before, &found);
    const uint8_t *p = NULL;
    size_t n = 0;
    cl_reader_rest(&before, &p, &n);
    for (size_t i = 0; i + 3 <= n; i++)
        if (p[i] == '|' && p[i + 1] == 'O' && p[i + 2] == '\'') return true;
    return false;
}

/* What the plaintext is: npy, CSV, or a pickle (refused). */
static CL_MUST_USE cl_status input_classify(const char *bucket, const char *key, const cl_buf *b, job_format *f)
{
    cl_reader r = cl_reader_make(b->data, b->len);
    cl_reader head = r;
    uint8_t b0 = 0, b1 = 0;
    if (cl_reader_u8(&head, &b0) != CL_OK || cl_reader_u8(&head, &b1) != CL_OK) b0 = b1 = 0;
    /* pickle protocols 2 to 5 begin with PROTO (0x80) and the protocol number (PEP 307, PEP 574). */
    if (input_has_suffix(key, ".pkl") || input_has_suffix(key, ".pickle") || (b0 == 0x80 && b1 >= 2 && b1 <= 5))
        CL_FAIL(CL_ERR_UNSUPPORTED, "s3://%s/%s: " INPUT_PICKLE_REFUSED, bucket, key);
    if (cl_reader_starts_with_str(&r, INPUT_NPY_MAGIC)) {
        if (input_npy_is_object(b))
            CL_FAIL(CL_ERR_UNSUPPORTED, "s3://%s/%s: an .npy of dtype object holds " INPUT_PICKLE_REFUSED, bucket, key);
        *f = JOB_FORMAT_NPY;
        return CL_OK;
    }
    *f = JOB_FORMAT_CSV;
    return CL_OK;
}

/* Appends one CSV object to the table: the first gives the header, the others must repeat it. */
static CL_MUST_USE cl_status input_join_csv(const char *bucket, const char *key, const cl_buf *b, cl_buf *table,
                                            size_t *header_len)
{
    cl_reader r = cl_reader_make(b->data, b->len);
    cl_reader head;
    bool nl = false;
    cl_reader_until(&r, '\n', &head, &nl);
    const uint8_t *hp = NULL, *rest = NULL;
    size_t hn = 0, rn = 0;
    cl_reader_rest(&head, &hp, &hn);
    if (table->len == 0) {
        CL_GUARD(cl_buf_append(table, b->data, b->len));
        *header_len = hn;
    } else {
        CL_ENSURE(hn == *header_len && memcmp(hp, table->data, hn) == 0, CL_ERR_FORMAT,
                  "s3://%s/%s: its header row differs from the first object's: the CSV objects of a job must "
                  "have the same columns",
                  bucket, key);
        (void)cl_buf_chomp(table, '\n'); /* the rows that follow start on a line of their own */
        CL_GUARD(cl_buf_append(table, "\n", 1));
        if (nl) CL_GUARD(cl_reader_skip(&r, 1));
        cl_reader_rest(&r, &rest, &rn);
        if (rn > 0) CL_GUARD(cl_buf_append(table, rest, rn));
    }
    return CL_OK;
}

static void input_state_free(input_state *st)
{
    for (size_t i = 0; i < st->n_objs; i++) free(st->objs[i].key);
    free(st->objs);
    for (size_t i = 0; i < JOB_MAX_DATA_KEYS; i++) cl_buf_free(&st->keys.key[i]);
}

cl_status job_inputs_load(job *j, cl_buf *table, job_format *format, char *what, size_t what_len)
{
    cl_status rc = CL_OK;
    input_state st = {.j = j};
    cl_buf obj;
    cl_buf_init_secret(&obj, JOB_MAX_OBJECT);
    size_t header_len = 0, n_data = 0;
    bool have = false;
    for (size_t i = 0; i < JOB_MAX_DATA_KEYS; i++) cl_buf_init_secret(&st.keys.key[i], CL_RECIPIENT_MAX_PLAINTEXT);
    st.objs = calloc((size_t)JOB_MAX_OBJECTS * 2, sizeof(*st.objs));
    CL_ENSURE_GOTO(st.objs != NULL, CL_ERR_NOMEM, "out of memory listing the inputs");
    int64_t t0 = job_now_ms();
    for (size_t ci = 0; ci < j->doc.n_channels; ci++) CL_GUARD_GOTO(input_list(&st, ci, &st.objs, &st.n_objs));
    j->transfer_ms += job_now_ms() - t0;
    /* The bound: what the enclave can hold. The ciphertext, the plaintext and the parsed table
     * are each about the size of the inputs, and training needs its own. */
    uint64_t budget = (j->doc.memory_mib << 20) / JOB_MEMORY_SHARE;
    for (size_t i = 0; i < st.n_objs; i++) {
        const input_object *o = &st.objs[i];
        if (input_has_suffix(o->key, ".key") && j->doc.encrypted_data_key == NULL) {
            char base[CL_S3_MAX_KEY + 1];
            (void)snprintf(base, sizeof(base), "%.*s", (int)(strlen(o->key) - 4), o->key);
            if (input_is_listed(&st, o->channel, base)) continue; /* a token's data key, not data */
        }
        n_data++;
        CL_ENSURE_GOTO(n_data <= JOB_MAX_OBJECTS, CL_ERR_LIMIT, "the channels hold more than %d data objects",
                       JOB_MAX_OBJECTS);
        st.total += o->size;
    }
    CL_ENSURE_GOTO(n_data > 0, CL_ERR_NOT_FOUND, "no data objects under the channels' S3Uri (s3://%s/%s...)",
                   j->doc.channels[0].bucket, j->doc.channels[0].prefix);
    CL_ENSURE_GOTO(st.total <= budget && st.total <= JOB_MAX_OBJECT, CL_ERR_LIMIT,
                   "the inputs are %llu bytes, over the %llu an enclave of %llu MiB trains on (1/%d of its memory, at "
                   "most %zu MiB): give the job more memory (ResourceConfig)",
                   (unsigned long long)st.total, (unsigned long long)budget, (unsigned long long)j->doc.memory_mib,
                   JOB_MEMORY_SHARE, JOB_MAX_OBJECT >> 20);
    for (size_t i = 0; i < st.n_objs; i++) {
        const input_object *o = &st.objs[i];
        const char *bucket = j->doc.channels[o->channel].bucket;
        if (input_has_suffix(o->key, ".key") && j->doc.encrypted_data_key == NULL) {
            char base[CL_S3_MAX_KEY + 1];
            (void)snprintf(base, sizeof(base), "%.*s", (int)(strlen(o->key) - 4), o->key);
            if (input_is_listed(&st, o->channel, base)) continue;
        }
        job_format f;
        cl_buf_reset(&obj);
        int64_t tt = job_now_ms();
        CL_GUARD_CTX_GOTO(cl_s3_get_object(j->s3, bucket, o->key, NULL, JOB_MAX_OBJECT, &obj, NULL),
                          "reading s3://%s/%s", bucket, o->key);
        j->transfer_ms += job_now_ms() - tt;
        CL_GUARD_GOTO(input_open(&st, bucket, o->key, &obj));
        CL_GUARD_GOTO(input_classify(bucket, o->key, &obj, &f));
        if (!have) {
            *format = f;
            (void)snprintf(what, what_len, "s3://%s/%s", bucket, o->key);
            have = true;
        } else {
            CL_ENSURE_GOTO(f == JOB_FORMAT_CSV && *format == JOB_FORMAT_CSV, CL_ERR_FORMAT,
                           "s3://%s/%s: a job reads one .npy, or CSV objects (joined), not several .npy or both",
                           bucket, o->key);
        }
        if (f == JOB_FORMAT_NPY) {
            CL_GUARD_GOTO(cl_buf_append(table, obj.data, obj.len));
        } else {
            CL_GUARD_GOTO(input_join_csv(bucket, o->key, &obj, table, &header_len));
        }
    }
    if (n_data > 1) (void)snprintf(what, what_len, "the %zu objects of the channels", n_data);
out:
    cl_buf_free(&obj);
    input_state_free(&st);
    return rc;
}
