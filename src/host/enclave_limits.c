/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sim enclave's limits as a whole (docs/security.md, finding 7): --memory and --max-tasks bound the
 * enclave, not each of its processes. RLIMIT_AS alone is per process, and fork was allowed: seven
 * processes reached 1.2 GiB under --memory 256.
 *
 * Where a cgroup with the memory and pids controllers can be made, the enclave runs in one of its
 * own (Documentation/admin-guide/cgroup-v2.rst; cgroup-v1/memory.rst and pids.rst for v1): its
 * memory limit counts every page of all its processes, its tmpfs root included (as a Nitro
 * enclave's memory holds its image), with no swap, and pids.max caps its processes and threads
 * together. Tried in this order:
 *   1. --cgroup DIR: a cgroup v2 directory delegated to the launcher (systemd's Delegate=yes, or
 *      one root made); the enclave gets DIR/<enclave id>. Failing there is an error.
 *   2. cgroup v2, when its root lists memory and pids: the launcher's own cgroup, if the two
 *      controllers can be enabled for its children (the kernel refuses while processes live in
 *      it, the root excepted), else <the cgroup2 mount>/cloister (which needs root).
 *   3. cgroup v1's memory and pids hierarchies: a child of the launcher's own cgroup in each.
 * Else (--cgroup none, or nothing writable: an unprivileged launcher without delegation) the
 * scope is the process: the seccomp filter refuses new processes (clone without CLONE_THREAD;
 * threads still work, oneDNN's OpenMP pool among them), so RLIMIT_AS bounds the enclave's one
 * process, and RLIMIT_NPROC its threads (which the kernel does not enforce for root).
 */
#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cloister/enclave.h"
#include "cloister/log.h"

/* Where the kernel says the cgroup hierarchies are, and where this process sits in them. */
typedef struct cg_where {
    char v2_mount[CL_CGROUP_PATH], v2_self[CL_CGROUP_PATH];
    char mem_mount[CL_CGROUP_PATH], mem_self[CL_CGROUP_PATH];
    char pids_mount[CL_CGROUP_PATH], pids_self[CL_CGROUP_PATH];
} cg_where;

static CL_MUST_USE cl_status cg_path(char *out, size_t cap, const char *dir, const char *file)
{
    int n = snprintf(out, cap, "%s/%s", dir, file);
    CL_ENSURE(n > 0 && (size_t)n < cap, CL_ERR_LIMIT, "cgroup path %s/%s is too long", dir, file);
    return CL_OK;
}

static CL_MUST_USE cl_status cg_write(const char *dir, const char *file, const char *text)
{
    char path[CL_CGROUP_PATH];
    CL_GUARD(cg_path(path, sizeof(path), dir, file));
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot open %s", path);
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int e = w < 0 ? errno : EIO;
    (void)close(fd);
    if (w != (ssize_t)len) {
        errno = e;
        CL_FAIL_ERRNO(CL_ERR_IO, "cannot write '%s' to %s", text, path);
    }
    return CL_OK;
}

/* The first line of dir/file, without its newline. */
static CL_MUST_USE cl_status cg_read(const char *dir, const char *file, char *out, size_t cap)
{
    char path[CL_CGROUP_PATH];
    CL_GUARD(cg_path(path, sizeof(path), dir, file));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot open %s", path);
    ssize_t n = read(fd, out, cap - 1);
    int e = errno;
    (void)close(fd);
    if (n < 0) {
        errno = e;
        CL_FAIL_ERRNO(CL_ERR_IO, "cannot read %s", path);
    }
    out[n] = '\0';
    out[strcspn(out, "\n")] = '\0';
    return CL_OK;
}

static bool cg_exists(const char *dir, const char *file)
{
    char path[CL_CGROUP_PATH];
    struct stat sb;
    return cg_path(path, sizeof(path), dir, file) == CL_OK && stat(path, &sb) == 0;
}

/* Whether `list` (words separated by spaces or commas) has `word`. */
static bool cg_has_word(const char *list, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = list; *p != '\0';) {
        size_t l = strcspn(p, " ,");
        if (l == wl && strncmp(p, word, wl) == 0) return true;
        p += l;
        p += strspn(p, " ,");
    }
    return false;
}

/* mount + the process's path in it ("/" is the mount itself). */
static CL_MUST_USE cl_status cg_join(char *out, const char *mount, const char *self)
{
    int n = snprintf(out, CL_CGROUP_PATH, "%s%s", mount, strcmp(self, "/") == 0 ? "" : self);
    CL_ENSURE(n > 0 && n < CL_CGROUP_PATH, CL_ERR_LIMIT, "cgroup path %s%s is too long", mount, self);
    return CL_OK;
}

/* The cgroup mounts (sys->mounts, as /proc/self/mounts) and the process's cgroups (sys->self, as
 * /proc/self/cgroup: "0::PATH" for v2, "ID:CONTROLLERS:PATH" for v1). */
static void cg_find(const cl_cgroup_sys *sys, cg_where *w)
{
    memset(w, 0, sizeof(*w));
    FILE *f = setmntent(sys->mounts, "r");
    if (f != NULL) {
        struct mntent ent;
        char text[4096];
        while (getmntent_r(f, &ent, text, sizeof(text)) != NULL) {
            bool v1 = strcmp(ent.mnt_type, "cgroup") == 0;
            if (strcmp(ent.mnt_type, "cgroup2") == 0 && w->v2_mount[0] == '\0')
                (void)snprintf(w->v2_mount, CL_CGROUP_PATH, "%s", ent.mnt_dir);
            if (v1 && hasmntopt(&ent, "memory") != NULL)
                (void)snprintf(w->mem_mount, CL_CGROUP_PATH, "%s", ent.mnt_dir);
            if (v1 && hasmntopt(&ent, "pids") != NULL) (void)snprintf(w->pids_mount, CL_CGROUP_PATH, "%s", ent.mnt_dir);
        }
        (void)endmntent(f);
    }
    f = fopen(sys->self, "re");
    if (f == NULL) return;
    char line[CL_CGROUP_PATH + 128];
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL || c2[1] != '/') continue;
        *c1 = *c2 = '\0';
        const char *controllers = c1 + 1, *path = c2 + 1;
        if (strcmp(line, "0") == 0 && controllers[0] == '\0') (void)snprintf(w->v2_self, CL_CGROUP_PATH, "%s", path);
        if (cg_has_word(controllers, "memory")) (void)snprintf(w->mem_self, CL_CGROUP_PATH, "%s", path);
        if (cg_has_word(controllers, "pids")) (void)snprintf(w->pids_self, CL_CGROUP_PATH, "%s", path);
    }
    (void)fclose(f);
}

