/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The running enclaves of a state directory, as `cloister enclave describe`, `terminate` and
 * `console` (and nitro-cli's describe-enclaves, terminate-enclave, console) see them.
 *
 * STATE/ID/ is the launcher's (launcher.c): pid (its pid, and the lock it holds with flock
 * for as long as it runs), name, info.json once the enclave's program runs, console.log in
 * debug mode, launcher.log when it runs in the background, the vsock sockets. The lock is
 * what says an enclave runs: the kernel drops it however the launcher ends, so a directory
 * a launcher killed with SIGKILL left behind is not running, and the pid in it, which may
 * belong to another process by now, is never signalled. A launcher is signalled through a
 * pidfd opened while its lock is seen held, so the signal cannot reach a process that took
 * its pid afterwards.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cloister/enclave.h"

#define ID_PREFIX "i-sim-enc"

cl_status cl_enclave_check_id(const char *id)
{
    size_t n = strlen(id), p = strlen(ID_PREFIX);
    CL_ENSURE(n > p && n <= CL_ENCLAVE_ID_MAX && strncmp(id, ID_PREFIX, p) == 0 &&
                  strspn(id + p, "0123456789abcdef") == n - p,
              CL_ERR_USAGE, "'%s' is not an enclave ID (i-sim-enc..., as describe-enclaves lists them)", id);
    return CL_OK;
}

cl_status cl_enclave_check_name(const char *name)
{
    size_t n = strlen(name);
    CL_ENSURE(n >= 1 && n <= CL_ENCLAVE_NAME_MAX &&
                  strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n,
              CL_ERR_USAGE, "enclave name '%s': give 1 to %d letters, digits, '.', '_' or '-'", name,
              CL_ENCLAVE_NAME_MAX);
    return CL_OK;
}

/* A small file's text without its trailing newline ("" if absent or unreadable). */
static void read_small(int dirfd, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return;
    ssize_t n = read(fd, out, cap - 1);
    (void)close(fd);
    out[n > 0 ? n : 0] = '\0';
    out[strcspn(out, "\n")] = '\0';
}

/* Whether STATE/ID's launcher runs (its lock on STATE/ID/pid is held), and what it wrote. */
static bool probe(const char *state_dir, const char *id, cl_enclave_entry *e)
{
    memset(e, 0, sizeof(*e));
    char path[4400];
    (void)snprintf(path, sizeof(path), "%s/%s", state_dir, id);
    int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dirfd < 0) return false;
    bool live = false;
    int fd = openat(dirfd, "pid", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        if (flock(fd, LOCK_SH | LOCK_NB) == 0)
            (void)flock(fd, LOCK_UN); /* nobody holds it: left behind */
        else
            live = errno == EWOULDBLOCK;
        (void)close(fd);
    }
    if (live) {
        char pid[32];
        uint64_t v = 0;
        read_small(dirfd, "pid", pid, sizeof(pid));
        live = cl_parse_uint(pid, 2, INT32_MAX, "pid", &v) == CL_OK;
        e->launcher = (pid_t)v;
        (void)snprintf(e->id, sizeof(e->id), "%s", id);
        read_small(dirfd, "name", e->name, sizeof(e->name));
        char cid[16];
        read_small(dirfd, "cid", cid, sizeof(cid));
        e->cid = cl_parse_uint(cid, 0, UINT32_MAX, "cid", &v) == CL_OK ? (uint32_t)v : 0;
        e->started = faccessat(dirfd, "info.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
    }
    (void)close(dirfd);
    cl_error_clear();
    return live;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const cl_enclave_entry *)a)->id, ((const cl_enclave_entry *)b)->id);
}

cl_status cl_enclave_list(const char *state_dir, cl_enclave_entry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(state_dir);
    if (d == NULL) {
        if (errno == ENOENT) return CL_OK;
        CL_FAIL_ERRNO(CL_ERR_IO, "cannot read the state directory %s", state_dir);
    }
    cl_status rc = CL_OK;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, ID_PREFIX, strlen(ID_PREFIX)) != 0 || cl_enclave_check_id(de->d_name) != CL_OK) {
            cl_error_clear();
            continue;
        }
        cl_enclave_entry e;
        if (!probe(state_dir, de->d_name, &e)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            cl_enclave_entry *grown = realloc(*out, cap * sizeof(**out));
            CL_ENSURE_GOTO(grown != NULL, CL_ERR_NOMEM, "out of memory listing enclaves");
            *out = grown;
        }
        (*out)[(*n)++] = e;
    }
    if (*n > 1) qsort(*out, *n, sizeof(**out), entry_cmp);
