/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scale-out store: Redis, through hiredis over a socket the program connects (inside an
 * enclave: cl_vsock_connect to the port the launcher proxies to redis-server; hiredis gets the
 * descriptor with redisConnectFd). Keys, all under the configured prefix:
 *   PREFIX r:ID   the sealed record (record.c)
 *   PREFIX ids    a sorted set of the ids, all with score 0, so ZRANGEBYLEX lists them in byte
 *                 order (Redis documentation, "ZRANGEBYLEX": members with equal scores sort by
 *                 memcmp)
 *   PREFIX m:NAME the store's metadata (the data key's KMS ciphertext)
 * A write is one MULTI/EXEC transaction. Durability is the server's: the API refuses to start
 * unless CONFIG GET says appendonly yes and appendfsync always, with which Redis writes and
 * fsyncs the append-only file before it sends the replies of the commands it ran (Redis
 * documentation, "Redis persistence": "fsync every time new commands are appended to the AOF").
 * So an acknowledged write survives kill -9 of redis-server. One connection behind a mutex;
 * after a transport error the next call reconnects.
 */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "cloister/api.h"
#include "cloister/log.h"

#define REDIS_TIMEOUT_S 10
#define REDIS_KEY_MAX 256

typedef struct api_redis {
    cl_api_store base;
    cl_api_connect_fn connect;
    void *connect_arg;
    redisContext *rc;
    pthread_mutex_t mu;
    char prefix[64];
} api_redis;

static CL_MUST_USE cl_status redis_connect(api_redis *s)
{
    if (s->rc != NULL) return CL_OK;
    int fd = -1;
    CL_GUARD_CTX(s->connect(s->connect_arg, &fd), "connecting to Redis");
    s->rc = redisConnectFd(fd);
    if (s->rc == NULL || s->rc->err != 0) {
        if (s->rc != NULL)
            redisFree(s->rc); /* closes fd */
        else
            (void)close(fd);
        s->rc = NULL;
        CL_FAIL(CL_ERR_NOMEM, "out of memory for a Redis connection");
    }
    struct timeval tv = {.tv_sec = REDIS_TIMEOUT_S, .tv_usec = 0};
    if (redisSetTimeout(s->rc, tv) != REDIS_OK) CL_LOG_WARN("Redis: cannot set the connection's timeouts");
    return CL_OK;
}

static void redis_drop(api_redis *s)
{
    if (s->rc != NULL) redisFree(s->rc);
    s->rc = NULL;
}

/* Sends n commands in one go and reads their n replies (a MULTI ... EXEC block, or one command).
 * *last receives the last reply (the caller frees it). */
static CL_MUST_USE cl_status redis_run(api_redis *s, size_t n, const int *argc, const char *const *const *argv,
                                       const size_t *const *argvlen, redisReply **last)
{
    *last = NULL;
    CL_GUARD(redis_connect(s));
    for (size_t i = 0; i < n; i++)
        if (redisAppendCommandArgv(s->rc, argc[i], CL_UNCONST(argv[i]), argvlen[i]) != REDIS_OK) {
            redis_drop(s);
            CL_FAIL(CL_ERR_NOMEM, "out of memory for a Redis command");
        }
    for (size_t i = 0; i < n; i++) {
        void *reply = NULL;
        if (redisGetReply(s->rc, &reply) != REDIS_OK || reply == NULL) {
            char why[128];
            (void)snprintf(why, sizeof(why), "%s", s->rc->errstr);
            redis_drop(s);
            if (*last != NULL) freeReplyObject(*last);
            *last = NULL;
            CL_FAIL(CL_ERR_IO, "Redis: %s (is redis-server up, and the launcher's --proxy to it?)", why);
        }
        redisReply *r = reply;
        if (r->type == REDIS_REPLY_ERROR) {
            cl_status rc = CL_RAISE(CL_ERR_REMOTE, "Redis refused a command: %.200s", r->str);
            freeReplyObject(r);
            if (*last != NULL) freeReplyObject(*last);
            *last = NULL;
            /* Read the rest so that the connection stays in step. */
            for (size_t j = i + 1; j < n; j++)
                if (redisGetReply(s->rc, &reply) == REDIS_OK && reply != NULL) freeReplyObject(reply);
            return rc;
        }
        if (*last != NULL) freeReplyObject(*last);
        *last = r;
    }
    return CL_OK;
}