static void cg_note(cl_enclave_cgroup *out, const char *what)
{
    size_t used = strlen(out->why);
    (void)snprintf(out->why + used, sizeof(out->why) - used, "%s%s: %s", used > 0 ? "; " : "", what,
                   cl_error_message());
    cl_error_clear();
}

/* The limits, written into a cgroup made for the enclave. */
static CL_MUST_USE cl_status cg_limits(const char *dir, const char *mem_file, uint64_t memory_bytes,
                                       const char *pids_dir, uint32_t max_tasks, bool v2)
{
    char v[32];
    (void)snprintf(v, sizeof(v), "%llu", (unsigned long long)memory_bytes);
    CL_GUARD(cg_write(dir, mem_file, v));
    /* No swap: the enclave's memory stays in RAM, as it does on Nitro (and its secrets with it). */
    if (v2 && cg_exists(dir, "memory.swap.max")) CL_GUARD(cg_write(dir, "memory.swap.max", "0"));
    if (!v2 && cg_exists(dir, "memory.memsw.limit_in_bytes")) CL_GUARD(cg_write(dir, "memory.memsw.limit_in_bytes", v));
    (void)snprintf(v, sizeof(v), "%u", (unsigned)max_tasks);
    return cg_write(pids_dir, "pids.max", v);
}