out:
    (void)closedir(d);
    if (rc != CL_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

cl_status cl_enclave_find_name(const char *state_dir, const char *name, cl_enclave_entry *out)
{
    cl_enclave_entry *all = NULL;
    size_t n = 0;
    CL_GUARD(cl_enclave_list(state_dir, &all, &n));
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) {
        if (strcmp(all[i].name, name) == 0) {
            *out = all[i];
            found = true;
        }
    }
    free(all);
    CL_ENSURE(found, CL_ERR_NOT_FOUND, "no running enclave is named '%s' (describe-enclaves lists them)", name);
    return CL_OK;
}

/* A pidfd for a running enclave's launcher: opened, then the lock seen still held, so that the
 * pidfd is the launcher's and not a process's that took a dead launcher's pid. */
static CL_MUST_USE cl_status launcher_pidfd(const char *state_dir, const char *id, int *pidfd)
{
    CL_GUARD(cl_enclave_check_id(id));
    cl_enclave_entry e;
    CL_ENSURE(probe(state_dir, id, &e), CL_ERR_NOT_FOUND, "no running enclave %s in %s", id, state_dir);
    int fd = (int)syscall(SYS_pidfd_open, e.launcher, 0);
    if (fd < 0) CL_FAIL_ERRNO(CL_ERR_NOT_FOUND, "enclave %s: its launcher (pid %d) is gone", id, (int)e.launcher);
    cl_enclave_entry again;
    if (!probe(state_dir, id, &again) || again.launcher != e.launcher) {
        (void)close(fd);
        CL_FAIL(CL_ERR_NOT_FOUND, "enclave %s stopped meanwhile", id);
    }
    *pidfd = fd;
    return CL_OK;
}

cl_status cl_enclave_terminate(const char *state_dir, const char *id, int timeout_ms, bool *terminated)
{
    *terminated = false;
    int pidfd = -1;
    CL_GUARD(launcher_pidfd(state_dir, id, &pidfd));
    cl_status rc = CL_OK;
    if (syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0) != 0)
        CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "enclave %s: cannot signal its launcher", id);
    /* The launcher kills the enclave, removes STATE/ID and exits: the pidfd becomes readable. */
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    int r;
    do {
        r = poll(&p, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    *terminated = r > 0;
out:
    (void)close(pidfd);
    return rc;
}

static CL_MUST_USE cl_status copy_out(int from, int to, bool *closed)
{
    char buf[16384];
    for (;;) {
        ssize_t n = read(from, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot read the enclave's console");
        if (n == 0) return CL_OK;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(to, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && errno == EPIPE) {
                *closed = true; /* whoever read the console went away: not an error */
                return CL_OK;
            }
            if (w <= 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot write the enclave's console");
            off += w;
        }
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

cl_status cl_enclave_console(const char *state_dir, const char *id, int out_fd, int timeout_ms)
{
    cl_status rc = CL_OK;
    int pidfd = -1, log = -1, ino = -1;
    char path[4400];
    CL_GUARD(launcher_pidfd(state_dir, id, &pidfd));
    (void)snprintf(path, sizeof(path), "%s/%s/console.log", state_dir, id);
    /* Watched before it is read, so that nothing written in between goes unnoticed. */
    ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ino < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "inotify");
    if (inotify_add_watch(ino, path, IN_MODIFY) < 0 || (log = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
        if (errno == ENOENT)
            CL_FAIL_GOTO(CL_ERR_NOT_FOUND,
                         "enclave %s has no console: it was not started in debug mode (--debug-mode); only "
                         "debug-mode enclaves show their console, as on Nitro",
                         id);
        CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot open %s", path);
    }
    int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
    bool closed = false;
    for (;;) {
        CL_GUARD_GOTO(copy_out(log, out_fd, &closed));
        if (closed) break;
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0) break;
            wait = (int)left;
        }
        /* The reader of out_fd going away shows as POLLERR on a pipe's write end. */
        struct pollfd p[3] = {{.fd = ino, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}, {.fd = out_fd}};
        int r = poll(p, 3, wait);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "poll");
        if (p[2].revents & (POLLERR | POLLHUP)) break;
        if (p[1].revents & POLLIN) {
            /* The enclave has ended: what it wrote last, then done. */
            CL_GUARD_GOTO(copy_out(log, out_fd, &closed));
            break;
        }
        if (p[0].revents & POLLIN) {
            char ev[4096];
            while (read(ino, ev, sizeof(ev)) > 0) {
            }
        }
    }
out:
    if (ino >= 0) (void)close(ino);
    if (log >= 0) (void)close(log);
    if (pidfd >= 0) (void)close(pidfd);
    return rc;
}
