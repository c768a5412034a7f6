/* SPDX-License-Identifier: Apache-2.0 */
#include "cloister/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloister/buf.h"
#include "cloister/crypto.h"
#include "cloister/log.h"
#include "cloister/mem.h"

#define CL_AUDIT_SUFFIX_LEN (9 + CL_AUDIT_HASH_HEX + 2) /* ,"hash":"<hex>"} */
#define CL_AUDIT_MAX_LINE ((size_t)1 << 20)

/*
 * Two locks, always taken in the order sync_mu, mu: mu orders the lines (and guards the chain
 * and the file's length), sync_mu the fdatasync calls, so that one call covers every line
 * written before it started (group commit) and the writers do not wait behind the disk.
 */
struct cl_audit {
    int fd;
    char *path;
    pthread_mutex_t mu;
    char prev[CL_AUDIT_HASH_HEX + 1];
    uint64_t end; /* bytes of complete lines in the file */
    bool failed;  /* a write or sync failed and could not be undone: no more lines */
    char failure[160];
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    bool syncing;
    uint64_t synced; /* bytes known to be on disk */
};

static void cl_audit_hex(const uint8_t *d, char out[CL_AUDIT_HASH_HEX + 1])
{
    (void)cl_hex_encode(d, CL_AUDIT_HASH_HEX / 2, out, CL_AUDIT_HASH_HEX + 1);
}

/* Checks one line (without its newline) against the expected previous hash;
 * writes its own hash into out. */
static CL_MUST_USE cl_status cl_audit_check_line(const char *line, size_t len, const char *prev, size_t lineno,
                                                 char out[CL_AUDIT_HASH_HEX + 1])
{
    CL_ENSURE(len > CL_AUDIT_SUFFIX_LEN + 1, CL_ERR_AUTH, "audit line %zu is too short", lineno);
    const char *suf = line + len - CL_AUDIT_SUFFIX_LEN;
    CL_ENSURE(memcmp(suf, ",\"hash\":\"", 9) == 0 && memcmp(suf + 9 + CL_AUDIT_HASH_HEX, "\"}", 2) == 0, CL_ERR_AUTH,
              "audit line %zu does not end with its hash", lineno);
    cl_buf body;
    cl_buf_init(&body, CL_AUDIT_MAX_LINE);
    cl_status rc = CL_OK;
    json_t *j = NULL;
    uint8_t d[CL_SHA256_LEN];
    char h[CL_AUDIT_HASH_HEX + 1];
    CL_GUARD_GOTO(cl_buf_append(&body, line, len - CL_AUDIT_SUFFIX_LEN));
    CL_GUARD_GOTO(cl_buf_append_u8(&body, '}'));
    CL_GUARD_GOTO(cl_sha256(body.data, body.len, d));
    cl_audit_hex(d, h);
    CL_ENSURE_GOTO(cl_ct_equal(h, suf + 9, CL_AUDIT_HASH_HEX), CL_ERR_AUTH,
                   "audit line %zu was altered (its hash does not match its content)", lineno);
    j = json_loadb((const char *)body.data, body.len, JSON_REJECT_DUPLICATES, NULL);
    const char *p = json_string_value(json_object_get(j, "prev"));
    CL_ENSURE_GOTO(p != NULL, CL_ERR_AUTH, "audit line %zu has no link to the previous line", lineno);
    CL_ENSURE_GOTO(strcmp(p, prev) == 0, CL_ERR_AUTH,
                   "audit chain broken at line %zu: a line before it was removed, reordered or altered", lineno);
    memcpy(out, h, sizeof(h));
out:
    json_decref(j);
    cl_buf_free(&body);
    return rc;
}

/* Walks the file, verifying, and returns the last hash. When opening for
 * append (for_append), a last line without its newline is what a crash in
 * the middle of a write leaves: *torn is set to the offset where it starts,
 * so the caller can cut it off; the lines before it are verified as usual. */
static CL_MUST_USE cl_status cl_audit_walk(const char *path, size_t *lines, char last[CL_AUDIT_HASH_HEX + 1],
                                           bool for_append, long *torn)
{
    bool missing_ok = for_append;
    if (torn != NULL) *torn = -1;
    memset(last, '0', CL_AUDIT_HASH_HEX);
    last[CL_AUDIT_HASH_HEX] = '\0';
    *lines = 0;
    FILE *f = fopen(path, "re");
    if (f == NULL && errno == ENOENT && missing_ok) return CL_OK;
    if (f == NULL) CL_FAIL_ERRNO(CL_ERR_IO, "cannot open audit log %s", path);
    cl_status rc = CL_OK;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long start = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        CL_ENSURE_GOTO((size_t)n <= CL_AUDIT_MAX_LINE, CL_ERR_LIMIT, "audit line %zu is too long", *lines + 1);
        if (line[n - 1] != '\n' && for_append && torn != NULL) {
            *torn = start;
            break;
        }
        CL_ENSURE_GOTO(line[n - 1] == '\n', CL_ERR_AUTH, "audit line %zu is incomplete", *lines + 1);
        start += (long)n;
        char h[CL_AUDIT_HASH_HEX + 1];
        CL_GUARD_GOTO(cl_audit_check_line(line, (size_t)n - 1, last, *lines + 1, h));
        memcpy(last, h, sizeof(h));
        (*lines)++;
    }
    CL_ENSURE_GOTO(!ferror(f), CL_ERR_IO, "cannot read audit log %s", path);