/* A cgroup v2 child `name` of parent with both controllers on and the limits written. */
static CL_MUST_USE cl_status cg2_make(const char *parent, const char *name, uint64_t memory_bytes, uint32_t max_tasks,
                                      cl_enclave_cgroup *out)
{
    char on[512] = "";
    CL_GUARD(cg_read(parent, "cgroup.subtree_control", on, sizeof(on)));
    if (!cg_has_word(on, "memory") || !cg_has_word(on, "pids"))
        CL_GUARD(cg_write(parent, "cgroup.subtree_control", "+memory +pids"));
    char dir[CL_CGROUP_PATH];
    CL_GUARD(cg_path(dir, sizeof(dir), parent, name));
    if (mkdir(dir, 0755) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot create cgroup %s", dir);
    cl_status rc = cg_limits(dir, "memory.max", memory_bytes, dir, max_tasks, true);
    if (rc != CL_OK) {
        (void)rmdir(dir);
        return rc;
    }
    out->scope = CL_ENCLAVE_SCOPE_CGROUP_V2;
    (void)snprintf(out->dir, sizeof(out->dir), "%s", dir);
    return CL_OK;
}

/* <the cgroup2 mount>/cloister/name: the hierarchy's root may enable controllers whatever runs in
 * it, and cloister holds no process, so it may enable them for its children (root only). */
static CL_MUST_USE cl_status cg2_make_under_root(const char *mount, const char *name, uint64_t memory_bytes,
                                                 uint32_t max_tasks, cl_enclave_cgroup *out)
{
    char dir[CL_CGROUP_PATH];
    CL_GUARD(cg_path(dir, sizeof(dir), mount, "cloister"));
    CL_GUARD(cg_write(mount, "cgroup.subtree_control", "+memory +pids"));
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) CL_FAIL_ERRNO(CL_ERR_IO, "cannot create cgroup %s", dir);
    return cg2_make(dir, name, memory_bytes, max_tasks, out);
}

