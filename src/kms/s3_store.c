/* SPDX-License-Identifier: Apache-2.0 */
/* S3's files on disk (s3_store.h). */
#include "s3_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloister/crypto.h"
#include "cloister/log.h"

cl_status kms_s3_path(const kms_ctx *ctx, const char *bucket, const char *rel, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/s3%s%s%s%s", ctx->cfg->data_dir, bucket != NULL ? "/" : "",
                     bucket != NULL ? bucket : "", rel != NULL ? "/" : "", rel != NULL ? rel : "");
    CL_ENSURE(n > 0 && (size_t)n < cap, CL_ERR_LIMIT, "path under %s/s3 is too long", ctx->cfg->data_dir);
    return CL_OK;
}

cl_status kms_s3_object_path(const kms_ctx *ctx, const char *bucket, const char *key, char *out, size_t cap)
{
    uint8_t d[CL_SHA256_LEN];
    char hex[2 * CL_SHA256_LEN + 1], rel[2 * CL_SHA256_LEN + 8];
    CL_GUARD(cl_sha256(key, strlen(key), d));
    (void)snprintf(rel, sizeof(rel), "o/%s", cl_hex_encode(d, sizeof(d), hex, sizeof(hex)));
    return kms_s3_path(ctx, bucket, rel, out, cap);
}

cl_status kms_s3_write_all(int fd, const void *p, size_t n, const char *what)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot write %s", what);
        b += w;
        n -= (size_t)w;
    }
    return CL_OK;
}

cl_status kms_s3_read_at(int fd, uint64_t offset, void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = pread(fd, b, n, (off_t)offset);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot read an object file");
        CL_ENSURE(r > 0, CL_ERR_FORMAT, "an object file is shorter than its header says");
        b += r;
        n -= (size_t)r;
        offset += (uint64_t)r;
    }
    return CL_OK;
}

cl_status kms_s3_copy_range(int src, uint64_t offset, uint64_t n, int dst)
{
    loff_t off = (loff_t)offset;
    while (n > 0) {
        ssize_t c = copy_file_range(src, &off, dst, NULL, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : (size_t)n, 0);
        if (c < 0 && errno == EINTR) continue;
        if (c < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
            /* Another file system or an old kernel: through a buffer. */
            uint8_t buf[1 << 16];
            size_t k = n < sizeof(buf) ? (size_t)n : sizeof(buf);
            CL_GUARD(kms_s3_read_at(src, (uint64_t)off, buf, k));
            CL_GUARD(kms_s3_write_all(dst, buf, k, "an object file"));
            off += (loff_t)k;
            n -= k;
            continue;
        }
        if (c < 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot copy object data");
        CL_ENSURE(c > 0, CL_ERR_FORMAT, "a part file is shorter than its record says");
        n -= (uint64_t)c;
    }
    return CL_OK;
}

cl_status kms_s3_file_put(const char *path, const void *data, size_t n)
{
    cl_outfile o;
    CL_GUARD(cl_outfile_open(&o, path, true, 0600));
    cl_status rc = kms_s3_write_all(o.fd, data, n, path);
    if (rc == CL_OK) rc = cl_outfile_commit(&o);
    cl_outfile_abort(&o);
    return rc;
}

cl_status kms_s3_file_get(const char *path, size_t max, cl_buf *out)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) CL_FAIL(CL_ERR_NOT_FOUND, "%s does not exist", path);
        CL_FAIL_ERRNO(CL_ERR_IO, "cannot stat %s", path);
    }
    CL_ENSURE((size_t)st.st_size <= max, CL_ERR_LIMIT, "%s is larger than %zu bytes", path, max);
    return cl_buf_read_file(out, path);
}

cl_status kms_s3_json_get(const char *path, json_t **out)
{
    cl_buf b;
    cl_buf_init(&b, 1 << 20);
    cl_status rc = kms_s3_file_get(path, 1 << 20, &b);
    if (rc == CL_OK) {
        json_error_t e;
        *out = json_loadb((const char *)b.data, b.len, 0, &e);
        if (*out == NULL) rc = CL_RAISE(CL_ERR_FORMAT, "%s is not JSON: %s", path, e.text);
    }
    cl_buf_free(&b);
    return rc;
}

