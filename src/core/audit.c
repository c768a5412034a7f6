/* SPDX-License-Identifier: Apache-2.0 */
#include "cloister/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloister/buf.h"
#include "cloister/crypto.h"
#include "cloister/log.h"
#include "cloister/mem.h"

#define CL_AUDIT_SUFFIX_LEN (9 + CL_AUDIT_HASH_HEX + 2) /* ,"hash":"<hex>"} */
#define CL_AUDIT_MAX_LINE ((size_t)1 << 20)

struct cl_audit {
    int fd;
    pthread_mutex_t mu;
    char prev[CL_AUDIT_HASH_HEX + 1];
};

static void cl_audit_hex(const uint8_t *d, char out[CL_AUDIT_HASH_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[CL_AUDIT_HASH_HEX] = '\0';
}

/* Checks one line (without its newline) against the expected previous hash;
 * writes its own hash into out. */
static cl_status cl_audit_check_line(const char *line, size_t len, const char *prev, size_t lineno,
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
static cl_status cl_audit_walk(const char *path, size_t *lines, char last[CL_AUDIT_HASH_HEX + 1], bool for_append,
                               long *torn)
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
    cl_audit *a = calloc(1, sizeof(*a));
    CL_ENSURE(a != NULL, CL_ERR_NOMEM, "out of memory for the audit log");
    size_t lines;
    /* Refuse to extend a chain that is already broken: the break would be
     * hidden behind new, valid lines. */
    long torn;
    cl_status rc = cl_audit_walk(path, &lines, a->prev, true, &torn);
    if (rc != CL_OK) {
        free(a);
        return cl_error_wrap("opening audit log %s", path);
    }
    if (torn >= 0) {
        CL_LOG_WARN("audit log %s: cutting off an incomplete last line at byte %ld (a write interrupted by a crash)",
                    path, torn);
        if (truncate(path, torn) != 0) {
            free(a);
            CL_FAIL_ERRNO(CL_ERR_IO, "cannot cut the incomplete last line off %s", path);
        }
    }
    a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (a->fd < 0) {
        free(a);
        CL_FAIL_ERRNO(CL_ERR_IO, "cannot open audit log %s", path);
    }
    pthread_mutex_init(&a->mu, NULL);
    *out = a;
    return CL_OK;
}

cl_status cl_audit_append(cl_audit *a, const cl_audit_event *ev)
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
    if (ev->attested_pcr0 != NULL) {
        json_t *rcp = json_object();
        CL_ENSURE_GOTO(rcp != NULL, CL_ERR_NOMEM, "out of memory for an audit line");
        json_object_set_new(rcp, "module_id", json_string(ev->attested_module_id ? ev->attested_module_id : ""));
        json_object_set_new(rcp, "pcr0", json_string(ev->attested_pcr0));
        json_object_set_new(j, "recipient", rcp);
    }
    pthread_mutex_lock(&a->mu);
    locked = true;
    json_object_set_new(j, "prev", json_string(a->prev));
    body = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    CL_ENSURE_GOTO(body != NULL, CL_ERR_NOMEM, "cannot serialise an audit line");
    size_t blen = strlen(body);
    uint8_t d[CL_SHA256_LEN];
    char h[CL_AUDIT_HASH_HEX + 1];
    CL_GUARD_GOTO(cl_sha256(body, blen, d));
    cl_audit_hex(d, h);
    CL_GUARD_GOTO(cl_buf_append(&line, body, blen - 1));
    CL_GUARD_GOTO(cl_buf_printf(&line, ",\"hash\":\"%s\"}\n", h));
    /* One write per line with O_APPEND: lines never interleave. */
    size_t off = 0;
    while (off < line.len) {
        ssize_t w = write(a->fd, line.data + off, line.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot write the audit log");
        off += (size_t)w;
    }
    memcpy(a->prev, h, sizeof(h));
out:
    if (locked) pthread_mutex_unlock(&a->mu);
    free(body);
    json_decref(keys);
    json_decref(j);
    cl_buf_free(&line);
    return rc;
}

void cl_audit_close(cl_audit *a)
{
    if (a == NULL) return;
    close(a->fd);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