/* One command, retried once on a fresh connection after a transport error. */
static CL_MUST_USE cl_status redis_cmd(api_redis *s, int argc, const char *const *argv, const size_t *argvlen,
                                       redisReply **out)
{
    cl_status rc = redis_run(s, 1, &argc, &argv, &argvlen, out);
    if (rc == CL_ERR_IO) rc = redis_run(s, 1, &argc, &argv, &argvlen, out);
    if (rc == CL_OK && *out == NULL) rc = CL_RAISE(CL_ERR_INTERNAL, "Redis: no reply");
    return rc;
}

static int redis_key(const api_redis *s, const char *kind, const char *name, char out[REDIS_KEY_MAX])
{
    return snprintf(out, REDIS_KEY_MAX, "%s%s%s", s->prefix, kind, name);
}

static CL_MUST_USE cl_status redis_get_key(api_redis *s, const char *kind, const char *name, cl_buf *out)
{
    char key[REDIS_KEY_MAX];
    int kl = redis_key(s, kind, name, key);
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, (size_t)kl};
    redisReply *r = NULL;
    (void)pthread_mutex_lock(&s->mu);
    cl_status rc = redis_cmd(s, 2, argv, lens, &r);
    (void)pthread_mutex_unlock(&s->mu);
    if (rc == CL_OK && r->type == REDIS_REPLY_NIL)
        rc = CL_RAISE(CL_ERR_NOT_FOUND, "%s is not in the store", name);
    else if (rc == CL_OK && r->type != REDIS_REPLY_STRING)
        rc = CL_RAISE(CL_ERR_REMOTE, "Redis answered GET with a reply of type %d", r->type);
    else if (rc == CL_OK)
        rc = cl_buf_append(out, r->str, r->len);
    if (r != NULL) freeReplyObject(r);
    return rc;
}

static CL_MUST_USE cl_status redis_get(cl_api_store *base, const char *id, cl_buf *out)
{
    return redis_get_key((api_redis *)base, "r:", id, out);
}

static CL_MUST_USE cl_status redis_meta_get(cl_api_store *base, const char *name, cl_buf *out)
{
    return redis_get_key((api_redis *)base, "m:", name, out);
}

/* MULTI; first; second; EXEC -> the EXEC array's two replies, or an error. */
static CL_MUST_USE cl_status redis_transaction(api_redis *s, int argc1, const char **argv1, const size_t *len1,
                                               int argc2, const char **argv2, const size_t *len2, long long out[2])
{
    static const char *const multi[] = {"MULTI"}, *const exec[] = {"EXEC"};
    static const size_t multi_len[] = {5}, exec_len[] = {4};
    const int argc[] = {1, argc1, argc2, 1};
    const char *const *argv[] = {multi, argv1, argv2, exec};
    const size_t *const lens[] = {multi_len, len1, len2, exec_len};
    redisReply *r = NULL;
    (void)pthread_mutex_lock(&s->mu);
    cl_status rc = redis_run(s, 4, argc, argv, lens, &r);
    if (rc == CL_ERR_IO) rc = redis_run(s, 4, argc, argv, lens, &r); /* idempotent: SET/ZADD, DEL/ZREM */
    (void)pthread_mutex_unlock(&s->mu);
    CL_GUARD(rc);
    bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2;
    for (size_t i = 0; ok && i < 2; i++) {
        redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_INTEGER)
            out[i] = e->integer;
        else if (e->type == REDIS_REPLY_STATUS)
            out[i] = 1;
        else
            ok = false;
    }
    freeReplyObject(r);
    CL_ENSURE(ok, CL_ERR_REMOTE, "Redis: the transaction did not run (EXEC answered otherwise)");
    return CL_OK;
}