cl_status kms_s3_json_put(const char *path, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    CL_ENSURE(text != NULL, CL_ERR_NOMEM, "out of memory");
    cl_status rc = kms_s3_file_put(path, text, strlen(text));
    free(text);
    return rc;
}

cl_status kms_s3_file_remove(const char *path)
{
    if (unlink(path) != 0) {
        if (errno == ENOENT) return CL_OK;
        CL_FAIL_ERRNO(CL_ERR_IO, "cannot remove %s", path);
    }
    return cl_fs_sync_parent(path);
}

static CL_MUST_USE cl_status kms_s3_mkdir(const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) CL_FAIL_ERRNO(CL_ERR_IO, "cannot create %s", path);
    return CL_OK;
}

cl_status kms_s3_bucket_load(const kms_ctx *ctx, const char *bucket, json_t **info)
{
    char path[KMS_PATH_MAX + 128];
    CL_GUARD(kms_s3_path(ctx, bucket, "bucket.json", path, sizeof(path)));
    return kms_s3_json_get(path, info);
}

cl_status kms_s3_bucket_create(const kms_ctx *ctx, const char *bucket, json_t *info)
{
    char path[KMS_PATH_MAX + 128];
    CL_GUARD(kms_s3_path(ctx, NULL, NULL, path, sizeof(path)));
    CL_GUARD(kms_s3_mkdir(path));
    CL_GUARD(kms_s3_path(ctx, bucket, NULL, path, sizeof(path)));
    /* mkdir is the atomic claim of the name: of two creators, one gets EEXIST. */
    if (mkdir(path, 0700) != 0) {
        if (errno == EEXIST) CL_FAIL(CL_ERR_EXISTS, "bucket %s exists", bucket);
        CL_FAIL_ERRNO(CL_ERR_IO, "cannot create %s", path);
    }
    CL_GUARD(cl_fs_sync_parent(path));
    CL_GUARD(kms_s3_path(ctx, bucket, "o", path, sizeof(path)));
    CL_GUARD(kms_s3_mkdir(path));
    CL_GUARD(kms_s3_path(ctx, bucket, "u", path, sizeof(path)));
    CL_GUARD(kms_s3_mkdir(path));
    CL_GUARD(kms_s3_path(ctx, bucket, "bucket.json", path, sizeof(path)));
    return kms_s3_json_put(path, info);
}

/* A directory with nothing but leftover temporary files (a write cut short) counts as empty. */
static CL_MUST_USE cl_status kms_s3_dir_clear(const char *dir, bool *empty)
{
    DIR *d = opendir(dir);
    *empty = true;
    if (d == NULL) return errno == ENOENT ? CL_OK : CL_RAISE_ERRNO(CL_ERR_IO, "cannot open %s", dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0) continue;
        *empty = false;
    }
    closedir(d);
    return CL_OK;
}

static void kms_s3_dir_remove_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    char path[KMS_PATH_MAX + 512];
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0) {
            (void)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            (void)unlink(path);
        }
    }
    closedir(d);
}