out:
    free(line);
    fclose(f);
    return rc;
}

cl_status cl_audit_verify(const char *path, size_t *lines, char last_hash[CL_AUDIT_HASH_HEX + 1])
{
    return cl_audit_walk(path, lines, last_hash, false, NULL);
}

cl_status cl_audit_open(const char *path, cl_audit **out)
{
    cl_status rc = CL_OK;
    cl_audit *a = calloc(1, sizeof(*a));
    CL_ENSURE(a != NULL, CL_ERR_NOMEM, "out of memory for the audit log");
    a->fd = -1;
    a->path = strdup(path);
    CL_ENSURE_GOTO(a->path != NULL, CL_ERR_NOMEM, "out of memory for the audit log");
    a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (a->fd < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot open audit log %s", path);
    /* One writer per log: two would each extend the chain from their own last line, and the
     * file would no longer verify. flock, not fcntl: it belongs to this open file, so reading
     * the log through another descriptor (the walk below) does not release it. */
    if (flock(a->fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            CL_FAIL_GOTO(CL_ERR_STATE,
                         "audit log %s is in use by another process (a second cloister-kms with the same audit "
                         "log?): stop it, or give this one its own data directory",
                         path);
        CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot lock audit log %s", path);
    }
    size_t lines;
    /* Refuse to extend a chain that is already broken: the break would be
     * hidden behind new, valid lines. */
    long torn;
    if (cl_audit_walk(path, &lines, a->prev, true, &torn) != CL_OK) {
        rc = cl_error_wrap("opening audit log %s", path);
        goto out;
    }
    if (torn >= 0) {
        CL_LOG_WARN("audit log %s: cutting off an incomplete last line at byte %ld (a write interrupted by a crash)",
                    path, torn);
        if (ftruncate(a->fd, torn) != 0)
            CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot cut the incomplete last line off %s", path);
    }
    struct stat st;
    if (fstat(a->fd, &st) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot stat audit log %s", path);
    a->end = (uint64_t)st.st_size;
    a->synced = 0; /* the first sync also covers what an earlier run may have left unsynced */
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->sync_mu, NULL);
    pthread_cond_init(&a->sync_cv, NULL);
    *out = a;
    a = NULL;
out:
    if (a != NULL) {
        if (a->fd >= 0) close(a->fd);
        free(a->path);
        free(a);
    }
    return rc;
}

/* Marks the log unusable (called with mu held). */
static void cl_audit_fail_locked(cl_audit *a, const char *what)
{
    if (a->failed) return;
    a->failed = true;
    (void)snprintf(a->failure, sizeof(a->failure), "%s", what);
    CL_LOG_ERROR("audit log %s: %s; no request is answered until cloister-kms is restarted with a writable log",
                 a->path, what);
}

cl_status cl_audit_write(cl_audit *a, const cl_audit_event *ev, uint64_t *end)
{
    cl_status rc = CL_OK;
    char *body = NULL;
    cl_buf line;
    cl_buf_init(&line, CL_AUDIT_MAX_LINE);
    json_t *keys = json_array();
    json_t *j = json_object();
    bool locked = false;
    CL_ENSURE_GOTO(keys != NULL && j != NULL, CL_ERR_NOMEM, "out of memory for an audit line");
    /* Everything but the link to the previous line is built outside the lock. */
    for (size_t i = 0; ev->context != NULL && i < ev->context->count; i++)
        json_array_append_new(keys, json_string(ev->context->items[i].key));
    json_object_set_new(j, "time", json_integer(ev->time));
    json_object_set_new(j, "request_id", json_string(ev->request_id ? ev->request_id : ""));
    json_object_set_new(j, "principal", json_string(ev->principal ? ev->principal : ""));
    json_object_set_new(j, "operation", json_string(ev->operation ? ev->operation : ""));
    json_object_set_new(j, "key_arn", ev->key_arn ? json_string(ev->key_arn) : json_null());
    json_object_set(j, "context_keys", keys);
    json_object_set_new(j, "outcome", json_string(ev->outcome ? ev->outcome : ""));
    if (ev->resource != NULL) json_object_set_new(j, "resource", json_string(ev->resource));
    if (ev->attested_pcr0 != NULL) {
        json_t *rcp = json_object();
        CL_ENSURE_GOTO(rcp != NULL, CL_ERR_NOMEM, "out of memory for an audit line");
        json_object_set_new(rcp, "module_id", json_string(ev->attested_module_id ? ev->attested_module_id : ""));
        json_object_set_new(rcp, "pcr0", json_string(ev->attested_pcr0));
        json_object_set_new(j, "recipient", rcp);
    }
    pthread_mutex_lock(&a->mu);
    locked = true;
    CL_ENSURE_GOTO(!a->failed, CL_ERR_IO, "the audit log %s is unusable since an earlier failure (%s)", a->path,
                   a->failure);
    json_object_set_new(j, "prev", json_string(a->prev));
    body = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    CL_ENSURE_GOTO(body != NULL, CL_ERR_NOMEM, "cannot serialise an audit line");
    size_t blen = strlen(body);
    CL_ENSURE_GOTO(blen + CL_AUDIT_SUFFIX_LEN + 1 <= CL_AUDIT_MAX_LINE, CL_ERR_LIMIT,
                   "the audit line of %s would be %zu bytes, over the %zu-byte limit of a line (%zu encryption "
                   "context keys)",
                   ev->operation ? ev->operation : "a request", blen + CL_AUDIT_SUFFIX_LEN + 1, CL_AUDIT_MAX_LINE,
                   ev->context != NULL ? ev->context->count : 0);
    uint8_t d[CL_SHA256_LEN];
    char h[CL_AUDIT_HASH_HEX + 1];
    CL_GUARD_GOTO(cl_sha256(body, blen, d));
    cl_audit_hex(d, h);
    CL_GUARD_GOTO(cl_buf_append(&line, body, blen - 1));
    CL_GUARD_GOTO(cl_buf_printf(&line, ",\"hash\":\"%s\"}\n", h));
    /* One write per line with O_APPEND: lines never interleave. A write can stop short (disk
     * full, RLIMIT_FSIZE: EFBIG after a partial write, SIGXFSZ ignored); the part written is
     * cut off again, so the file ends with a complete line and the chain stays whole. */
    size_t off = 0;
    while (off < line.len) {
        ssize_t w = write(a->fd, line.data + off, line.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        rc = CL_RAISE_ERRNO(CL_ERR_IO, "cannot write the audit log %s", a->path);
        if (ftruncate(a->fd, (off_t)a->end) != 0) cl_audit_fail_locked(a, "a partly written line could not be cut off");
        goto out;
    }
    a->end += line.len;
    *end = a->end;
    memcpy(a->prev, h, sizeof(h));
out:
    if (locked) pthread_mutex_unlock(&a->mu);
    free(body);
    json_decref(keys);
    json_decref(j);
    cl_buf_free(&line);
    return rc;
}

/*
 * Group commit: whoever finds no sync running starts one, covering every line written so far;
 * the others wait for it and, if their line came after its start, for the next. A failed
 * fdatasync is final: after it the kernel may have dropped the unwritten pages and a later
 * fdatasync may succeed without them, so the log refuses further lines (PostgreSQL's answer
 * to the same problem, "fsyncgate", 2018).
 */
cl_status cl_audit_sync(cl_audit *a, uint64_t end)
{
    cl_status rc = CL_OK;
    pthread_mutex_lock(&a->sync_mu);
    while (a->synced < end) {
        pthread_mutex_lock(&a->mu);
        bool failed = a->failed;
        uint64_t target = a->end;
        pthread_mutex_unlock(&a->mu);
        if (failed) {
            rc = CL_RAISE(CL_ERR_IO, "the audit log %s is unusable since an earlier failure (%s)", a->path, a->failure);
            break;
        }
        if (a->syncing) {
            pthread_cond_wait(&a->sync_cv, &a->sync_mu);
            continue;
        }
        a->syncing = true;
        pthread_mutex_unlock(&a->sync_mu);
        int r;
        do {
            r = fdatasync(a->fd);
        } while (r != 0 && errno == EINTR);
        int err = errno;
        pthread_mutex_lock(&a->sync_mu);
        a->syncing = false;
        if (r == 0) {
            if (target > a->synced) a->synced = target;
        } else {
            char what[96];
            (void)snprintf(what, sizeof(what), "fdatasync failed: %s", strerror(err));
            pthread_mutex_lock(&a->mu);
            cl_audit_fail_locked(a, what);
            pthread_mutex_unlock(&a->mu);
        }
        pthread_cond_broadcast(&a->sync_cv);
    }
    pthread_mutex_unlock(&a->sync_mu);
    return rc;
}

cl_status cl_audit_append(cl_audit *a, const cl_audit_event *ev)
{
    uint64_t end = 0;
    CL_GUARD(cl_audit_write(a, ev, &end));
    return cl_audit_sync(a, end);
}

void cl_audit_close(cl_audit *a)
{
    if (a == NULL) return;
    close(a->fd); /* releases the lock */
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->sync_mu);
    pthread_cond_destroy(&a->sync_cv);
    free(a->path);
    free(a);
}