static CL_MUST_USE cl_status redis_put(cl_api_store *base, const char *id, const uint8_t *blob, size_t n, bool *existed)
{
    api_redis *s = (api_redis *)base;
    char key[REDIS_KEY_MAX], ids[REDIS_KEY_MAX];
    int kl = redis_key(s, "r:", id, key), il = redis_key(s, "ids", "", ids);
    /* SET ... GET (Redis 6.2) answers the old value: replaced or new, in the same command. */
    const char *set[] = {"SET", key, (const char *)blob, "GET"};
    size_t set_len[] = {3, (size_t)kl, n, 3};
    const char *zadd[] = {"ZADD", ids, "0", id};
    size_t zadd_len[] = {4, (size_t)il, 1, strlen(id)};
    static const char *const multi[] = {"MULTI"}, *const exec[] = {"EXEC"};
    static const size_t multi_len[] = {5}, exec_len[] = {4};
    const int argc[] = {1, 4, 4, 1};
    const char *const *argv[] = {multi, set, zadd, exec};
    const size_t *const lens[] = {multi_len, set_len, zadd_len, exec_len};
    redisReply *r = NULL;
    (void)pthread_mutex_lock(&s->mu);
    cl_status rc = redis_run(s, 4, argc, argv, lens, &r);
    if (rc == CL_ERR_IO) rc = redis_run(s, 4, argc, argv, lens, &r);
    (void)pthread_mutex_unlock(&s->mu);
    CL_GUARD(rc);
    bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
              (r->element[0]->type == REDIS_REPLY_NIL || r->element[0]->type == REDIS_REPLY_STRING);
    *existed = ok && r->element[0]->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    CL_ENSURE(ok, CL_ERR_REMOTE, "Redis: the write did not run (EXEC answered otherwise; Redis 6.2 or later?)");
    return CL_OK;
}

static CL_MUST_USE cl_status redis_del(cl_api_store *base, const char *id, bool *existed)
{
    api_redis *s = (api_redis *)base;
    char key[REDIS_KEY_MAX], ids[REDIS_KEY_MAX];
    int kl = redis_key(s, "r:", id, key), il = redis_key(s, "ids", "", ids);
    const char *del[] = {"DEL", key};
    size_t del_len[] = {3, (size_t)kl};
    const char *zrem[] = {"ZREM", ids, id};
    size_t zrem_len[] = {4, (size_t)il, strlen(id)};
    long long got[2] = {0, 0};
    CL_GUARD(redis_transaction(s, 2, del, del_len, 3, zrem, zrem_len, got));
    *existed = got[0] > 0;
    return CL_OK;
}

static CL_MUST_USE cl_status redis_list(cl_api_store *base, const char *after, size_t limit, cl_buf *out, size_t *count)
{
    api_redis *s = (api_redis *)base;
    char ids[REDIS_KEY_MAX], from[CL_API_ID_MAX + 2], lim[24];
    int il = redis_key(s, "ids", "", ids);
    int fl = after != NULL ? snprintf(from, sizeof(from), "(%s", after) : snprintf(from, sizeof(from), "-");
    int ll = snprintf(lim, sizeof(lim), "%zu", limit + 1);
    const char *argv[] = {"ZRANGEBYLEX", ids, from, "+", "LIMIT", "0", lim};
    size_t lens[] = {11, (size_t)il, (size_t)fl, 1, 5, 1, (size_t)ll};
    redisReply *r = NULL;
    *count = 0;
    (void)pthread_mutex_lock(&s->mu);
    cl_status rc = redis_cmd(s, 7, argv, lens, &r);
    (void)pthread_mutex_unlock(&s->mu);
    CL_GUARD(rc);
    if (r->type != REDIS_REPLY_ARRAY) rc = CL_RAISE(CL_ERR_REMOTE, "Redis answered ZRANGEBYLEX with type %d", r->type);
    for (size_t i = 0; rc == CL_OK && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || !cl_api_id_valid(e->str, e->len)) continue; /* not one of ours */
        rc = cl_buf_append(out, e->str, e->len);
        if (rc == CL_OK) rc = cl_buf_append_u8(out, 0);
        (*count)++;
    }
    freeReplyObject(r);
    return rc;
}