cl_status kms_s3_bucket_remove(const kms_ctx *ctx, const char *bucket)
{
    char o[KMS_PATH_MAX + 128], u[KMS_PATH_MAX + 128], path[KMS_PATH_MAX + 128];
    bool empty_o, empty_u;
    CL_GUARD(kms_s3_path(ctx, bucket, "o", o, sizeof(o)));
    CL_GUARD(kms_s3_path(ctx, bucket, "u", u, sizeof(u)));
    CL_GUARD(kms_s3_dir_clear(o, &empty_o));
    CL_GUARD(kms_s3_dir_clear(u, &empty_u));
    CL_ENSURE(empty_o && empty_u, CL_ERR_STATE, "The bucket you tried to delete is not empty");
    kms_s3_dir_remove_tmp(o);
    /* The objects' directory first: a PUT racing with the delete makes it fail (not empty), and
     * the bucket is left as it was. */
    if (rmdir(o) != 0 && errno != ENOENT) {
        if (errno == ENOTEMPTY || errno == EEXIST) CL_FAIL(CL_ERR_STATE, "The bucket you tried to delete is not empty");
        CL_FAIL_ERRNO(CL_ERR_IO, "cannot remove %s", o);
    }
    if (rmdir(u) != 0 && errno != ENOENT) CL_FAIL_ERRNO(CL_ERR_IO, "cannot remove %s", u);
    const char *files[] = {"policy.json", "encryption.json", "bucket.json"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        CL_GUARD(kms_s3_path(ctx, bucket, files[i], path, sizeof(path)));
        if (unlink(path) != 0 && errno != ENOENT) CL_FAIL_ERRNO(CL_ERR_IO, "cannot remove %s", path);
    }
    CL_GUARD(kms_s3_path(ctx, bucket, NULL, path, sizeof(path)));
    kms_s3_dir_remove_tmp(path);
    if (rmdir(path) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot remove %s", path);
    return cl_fs_sync_parent(path);
}

static int kms_s3_cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

cl_status kms_s3_bucket_names(const kms_ctx *ctx, json_t **names)
{
    char dir[KMS_PATH_MAX + 128], path[KMS_PATH_MAX + 256];
    CL_GUARD(kms_s3_path(ctx, NULL, NULL, dir, sizeof(dir)));
    *names = json_array();
    CL_ENSURE(*names != NULL, CL_ERR_NOMEM, "out of memory");
    DIR *d = opendir(dir);
    if (d == NULL) return CL_OK;
    char **list = NULL;
    size_t n = 0, cap = 0;
    cl_status rc = CL_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        (void)snprintf(path, sizeof(path), "%s/%s/bucket.json", dir, e->d_name);
        if (access(path, F_OK) != 0) continue; /* being created or deleted */
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nl = realloc(list, cap * sizeof(*list));
            CL_ENSURE_GOTO(nl != NULL, CL_ERR_NOMEM, "out of memory");
            list = nl;
        }
        list[n] = strdup(e->d_name);
        CL_ENSURE_GOTO(list[n] != NULL, CL_ERR_NOMEM, "out of memory");
        n++;
    }
    if (n > 0) qsort(list, n, sizeof(*list), kms_s3_cmp_names);
    for (size_t i = 0; i < n; i++)
        CL_ENSURE_GOTO(json_array_append_new(*names, json_string(list[i])) == 0, CL_ERR_NOMEM, "out of memory");
out:
    closedir(d);
    for (size_t i = 0; i < n; i++) free(list[i]);
    free(list);
    return rc;
}

void kms_s3_obj_close(kms_s3_obj *o)
{
    if (o->fd >= 0) close(o->fd);
    o->fd = -1;
    json_decref(o->hdr);
    o->hdr = NULL;
}

/* Reads the header of an open object file (untrusted in the sense that a crash or an operator
 * may have left anything there: bounded and checked). */