static CL_MUST_USE cl_status cg1_make(const cg_where *w, const char *name, uint64_t memory_bytes, uint32_t max_tasks,
                                      cl_enclave_cgroup *out)
{
    char mem[CL_CGROUP_PATH], pids[CL_CGROUP_PATH], parent[CL_CGROUP_PATH];
    CL_GUARD(cg_join(parent, w->mem_mount, w->mem_self));
    CL_GUARD(cg_path(mem, sizeof(mem), parent, name));
    CL_GUARD(cg_join(parent, w->pids_mount, w->pids_self));
    CL_GUARD(cg_path(pids, sizeof(pids), parent, name));
    if (mkdir(mem, 0755) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot create cgroup %s", mem);
    if (mkdir(pids, 0755) != 0) {
        int e = errno;
        (void)rmdir(mem);
        errno = e;
        CL_FAIL_ERRNO(CL_ERR_IO, "cannot create cgroup %s", pids);
    }
    cl_status rc = cg_limits(mem, "memory.limit_in_bytes", memory_bytes, pids, max_tasks, false);
    if (rc != CL_OK) {
        (void)rmdir(mem);
        (void)rmdir(pids);
        return rc;
    }
    out->scope = CL_ENCLAVE_SCOPE_CGROUP_V1;
    (void)snprintf(out->dir, sizeof(out->dir), "%s", mem);
    (void)snprintf(out->pids_dir, sizeof(out->pids_dir), "%s", pids);
    return CL_OK;
}

cl_status cl_enclave_cgroup_make(const cl_cgroup_sys *sys, const char *parent, const char *name, uint64_t memory_bytes,
                                 uint32_t max_tasks, cl_enclave_cgroup *out)
{
    memset(out, 0, sizeof(*out));
    out->scope = CL_ENCLAVE_SCOPE_PROCESS;
    CL_ENSURE(name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 && strcmp(name, "..") != 0,
              CL_ERR_USAGE, "cgroup name '%s' is not one path component", name);
    if (parent != NULL && strcmp(parent, "none") == 0) {
        (void)snprintf(out->why, sizeof(out->why), "--cgroup none");
        return CL_OK;
    }
    if (parent != NULL) {
        CL_GUARD_CTX(cg2_make(parent, name, memory_bytes, max_tasks, out),
                     "--cgroup %s: the enclave's cgroup (a cgroup v2 directory delegated to this user is needed; "
                     "or --cgroup none)",
                     parent);
        return CL_OK;
    }
    cg_where *w = calloc(1, sizeof(*w));
    CL_ENSURE(w != NULL, CL_ERR_NOMEM, "out of memory");
    cg_find(sys, w);
    char root_ctl[512] = "", dir[CL_CGROUP_PATH];
    if (w->v2_mount[0] != '\0' && cg_read(w->v2_mount, "cgroup.controllers", root_ctl, sizeof(root_ctl)) == CL_OK &&
        cg_has_word(root_ctl, "memory") && cg_has_word(root_ctl, "pids")) {
        if (w->v2_self[0] != '\0' && cg_join(dir, w->v2_mount, w->v2_self) == CL_OK) {
            if (cg2_make(dir, name, memory_bytes, max_tasks, out) == CL_OK) goto done;
            cg_note(out, "cgroup v2, the launcher's own cgroup");
        }
        if (cg2_make_under_root(w->v2_mount, name, memory_bytes, max_tasks, out) == CL_OK) goto done;
        cg_note(out, "cgroup v2, <root>/cloister");
    } else if (w->v2_mount[0] != '\0') {
        (void)snprintf(out->why, sizeof(out->why), "cgroup v2 at %s has no memory and pids controllers", w->v2_mount);
    }
    if (w->mem_mount[0] != '\0' && w->pids_mount[0] != '\0' && w->mem_self[0] != '\0' && w->pids_self[0] != '\0') {
        if (cg1_make(w, name, memory_bytes, max_tasks, out) == CL_OK) goto done;
        cg_note(out, "cgroup v1");
    } else if (out->why[0] == '\0') {
        (void)snprintf(out->why, sizeof(out->why), "no cgroup hierarchy with the memory and pids controllers");
    }
done:
    if (out->scope != CL_ENCLAVE_SCOPE_PROCESS) out->why[0] = '\0';
    free(w);
    return CL_OK;
}

cl_status cl_enclave_cgroup_enter(const cl_enclave_cgroup *cg, pid_t pid)
{
    if (cg->scope == CL_ENCLAVE_SCOPE_PROCESS) return CL_OK;
    char v[32];
    (void)snprintf(v, sizeof(v), "%d", (int)pid);
    CL_GUARD(cg_write(cg->dir, "cgroup.procs", v));
    if (cg->scope == CL_ENCLAVE_SCOPE_CGROUP_V1) CL_GUARD(cg_write(cg->pids_dir, "cgroup.procs", v));
    return CL_OK;
}

/* Kills what is left in dir (the PID namespace's end kills the rest when its first process
 * exits; this is for a launcher that failed half way) and removes it, waiting up to a second
 * for the kernel to finish the exits. */
static void cg_remove_dir(const char *dir, bool v2)
{
    if (rmdir(dir) == 0 || errno == ENOENT) return;
    if (v2 && cg_exists(dir, "cgroup.kill")) {
        if (cg_write(dir, "cgroup.kill", "1") != CL_OK) cl_error_clear();
    } else {
        char path[CL_CGROUP_PATH];
        FILE *f = cg_path(path, sizeof(path), dir, "cgroup.procs") == CL_OK ? fopen(path, "re") : NULL;
        char line[32];
        while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
            long pid = strtol(line, NULL, 10);
            if (pid > 1) (void)kill((pid_t)pid, SIGKILL);
        }
        if (f != NULL) (void)fclose(f);
    }
    for (int i = 0; i < 100; i++) {
        if (rmdir(dir) == 0 || errno == ENOENT) return;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10000000L};
        (void)nanosleep(&ts, NULL);
    }
    CL_LOG_WARN("the enclave's cgroup %s is left behind: %s (rmdir it once its processes are gone)", dir,
                strerror(errno));
}

void cl_enclave_cgroup_remove(cl_enclave_cgroup *cg)
{
    if (cg->scope == CL_ENCLAVE_SCOPE_PROCESS) return;
    cg_remove_dir(cg->dir, cg->scope == CL_ENCLAVE_SCOPE_CGROUP_V2);
    if (cg->scope == CL_ENCLAVE_SCOPE_CGROUP_V1) cg_remove_dir(cg->pids_dir, false);
    cg->scope = CL_ENCLAVE_SCOPE_PROCESS;
}

const char *cl_enclave_scope_name(cl_enclave_scope s)
{
    switch (s) {
    case CL_ENCLAVE_SCOPE_CGROUP_V2: return "cgroup v2";
    case CL_ENCLAVE_SCOPE_CGROUP_V1: return "cgroup v1";
    case CL_ENCLAVE_SCOPE_PROCESS: return "process";
    }
    return "?";
}