static CL_MUST_USE cl_status redis_meta_put_new(cl_api_store *base, const char *name, const uint8_t *v, size_t n)
{
    api_redis *s = (api_redis *)base;
    char key[REDIS_KEY_MAX];
    int kl = redis_key(s, "m:", name, key);
    const char *argv[] = {"SET", key, (const char *)v, "NX"};
    size_t lens[] = {3, (size_t)kl, n, 2};
    redisReply *r = NULL;
    (void)pthread_mutex_lock(&s->mu);
    cl_status rc = redis_cmd(s, 4, argv, lens, &r);
    (void)pthread_mutex_unlock(&s->mu);
    CL_GUARD(rc);
    bool exists = r->type == REDIS_REPLY_NIL;
    freeReplyObject(r);
    CL_ENSURE(!exists, CL_ERR_EXISTS, "the store has a %s already", name);
    return CL_OK;
}

/* CONFIG GET name must answer want (the server's durability settings). */
static CL_MUST_USE cl_status redis_expect_config(api_redis *s, const char *name, const char *want)
{
    const char *argv[] = {"CONFIG", "GET", name};
    size_t lens[] = {6, 3, strlen(name)};
    redisReply *r = NULL;
    CL_GUARD_CTX(redis_cmd(s, 3, argv, lens, &r),
                 "checking Redis's %s (the API needs CONFIG GET to confirm appendonly yes and appendfsync always)",
                 name);
    CL_ENSURE(r != NULL, CL_ERR_INTERNAL, "Redis: no reply to CONFIG GET");
    bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING &&
              strcmp(r->element[1]->str, want) == 0;
    char got[32] = "?";
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING)
        (void)snprintf(got, sizeof(got), "%s", r->element[1]->str);
    freeReplyObject(r);
    CL_ENSURE(ok, CL_ERR_STATE,
              "Redis has %s %s; an acknowledged write is durable only with appendonly yes and appendfsync always "
              "(redis-server --appendonly yes --appendfsync always)",
              name, got);
    return CL_OK;
}

static void redis_free_store(cl_api_store *base)
{
    api_redis *s = (api_redis *)base;
    redis_drop(s);
    (void)pthread_mutex_destroy(&s->mu);
    free(s);
}

static const cl_api_store_ops redis_ops = {
    .get = redis_get,
    .put = redis_put,
    .del = redis_del,
    .list = redis_list,
    .meta_get = redis_meta_get,
    .meta_put_new = redis_meta_put_new,
    .free = redis_free_store,
};

cl_status cl_api_store_redis_open(cl_api_connect_fn connect, void *arg, const char *prefix, cl_api_store **out)
{
    cl_status rc = CL_OK;
    CL_ENSURE(strlen(prefix) < 64, CL_ERR_USAGE, "the Redis key prefix is over 63 bytes");
    api_redis *s = calloc(1, sizeof(*s));
    CL_ENSURE(s != NULL, CL_ERR_NOMEM, "out of memory");
    s->base.ops = &redis_ops;
    s->base.kind = "redis";
    s->connect = connect;
    s->connect_arg = arg;
    (void)snprintf(s->prefix, sizeof(s->prefix), "%s", prefix);
    (void)pthread_mutex_init(&s->mu, NULL);
    CL_GUARD_GOTO(redis_expect_config(s, "appendonly", "yes"));
    CL_GUARD_GOTO(redis_expect_config(s, "appendfsync", "always"));
    *out = &s->base;
    s = NULL;
out:
    if (s != NULL) redis_free_store(&s->base);
    return rc;
}