static CL_MUST_USE cl_status kms_s3_obj_header(kms_s3_obj *o, const char *path)
{
    struct stat st;
    uint8_t head[12];
    if (fstat(o->fd, &st) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot stat %s", path);
    CL_ENSURE((uint64_t)st.st_size >= sizeof(head), CL_ERR_FORMAT, "%s is not an object file (too short)", path);
    CL_GUARD(kms_s3_read_at(o->fd, 0, head, sizeof(head)));
    cl_reader r = cl_reader_make(head, sizeof(head));
    uint32_t n;
    CL_ENSURE(cl_reader_expect(&r, KMS_S3_OBJ_MAGIC, 8, "magic") == CL_OK, CL_ERR_FORMAT,
              "%s is not an object file (no CLS3OBJ1)", path);
    CL_GUARD(cl_reader_u32be(&r, &n));
    CL_ENSURE(n > 0 && n <= KMS_S3_HEADER_MAX && 12 + (uint64_t)n <= (uint64_t)st.st_size, CL_ERR_FORMAT,
              "%s has a header of %u bytes, out of range", path, n);
    char *text = malloc(n);
    CL_ENSURE(text != NULL, CL_ERR_NOMEM, "out of memory");
    cl_status rc = kms_s3_read_at(o->fd, 12, text, n);
    if (rc == CL_OK) {
        json_error_t e;
        o->hdr = json_loadb(text, n, 0, &e);
        if (o->hdr == NULL || !json_is_object(o->hdr) || !json_is_string(json_object_get(o->hdr, "key")))
            rc = CL_RAISE(CL_ERR_FORMAT, "%s has a header that is not an object record", path);
    }
    free(text);
    o->data_off = 12 + (uint64_t)n;
    o->size = (uint64_t)st.st_size - o->data_off;
    return rc;
}

cl_status kms_s3_obj_open(const char *path, kms_s3_obj *o)
{
    o->fd = open(path, O_RDONLY | O_CLOEXEC);
    o->hdr = NULL;
    if (o->fd < 0) {
        if (errno == ENOENT) CL_FAIL(CL_ERR_NOT_FOUND, "The specified key does not exist.");
        CL_FAIL_ERRNO(CL_ERR_IO, "cannot open %s", path);
    }
    cl_status rc = kms_s3_obj_header(o, path);
    if (rc != CL_OK) kms_s3_obj_close(o);
    return rc;
}

cl_status kms_s3_obj_create(const char *path, json_t *hdr, cl_outfile *o)
{
    char *text = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
    CL_ENSURE(text != NULL, CL_ERR_NOMEM, "out of memory");
    size_t n = strlen(text);
    cl_status rc = CL_OK;
    o->fd = -1;
    o->tmp = NULL;
    o->path = NULL;
    CL_ENSURE_GOTO(n <= KMS_S3_HEADER_MAX, CL_ERR_LIMIT, "the object's metadata is larger than %d bytes",
                   KMS_S3_HEADER_MAX);
    CL_GUARD_GOTO(cl_outfile_open(o, path, true, 0600));
    uint8_t head[12];
    static const char magic[] = KMS_S3_OBJ_MAGIC;
    for (size_t i = 0; i < 8; i++) head[i] = (uint8_t)magic[i];
    head[8] = (uint8_t)(n >> 24);
    head[9] = (uint8_t)(n >> 16);
    head[10] = (uint8_t)(n >> 8);
    head[11] = (uint8_t)n;
    CL_GUARD_GOTO(kms_s3_write_all(o->fd, head, sizeof(head), path));
    CL_GUARD_GOTO(kms_s3_write_all(o->fd, text, n, path));
out:
    if (rc != CL_OK && o->tmp != NULL) cl_outfile_abort(o);
    free(text);
    return rc;
}

static int kms_s3_cmp_hdr(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    return strcmp(json_string_value(json_object_get(x, "key")), json_string_value(json_object_get(y, "key")));
}

cl_status kms_s3_obj_list(const kms_ctx *ctx, const char *bucket, const char *prefix, json_t **out)
{
    char dir[KMS_PATH_MAX + 128], path[KMS_PATH_MAX + 256];
    CL_GUARD(kms_s3_path(ctx, bucket, "o", dir, sizeof(dir)));
    DIR *d = opendir(dir);
    if (d == NULL) CL_FAIL_ERRNO(CL_ERR_IO, "cannot open %s", dir);
    json_t **items = NULL;
    size_t n = 0, cap = 0;
    cl_status rc = CL_OK;
    struct dirent *e;
    size_t plen = prefix != NULL ? strlen(prefix) : 0;
    while ((e = readdir(d)) != NULL) {
        if (strlen(e->d_name) != (size_t)2 * CL_SHA256_LEN) continue; /* ".", "..", temporary files */
        (void)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        kms_s3_obj o;
        if (kms_s3_obj_open(path, &o) != CL_OK) {
            /* Deleted since readdir, or damaged: not listed (the log says which). */
            if (cl_error_last()->code != CL_ERR_NOT_FOUND)
                CL_LOG_WARN("S3 listing skips %s: %s", path, cl_error_message());
            cl_error_clear();
            continue;
        }
        const char *key = json_string_value(json_object_get(o.hdr, "key"));
        if (plen == 0 || strncmp(key, prefix, plen) == 0) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                json_t **ni = realloc(items, cap * sizeof(json_t *));
                if (ni == NULL) {
                    kms_s3_obj_close(&o);
                    CL_FAIL_GOTO(CL_ERR_NOMEM, "out of memory listing %s", bucket);
                }
                items = ni;
            }
            (void)json_object_set_new(o.hdr, "stored_size", json_integer((json_int_t)o.size));
            items[n++] = json_incref(o.hdr);
        }
        kms_s3_obj_close(&o);
    }
    if (n > 0) qsort(items, n, sizeof(json_t *), kms_s3_cmp_hdr);
    *out = json_array();
    CL_ENSURE_GOTO(*out != NULL, CL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        (void)json_array_append(*out, items[i]);
    }
out:
    closedir(d);
    for (size_t i = 0; i < n; i++) json_decref(items[i]);
    free(items);
    return rc;
}
