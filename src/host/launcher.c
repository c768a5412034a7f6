/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sim backend's launcher: `cloister enclave run`.
 *
 * The enclave is the image's program in a child created with clone() into fresh user,
 * mount, network, PID, IPC and UTS namespaces. Before it runs the program, the child
 *  - mounts a private tmpfs, writes the image's files into it, pivot_roots into it and
 *    remounts it read-only: the host's file system is gone from its view, only the
 *    image's files exist (no /proc, no /dev, no /tmp);
 *  - has no network interface but a downed loopback (its own network namespace);
 *  - runs in a cgroup of its own where one can be made, which bounds the memory (--memory)
 *    and the processes and threads (--max-tasks) of the enclave as a whole; without one, new
 *    processes are refused, so that the address space limit of its one process (RLIMIT_AS,
 *    --memory, set in either case) bounds it all (enclave_limits.c); core size 0;
 *  - becomes uid 1000 of its namespace with no capabilities, sets no_new_privs,
 *    and installs a seccomp allowlist (libseccomp; anything else fails EPERM);
 *  - keeps exactly two channels to the outside, file descriptors the launcher
 *    made: CL_NSM_FD, the attestation device, and CL_VSOCK_FD, the vsock emulation.
 * The program file is installed execute-only (0111): the kernel then marks the
 * process non-dumpable at exec (would_dump() in fs/exec.c; a PR_SET_DUMPABLE made
 * before exec would be reset), so no core dumps, and no ptrace or /proc/PID/mem for
 * processes lacking CAP_SYS_PTRACE over the enclave's user namespace. That is defence
 * in depth only: the user who launched the enclave owns the namespace (and root owns
 * everything), so the sim backend does not protect the enclave from its host (docs:
 * threat model), as SGX simulation mode does not.
 *
 * The launcher itself measures the image, answers the device's requests with the
 * PCRs it measured, forwards the connections the enclave opens to the destinations
 * allowed by --proxy (as vsock-proxy does; bytes only, so TLS ends inside the
 * enclave), and hands the enclave the connections host programs make to its
 * listening vsock ports (<state>/<id>/vsock-<port>.sock), and those made to a TCP address
 * published for such a port (--publish).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cloister/crypto.h"
#include "cloister/enclave.h"
#include "cloister/log.h"

#define ENCLAVE_UID 1000
#define MAX_LISTENERS 8
#define CHILD_STACK ((size_t)1 << 20)
/* Connections relayed at once, one thread each: those the enclave opens (--proxy), and those host
 * clients open to a published address (--publish). A records API with 32 serving threads keeps a
 * store connection and a channel to each upstream enclave per thread: 64 was too few. */
#define MAX_RELAYS 256
#define MAX_PUBLISHED_RELAYS 256

static atomic_int active_relays;
static atomic_int active_published_relays;

typedef struct child_args {
    const cl_enclave_config *cfg;
    const cl_image *img;
    const char *root; /* mount point for the enclave's root */
    const char *id;
    int sync_rd, err_wr, nsm_fd, ctl_fd, console_fd, null_fd;
    bool new_processes; /* a cgroup bounds the enclave as a whole: fork is allowed */
    uint32_t max_tasks;
} child_args;

/* --- the child: isolation, then exec -------------------------------------- */

static CL_MUST_USE cl_status mkdirs(char *path)
{
    for (char *s = path + 1; *s != '\0'; s++) {
        if (*s != '/') continue;
        *s = '\0';
        int r = mkdir(path, 0755);
        int e = errno;
        *s = '/';
        if (r != 0 && e != EEXIST) {
            errno = e;
            CL_FAIL_ERRNO(CL_ERR_IO, "enclave root: mkdir for %s", path);
        }
    }
    return CL_OK;
}

static CL_MUST_USE cl_status populate(const child_args *a)
{
    char path[4096];
    for (size_t i = 0; i < a->img->count; i++) {
        const cl_image_entry *e = &a->img->entries[i];
        (void)snprintf(path, sizeof(path), "%s%s", a->root, e->path);
        CL_GUARD(mkdirs(path));
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) CL_FAIL_ERRNO(CL_ERR_IO, "enclave root: cannot create %s", e->path);
        uint64_t off = 0;
        while (off < e->size) {
            ssize_t w = write(fd, e->data + off, (size_t)(e->size - off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                (void)close(fd);
                CL_FAIL_ERRNO(CL_ERR_IO, "enclave root: cannot write %s (image larger than the tmpfs?)", e->path);
            }
            off += (uint64_t)w;
        }
        /* The program execute-only: see the top of this file. */
        mode_t mode = e->kind == CL_IMAGE_EXE ? 0111 : e->mode;
        if (fchmod(fd, mode) != 0 || close(fd) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "enclave root: %s", e->path);
    }
    return CL_OK;
}

static CL_MUST_USE cl_status isolate_fs(const child_args *a)
{
    size_t total = 0;
    for (size_t i = 0; i < a->img->count; i++) total += (size_t)a->img->entries[i].size + 4096;
    char opts[64];
    (void)snprintf(opts, sizeof(opts), "size=%zu,mode=0755", total + ((size_t)1 << 20));
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        CL_FAIL_ERRNO(CL_ERR_IO, "enclave: cannot make the mounts private");
    if (mount("tmpfs", a->root, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0)
        CL_FAIL_ERRNO(CL_ERR_IO, "enclave: cannot mount a tmpfs on %s", a->root);
    CL_GUARD(populate(a));
    if (a->cfg->data_dir != NULL) {
        /* --data (sim only): the host directory, writable at /data. The root stays read-only. */
        char data[4200];
        (void)snprintf(data, sizeof(data), "%s/data", a->root);
        if (mkdir(data, 0700) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "enclave: mkdir %s", data);
        if (mount(a->cfg->data_dir, data, NULL, MS_BIND | MS_REC, NULL) != 0)
            CL_FAIL_ERRNO(CL_ERR_IO, "enclave: cannot bind-mount the data directory %s", a->cfg->data_dir);
        if (mount(NULL, data, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
            CL_FAIL_ERRNO(CL_ERR_IO, "enclave: cannot remount the data directory nosuid,nodev,noexec");
    }
    char old[4200];
    (void)snprintf(old, sizeof(old), "%s/.old", a->root);
    if (mkdir(old, 0700) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "enclave: mkdir %s", old);
    if (syscall(SYS_pivot_root, a->root, old) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "enclave: pivot_root");
    if (chdir("/") != 0) CL_FAIL_ERRNO(CL_ERR_IO, "enclave: chdir /");
    if (umount2("/.old", MNT_DETACH) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "enclave: cannot detach the host's file system");
    if (rmdir("/.old") != 0) CL_FAIL_ERRNO(CL_ERR_IO, "enclave: rmdir /.old");
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0)
        CL_FAIL_ERRNO(CL_ERR_IO, "enclave: cannot make the root read-only");
    return CL_OK;
}

/* SCMP_A0 leaves datum_b out, which clang's -Wmissing-field-initializers refuses. */
static struct scmp_arg_cmp arg0(enum scmp_compare op, uint64_t a, uint64_t b)
{
    return (struct scmp_arg_cmp){.arg = 0, .op = op, .datum_a = a, .datum_b = b};
}

static struct scmp_arg_cmp arg_n(unsigned n, enum scmp_compare op, uint64_t a, uint64_t b)
{
    return (struct scmp_arg_cmp){.arg = n, .op = op, .datum_a = a, .datum_b = b};
}

static CL_MUST_USE cl_status seccomp_install(bool new_processes, bool data_dir)
{
    /* What a C program, its dynamic loader, libc, libcrypto and libcbor need to run and
     * to talk over the two descriptors it was given, and nothing to reach past them: no
     * socket(), connect(), bind() (no network), no ptrace, mount, namespaces, bpf,
     * keyctl, perf, io_uring, process_vm_*. clone3 answers ENOSYS (its flags cannot be
     * inspected) so that libc falls back to clone, whose flags can. */
    static const int allow[] = {
        SCMP_SYS(read),
        SCMP_SYS(write),
        SCMP_SYS(readv),
        SCMP_SYS(writev),
        SCMP_SYS(pread64),
        SCMP_SYS(pwrite64),
        SCMP_SYS(close),
        SCMP_SYS(openat),
        SCMP_SYS(open),
        SCMP_SYS(newfstatat),
        SCMP_SYS(fstat),
        SCMP_SYS(stat),
        SCMP_SYS(lstat),
        SCMP_SYS(statx),
        SCMP_SYS(lseek),
        SCMP_SYS(mmap),
        SCMP_SYS(mprotect),
        SCMP_SYS(munmap),
        SCMP_SYS(mremap),
        SCMP_SYS(brk),
        SCMP_SYS(madvise),
        SCMP_SYS(rt_sigaction),
        SCMP_SYS(rt_sigprocmask),
        SCMP_SYS(rt_sigreturn),
        SCMP_SYS(sigaltstack),
        SCMP_SYS(access),
        SCMP_SYS(faccessat),
        SCMP_SYS(faccessat2),
        SCMP_SYS(readlink),
        SCMP_SYS(readlinkat),
        SCMP_SYS(getcwd),
        SCMP_SYS(getdents64),
        SCMP_SYS(getpid),
        SCMP_SYS(gettid),
        SCMP_SYS(getppid),
        SCMP_SYS(getuid),
        SCMP_SYS(geteuid),
        SCMP_SYS(getgid),
        SCMP_SYS(getegid),
        SCMP_SYS(arch_prctl),
        SCMP_SYS(set_tid_address),
        SCMP_SYS(set_robust_list),
        SCMP_SYS(get_robust_list),
        SCMP_SYS(rseq),
        SCMP_SYS(prlimit64),
        SCMP_SYS(getrlimit),
        SCMP_SYS(futex),
        SCMP_SYS(clock_gettime),
        SCMP_SYS(clock_getres),
        SCMP_SYS(gettimeofday),
        SCMP_SYS(time),
        SCMP_SYS(nanosleep),
        SCMP_SYS(clock_nanosleep),
        SCMP_SYS(sched_yield),
        SCMP_SYS(sched_getaffinity),
        SCMP_SYS(getrandom),
        SCMP_SYS(exit),
        SCMP_SYS(exit_group),
        SCMP_SYS(uname),
        SCMP_SYS(sendmsg),
        SCMP_SYS(recvmsg),
        SCMP_SYS(sendto),
        SCMP_SYS(recvfrom),
        SCMP_SYS(shutdown),
        SCMP_SYS(poll),
        SCMP_SYS(ppoll),
        SCMP_SYS(epoll_create1),
        SCMP_SYS(epoll_ctl),
        SCMP_SYS(epoll_wait),
        SCMP_SYS(epoll_pwait),
        SCMP_SYS(select),
        SCMP_SYS(pselect6),
        SCMP_SYS(pipe2),
        SCMP_SYS(dup),
        SCMP_SYS(dup2),
        SCMP_SYS(dup3),
        SCMP_SYS(fcntl),
        SCMP_SYS(execve),
        SCMP_SYS(wait4),
        SCMP_SYS(tgkill),
        SCMP_SYS(membarrier),
        SCMP_SYS(mincore),
        SCMP_SYS(getsockopt),
        SCMP_SYS(restart_syscall),
        SCMP_SYS(mlock),
        SCMP_SYS(munlock),
        SCMP_SYS(mlockall),
        SCMP_SYS(munlockall),
    };
    cl_status rc = CL_OK;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    CL_ENSURE(ctx != NULL, CL_ERR_NOMEM, "seccomp: init failed");
    int r = 0;
    for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]) && r == 0; i++)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allow[i], 0);
    if (r == 0) r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1, arg0(SCMP_CMP_EQ, AF_UNIX, 0));
    /* --data: what a database in /data needs (SQLite's WAL: sync, truncate, unlink, rename). */
    static const int data_calls[] = {SCMP_SYS(fsync),    SCMP_SYS(fdatasync), SCMP_SYS(ftruncate), SCMP_SYS(unlink),
                                     SCMP_SYS(unlinkat), SCMP_SYS(rename),    SCMP_SYS(renameat),  SCMP_SYS(mkdir),
                                     SCMP_SYS(mkdirat),  SCMP_SYS(fallocate), SCMP_SYS(fchmod),    SCMP_SYS(fchown)};
    for (size_t i = 0; data_dir && i < sizeof(data_calls) / sizeof(data_calls[0]) && r == 0; i++)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, data_calls[i], 0);
    if (r == 0) {
        /* clone's flags are its first argument on x86-64. Without a cgroup around the enclave only
         * threads may be made (CLONE_THREAD set: the same address space, under the same RLIMIT_AS);
         * a new process, which would get an RLIMIT_AS of its own, is refused (EPERM). */
        const uint64_t ns =
            CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
        const uint64_t mask = new_processes ? ns : ns | CLONE_THREAD;
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                             arg0(SCMP_CMP_MASKED_EQ, mask, new_processes ? 0 : CLONE_THREAD));
    }
    if (r == 0) r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    /* Per-connection timeouts on the sockets the enclave holds (a stalled client must not pin
     * one of the worker's threads): SOL_SOCKET with SO_RCVTIMEO or SO_SNDTIMEO only. */
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setsockopt), 2, arg_n(1, SCMP_CMP_EQ, SOL_SOCKET, 0),
                             arg_n(2, SCMP_CMP_EQ, SO_RCVTIMEO, 0));
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setsockopt), 2, arg_n(1, SCMP_CMP_EQ, SOL_SOCKET, 0),
                             arg_n(2, SCMP_CMP_EQ, SO_SNDTIMEO, 0));
    if (r == 0) r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, arg0(SCMP_CMP_EQ, PR_GET_DUMPABLE, 0));
    if (r == 0) r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, arg0(SCMP_CMP_EQ, PR_SET_NAME, 0));
    if (r == 0) r = seccomp_load(ctx);
    if (r != 0) {
        errno = -r;
        rc = CL_RAISE_ERRNO(CL_ERR_INTERNAL, "seccomp: cannot install the allowlist");
    }
    seccomp_release(ctx);
    return rc;
}

static CL_MUST_USE cl_status drop_capabilities(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof(d));
    if (syscall(SYS_capset, &h, d) != 0) CL_FAIL_ERRNO(CL_ERR_INTERNAL, "enclave: cannot drop capabilities");
    return CL_OK;
}

/* Places fd at `target`, wherever both are now. */
static CL_MUST_USE cl_status place_fd(int *fd, int target)
{
    if (*fd == target) return fcntl(target, F_SETFD, 0) == 0 ? CL_OK : CL_ERR_IO;
    if (dup2(*fd, target) < 0) CL_FAIL_ERRNO(CL_ERR_IO, "enclave: dup2 to %d", target);
    *fd = target;
    return CL_OK;
}

static CL_MUST_USE cl_status child_setup(child_args *a)
{
    char c;
    if (read(a->sync_rd, &c, 1) != 1) CL_FAIL(CL_ERR_STATE, "enclave: the launcher went away");
    CL_GUARD(isolate_fs(a));
    if (sethostname("enclave", 7) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "enclave: sethostname");
    /* Move every descriptor we keep above the ones we place, then place them. */
    int *fds[] = {&a->nsm_fd, &a->ctl_fd, &a->console_fd, &a->null_fd, &a->err_wr};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        int hi = fcntl(*fds[i], F_DUPFD_CLOEXEC, 64);
        if (hi < 0) CL_FAIL_ERRNO(CL_ERR_IO, "enclave: dup");
        *fds[i] = hi;
    }
    int err_fd = a->err_wr;
    CL_GUARD(place_fd(&a->null_fd, 0));
    CL_GUARD(place_fd(&a->console_fd, 1));
    if (dup2(1, 2) < 0) CL_FAIL_ERRNO(CL_ERR_IO, "enclave: dup2");
    CL_GUARD(place_fd(&a->nsm_fd, CL_NSM_FD));
    CL_GUARD(place_fd(&a->ctl_fd, CL_VSOCK_FD));
    if (dup3(err_fd, 5, O_CLOEXEC) < 0) CL_FAIL_ERRNO(CL_ERR_IO, "enclave: dup3");
    a->err_wr = 5;
    if (syscall(SYS_close_range, 6U, ~0U, 0U) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "enclave: close_range");
    CL_GUARD(drop_capabilities());
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 ||
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        CL_FAIL_ERRNO(CL_ERR_INTERNAL, "enclave: prctl");
    /* The launcher blocks SIGTERM/SIGINT/SIGHUP for its signalfd; the program starts
     * with none blocked. */
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0) CL_FAIL_ERRNO(CL_ERR_INTERNAL, "enclave: sigprocmask");
    CL_GUARD(seccomp_install(a->new_processes, a->cfg->data_dir != NULL));
    /* Last, right before exec: nothing of the launcher's own code (nor a sanitizer
     * runtime, in test builds) has to allocate under the enclave's limit. RLIMIT_NPROC counts
     * the enclave user's tasks in its own user namespace (kernel/ucount.c); the kernel does not
     * enforce it when that user is root outside, where the cgroup's pids.max does the work. */
    struct rlimit as = {.rlim_cur = (rlim_t)a->cfg->memory_mib << 20, .rlim_max = (rlim_t)a->cfg->memory_mib << 20};
    struct rlimit zero = {0, 0}, nofile = {256, 256}, nproc = {a->max_tasks, a->max_tasks};
    if (setrlimit(RLIMIT_AS, &as) != 0 || setrlimit(RLIMIT_CORE, &zero) != 0 ||
        setrlimit(RLIMIT_NOFILE, &nofile) != 0 || setrlimit(RLIMIT_NPROC, &nproc) != 0)
        CL_FAIL_ERRNO(CL_ERR_IO, "enclave: setrlimit");
    return CL_OK;
}

static int child_main(void *arg)
{
    child_args *a = arg;
    if (child_setup(a) == CL_OK) {
        const cl_image_entry *exe = &a->img->entries[a->img->exe];
        const char *base = strrchr(exe->path, '/') + 1;
        char idenv[128];
        (void)snprintf(idenv, sizeof(idenv), "CLOISTER_ENCLAVE_ID=%s", a->id);
        char *argv[] = {CL_UNCONST(base), NULL};
        char *envp[] = {CL_UNCONST("PATH=/app"), CL_UNCONST("CLOISTER_ENCLAVE=sim"), idenv, NULL};
        execve(exe->path, argv, envp);
        (void)CL_RAISE_ERRNO(CL_ERR_IO, "enclave: cannot execute %s", exe->path);
    }
    const char *m = cl_error_message();
    ssize_t w = write(a->err_wr, m, strlen(m));
    (void)w;
    _exit(127);
}

/* --- the launcher: state, the device, vsock, the proxy -------------------- */

typedef struct relay_args {
    int enclave_fd;
    uint32_t port;         /* what the enclave asked for */
    cl_enclave_proxy dest; /* port 0: not allowed */
    char id[64];
    int host_fd;        /* publish_relay_main: the published address's accepted connection */
    char published[96]; /* its address, for the log */
} relay_args;

static CL_MUST_USE cl_status write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) CL_FAIL_ERRNO(CL_ERR_IO, "relay: write");
        p += w;
        n -= (size_t)w;
    }
    return CL_OK;
}

static int dial(const cl_enclave_proxy *d)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res = NULL;
    if (getaddrinfo(d->host, d->service, &hints, &res) != 0) return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            (void)close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    /* The relay forwards writes as they come (a TLS record, an HTTP header, then its body):
     * with Nagle's algorithm the second small write waits for the peer's delayed ACK, 40 ms
     * per request on Linux. The client in the enclave cannot set this on a socket it does
     * not see. */
    if (fd >= 0) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

static void relay_copy(int enclave_fd, int host, uint64_t *out, uint64_t *in);

/* One proxied connection: connect, answer the enclave's status byte, copy bytes both
 * ways until both sides have finished, then log the byte counts (never the bytes). */
static void *relay_main(void *arg)
{
    relay_args *r = arg;
    uint8_t status = 1;
    int host = -1;
    if (r->dest.port != 0) {
        host = dial(&r->dest);
        status = host >= 0 ? 0 : 2;
    }
    if (write_all(r->enclave_fd, &status, 1) != CL_OK || status != 0) {
        if (status == 1) CL_LOG_WARN("enclave %s: refused a connection to vsock port %u (not proxied)", r->id, r->port);
        if (status == 2)
            CL_LOG_WARN("enclave %s: proxy to %s:%s failed: cannot connect", r->id, r->dest.host, r->dest.service);
        goto done;
    }
    uint64_t out = 0, in = 0;
    relay_copy(r->enclave_fd, host, &out, &in);
    CL_LOG_INFO("enclave %s: proxy vsock port %u -> %s:%s closed: %llu bytes out, %llu bytes in", r->id, r->dest.port,
                r->dest.host, r->dest.service, (unsigned long long)out, (unsigned long long)in);
done:
    if (host >= 0) (void)close(host);
    (void)close(r->enclave_fd);
    free(r);
    atomic_fetch_sub(&active_relays, 1);
    return NULL;
}

/* Copies bytes both ways between the enclave's end and the host's until both sides have
 * finished (each direction shut down as its source ends); counts them, never looks at them. */
static void relay_copy(int enclave_fd, int host, uint64_t *out, uint64_t *in)
{
    bool eof_e = false, eof_h = false;
    while (!eof_e || !eof_h) {
        struct pollfd p[2] = {{.fd = eof_e ? -1 : enclave_fd, .events = POLLIN},
                              {.fd = eof_h ? -1 : host, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].revents == 0) continue;
            int from = i == 0 ? enclave_fd : host, to = i == 0 ? host : enclave_fd;
            uint8_t buf[16384];
            ssize_t n = recv(from, buf, sizeof(buf), 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0 || write_all(to, buf, (size_t)n) != CL_OK) {
                if (i == 0)
                    eof_e = true;
                else
                    eof_h = true;
                (void)shutdown(to, SHUT_WR);
                continue;
            }
            if (i == 0)
                *out += (uint64_t)n;
            else
                *in += (uint64_t)n;
        }
    }
}

/* One connection to a published address: the enclave got the other end of a socketpair, never
 * the host's TCP socket (as a Nitro enclave sees only vsock); copy until both sides finish. */
static void *publish_relay_main(void *arg)
{
    relay_args *r = arg;
    uint64_t out = 0, in = 0;
    relay_copy(r->enclave_fd, r->host_fd, &out, &in);
    CL_LOG_INFO("enclave %s: connection to %s (vsock port %u) closed: %llu bytes in, %llu bytes out", r->id,
                r->published, r->port, (unsigned long long)in, (unsigned long long)out);
    (void)close(r->host_fd);
    (void)close(r->enclave_fd);
    free(r);
    atomic_fetch_sub(&active_published_relays, 1);
    return NULL;
}

typedef struct listener {
    uint32_t port;
    int host_fd;    /* listening Unix socket */
    int enclave_fd; /* SEQPACKET to the enclave's cl_vsock_accept */
    char path[4200];
} listener;

/* A published TCP address: bound before the enclave starts (so that a taken port stops the
 * launch, with its reason), accepted from once the enclave listens on its vsock port; until
 * then connections wait in the backlog. */
typedef struct published {
    uint32_t port; /* the vsock port */
    int fd;        /* listening TCP socket */
    char text[96]; /* ADDR:PORT, for messages */
} published;

typedef struct launcher {
    const cl_enclave_config *cfg;
    char id[64];
    char name[CL_ENCLAVE_NAME_MAX + 1];
    char dir[4096];
    int pid_fd;     /* STATE/ID/pid, locked while we run (enclave_state.c) */
    uint32_t cid;   /* the vsock CID: cfg's, or the one claim_state found free */
    cpu_set_t cpus; /* where the enclave's threads may run */
    cl_nsm_device dev;
    listener listeners[MAX_LISTENERS];
    size_t nlisteners;
    published published[CL_ENCLAVE_MAX_PUBLISH];
    size_t npublished;
    cl_enclave_cgroup cg; /* what bounds the enclave as a whole (enclave_limits.c) */
    uint32_t max_tasks;
} launcher;

static void handle_nsm(launcher *l, int fd)
{
    uint8_t *req = malloc(CL_NSM_MAX_REQUEST + 1);
    cl_buf resp;
    cl_buf_init(&resp, CL_NSM_MAX_RESPONSE);
    if (req == NULL) return;
    ssize_t n = recv(fd, req, CL_NSM_MAX_REQUEST + 1, MSG_DONTWAIT | MSG_TRUNC);
    if (n > 0) {
        /* A request over the NSM's size limit is answered InputTooLarge by the parser. */
        size_t len = (size_t)n > CL_NSM_MAX_REQUEST + 1 ? CL_NSM_MAX_REQUEST + 1 : (size_t)n;
        if (cl_nsm_device_handle(&l->dev, req, len, &resp) == CL_OK) {
            ssize_t w = send(fd, resp.data, resp.len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w != (ssize_t)resp.len) CL_LOG_WARN("enclave %s: the device could not answer", l->id);
        } else {
            CL_LOG_ERROR("enclave %s: attestation device: %s", l->id, cl_error_message());
        }
    }
    free(req);
    cl_buf_free(&resp);
}

static void handle_listen(launcher *l, uint32_t port, int enclave_fd)
{
    listener *s = NULL;
    for (size_t i = 0; i < l->nlisteners; i++)
        if (l->listeners[i].port == port) {
            CL_LOG_WARN("enclave %s: vsock port %u is already listening", l->id, port);
            (void)close(enclave_fd);
            return;
        }
    if (l->nlisteners == MAX_LISTENERS) {
        CL_LOG_WARN("enclave %s: too many vsock listeners", l->id);
        (void)close(enclave_fd);
        return;
    }
    s = &l->listeners[l->nlisteners];
    (void)snprintf(s->path, sizeof(s->path), "%s/vsock-%u.sock", l->dir, port);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = -1;
    if (strlen(s->path) >= sizeof(sa.sun_path)) {
        CL_LOG_ERROR("enclave %s: socket path too long: %s (use a shorter --state-dir)", l->id, s->path);
        (void)close(enclave_fd);
        return;
    }
    memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(s->path, 0600) != 0 ||
        listen(fd, 16) != 0) {
        CL_LOG_ERROR("enclave %s: cannot listen on %s: %s", l->id, s->path, strerror(errno));
        if (fd >= 0) (void)close(fd);
        (void)close(enclave_fd);
        return;
    }
    /* Never block the launcher's loop on an enclave that does not accept. */
    (void)fcntl(enclave_fd, F_SETFL, fcntl(enclave_fd, F_GETFL) | O_NONBLOCK);
    s->port = port;
    s->host_fd = fd;
    s->enclave_fd = enclave_fd;
    l->nlisteners++;
}

static void handle_ctl(launcher *l, int ctl)
{
    uint8_t msg[16];
    size_t len = sizeof(msg);
    int fd = -1;
    if (cl_fd_recv(ctl, msg, &len, &fd) != CL_OK) return;
    if (fd < 0 || len != 5) {
        if (fd >= 0) (void)close(fd);
        return;
    }
    uint32_t port = (uint32_t)msg[1] << 24 | (uint32_t)msg[2] << 16 | (uint32_t)msg[3] << 8 | msg[4];
    if (msg[0] == 'L') {
        handle_listen(l, port, fd);
        return;
    }
    if (msg[0] != 'C') {
        (void)close(fd);
        return;
    }
    /* An enclave cannot make the launcher start threads without bound. */
    if (atomic_load(&active_relays) >= MAX_RELAYS) {
        CL_LOG_WARN("enclave %s: %d proxied connections already open; refusing another", l->id, MAX_RELAYS);
        (void)close(fd);
        return;
    }
    relay_args *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        (void)close(fd);
        return;
    }
    r->enclave_fd = fd;
    (void)snprintf(r->id, sizeof(r->id), "%s", l->id);
    r->port = port;
    for (size_t i = 0; i < l->cfg->proxy_count; i++)
        if (l->cfg->proxies[i].port == port) r->dest = l->cfg->proxies[i];
    pthread_t t;
    pthread_attr_t attr;
    (void)pthread_attr_init(&attr);
    (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    atomic_fetch_add(&active_relays, 1);
    if (pthread_create(&t, &attr, relay_main, r) != 0) {
        atomic_fetch_sub(&active_relays, 1);
        (void)close(fd);
        free(r);
    }
    (void)pthread_attr_destroy(&attr);
}

static CL_MUST_USE cl_status write_text(const char *dir, const char *name, const char *text)
{
    char path[4300];
    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot write %s", path);
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    if (close(fd) != 0 || w != (ssize_t)n) CL_FAIL_ERRNO(CL_ERR_IO, "cannot write %s", path);
    return CL_OK;
}

static CL_MUST_USE cl_status describe_json(const launcher *l, const cl_image *img, pid_t pid, cl_buf *out)
{
    const cl_enclave_config *c = l->cfg;
    /* nitro-cli's describe-enclaves fields first (the name is [A-Za-z0-9._-], the state
     * directory our own path), then ours. */
    CL_GUARD(cl_buf_printf(out,
                           "{\n  \"EnclaveName\": \"%s\",\n  \"EnclaveID\": \"%s\",\n  \"ProcessID\": %d,\n"
                           "  \"EnclaveCID\": %u,\n  \"NumberOfCPUs\": %d,\n  \"CPUIDs\": [",
                           l->name, l->id, (int)pid, l->cid, CPU_COUNT(&l->cpus)));
    for (int cpu = 0, k = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &l->cpus)) CL_GUARD(cl_buf_printf(out, "%s%d", k++ ? ", " : "", cpu));
    CL_GUARD(cl_buf_printf(out,
                           "],\n  \"MemoryMiB\": %llu,\n  \"State\": \"RUNNING\",\n  \"Flags\": \"%s\",\n"
                           "  \"StateDir\": \"%s\",\n",
                           (unsigned long long)c->memory_mib, c->debug ? "DEBUG_MODE" : "NONE", l->dir));
    /* Which limits apply (docs/threat-model.md): paths and reasons are the kernel's and ours,
     * with no '"' or '\' in them; one that had one would print as null. */
    bool process = l->cg.scope == CL_ENCLAVE_SCOPE_PROCESS;
    const char *where = process ? l->cg.why : l->cg.dir;
    bool plain = strpbrk(where, "\"\\") == NULL;
    CL_GUARD(cl_buf_printf(out,
                           "  \"Limits\": {\"Scope\": \"%s\", \"%s\": %s%s%s, \"MemoryMiB\": %llu, "
                           "\"MaxTasks\": %u, \"NewProcesses\": \"%s\"},\n",
                           cl_enclave_scope_name(l->cg.scope), process ? "Reason" : "Cgroup", plain ? "\"" : "",
                           plain ? where : "null", plain ? "\"" : "", (unsigned long long)c->memory_mib,
                           (unsigned)l->max_tasks, process ? "refused" : "allowed"));
    /* Published addresses (--publish): numeric addresses and ports, nothing to escape. */
    CL_GUARD(cl_buf_append_str(out, "  \"Published\": ["));
    for (size_t i = 0; i < l->npublished; i++)
        CL_GUARD(cl_buf_printf(out, "%s{\"Address\": \"%s\", \"VsockPort\": %u}", i ? ", " : "", l->published[i].text,
                               l->published[i].port));
    CL_GUARD(cl_buf_append_str(out, "],\n"));
    cl_buf m;
    cl_buf_init(&m, 4096);
    cl_status rc = cl_image_measurements_json(img, &m);
    if (rc == CL_OK) {
        /* Re-indent the measurements object into this one. */
        const char *s = cl_buf_cstr(&m) + 2; /* skip "{\n" */
        size_t n = strlen(s);
        rc = cl_buf_append(out, s, n >= 2 ? n - 2 : 0); /* drop the closing "}\n" */
    }
    cl_buf_free(&m);
    CL_GUARD(rc);
    return cl_buf_append_str(out, "}\n");
}

static void remove_state(launcher *l)
{
    char path[4300];
    for (size_t i = 0; i < l->nlisteners; i++) (void)unlink(l->listeners[i].path);
    static const char *const names[] = {"info.json", "console.log", "launcher.log", "name", "cid", "pid"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        (void)snprintf(path, sizeof(path), "%s/%s", l->dir, names[i]);
        (void)unlink(path);
    }
    (void)snprintf(path, sizeof(path), "%s/root", l->dir);
    (void)rmdir(path);
    (void)rmdir(l->dir);
    /* Last: until now describe-enclaves lists it, and terminate-enclave waits for it. */
    if (l->pid_fd >= 0) (void)close(l->pid_fd);
    l->pid_fd = -1;
}

/*
 * The CPUs of --cpu-count / --cpu-ids among those this launcher may use (its affinity, which
 * a cgroup cpuset or taskset may have narrowed). nitro-cli's allocator keeps CPU 0 and its
 * siblings for the parent instance; here the highest-numbered CPUs go first, so the host keeps
 * the low ones where it can. Sim enclaves may share CPUs: nothing here reserves them.
 */
static CL_MUST_USE cl_status choose_cpus(const cl_enclave_config *cfg, cpu_set_t *out)
{
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "sched_getaffinity");
    char list[256] = "";
    for (int cpu = 0, n = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed)) continue;
        size_t len = strlen(list);
        if (len + 16 < sizeof(list)) (void)snprintf(list + len, sizeof(list) - len, "%s%d", n++ ? "," : "", cpu);
    }
    CL_ENSURE(cfg->cpu_count == 0 || cfg->cpu_id_count == 0, CL_ERR_USAGE,
              "give --cpu-count or --cpu-ids, not both (as nitro-cli)");
    if (cfg->cpu_id_count > 0) {
        CPU_ZERO(out);
        for (size_t i = 0; i < cfg->cpu_id_count; i++) {
            uint32_t cpu = cfg->cpu_ids[i];
            CL_ENSURE(cpu < CPU_SETSIZE && CPU_ISSET((int)cpu, &allowed), CL_ERR_USAGE,
                      "--cpu-ids: CPU %u is not one this launcher may use (%s)", (unsigned)cpu, list);
            CL_ENSURE(!CPU_ISSET((int)cpu, out), CL_ERR_USAGE, "--cpu-ids: CPU %u is listed twice", (unsigned)cpu);
            CPU_SET((int)cpu, out);
        }
        return CL_OK;
    }
    if (cfg->cpu_count == 0) {
        *out = allowed;
        return CL_OK;
    }
    CL_ENSURE(cfg->cpu_count <= (uint32_t)CPU_COUNT(&allowed), CL_ERR_USAGE,
              "--cpu-count %u: this launcher may use %d CPUs (%s)", (unsigned)cfg->cpu_count, CPU_COUNT(&allowed),
              list);
    CPU_ZERO(out);
    uint32_t left = cfg->cpu_count;
    for (int cpu = CPU_SETSIZE - 1; cpu >= 0 && left > 0; cpu--) {
        if (!CPU_ISSET(cpu, &allowed)) continue;
        CPU_SET(cpu, out);
        left--;
    }
    return CL_OK;
}

/* The name nitro-cli would give: the image file's name without its extension, in the
 * characters names may have. */
static void default_name(const char *image_path, char *out, size_t cap)
{
    const char *base = strrchr(image_path, '/');
    base = base != NULL ? base + 1 : image_path;
    size_t n = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot != NULL && dot != base) n = (size_t)(dot - base);
    if (n > cap - 8) n = cap - 8; /* room for a -N suffix */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = base[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                  ch == '_' || ch == '-';
        out[k++] = ok ? ch : '_';
    }
    out[k] = '\0';
    if (k == 0) (void)snprintf(out, cap, "enclave");
}

/*
 * STATE/ID with its lock, its name and its vsock CID, under the state directory's own lock
 * (STATE/.lock), so that two launchers starting together cannot take one name or CID: an
 * explicit --enclave-name or --cid in use is refused; the default name gets -2, -3, ... as
 * needed, and the default CID is the lowest from 16 that no running enclave has.
 */
static CL_MUST_USE cl_status claim_state(launcher *l, const cl_enclave_config *cfg, bool *made)
{
    char path[4300];
    cl_status rc = CL_OK;
    cl_enclave_entry *running = NULL;
    size_t n = 0;
    (void)snprintf(path, sizeof(path), "%s/.lock", cfg->state_dir);
    int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lock < 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot open %s", path);
    while (flock(lock, LOCK_EX) != 0) {
        if (errno != EINTR) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot lock %s", path);
    }
    CL_GUARD_GOTO(cl_enclave_list(cfg->state_dir, &running, &n));
    char base[CL_ENCLAVE_NAME_MAX + 1];
    if (cfg->name != NULL) {
        CL_GUARD_GOTO(cl_enclave_check_name(cfg->name));
        (void)snprintf(base, sizeof(base), "%s", cfg->name);
    } else {
        default_name(cfg->image_path, base, sizeof(base));
    }
    for (int k = 1;; k++) {
        if (k == 1)
            (void)snprintf(l->name, sizeof(l->name), "%s", base);
        else
            (void)snprintf(l->name, sizeof(l->name), "%s-%d", base, k);
        bool taken = false;
        for (size_t i = 0; i < n && !taken; i++) taken = strcmp(running[i].name, l->name) == 0;
        if (!taken) break;
        CL_ENSURE_GOTO(cfg->name == NULL, CL_ERR_EXISTS,
                       "an enclave named '%s' is running already; give another --enclave-name", cfg->name);
        CL_ENSURE_GOTO(k < 1000, CL_ERR_LIMIT, "1000 enclaves named %s-N are running", base);
    }
    l->cid = cfg->cid != 0 ? cfg->cid : 16;
    for (;;) {
        size_t holder = n;
        for (size_t i = 0; i < n && holder == n; i++)
            if (running[i].cid == l->cid) holder = i;
        if (holder == n) break;
        CL_ENSURE_GOTO(cfg->cid == 0, CL_ERR_EXISTS, "vsock CID %u is enclave %s's; give another --cid",
                       (unsigned)cfg->cid, running[holder].id);
        CL_ENSURE_GOTO(l->cid < UINT32_MAX - 1, CL_ERR_LIMIT, "no free vsock CID");
        l->cid++;
    }
    if (mkdir(l->dir, 0700) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot create %s", l->dir);
    *made = true;
    (void)snprintf(path, sizeof(path), "%s/pid", l->dir);
    l->pid_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (l->pid_fd < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot create %s", path);
    if (flock(l->pid_fd, LOCK_EX | LOCK_NB) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot lock %s", path);
    char text[32];
    int len = snprintf(text, sizeof(text), "%d\n", (int)getpid());
    if (write(l->pid_fd, text, (size_t)len) != len) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot write %s", path);
    char name[CL_ENCLAVE_NAME_MAX + 2];
    (void)snprintf(name, sizeof(name), "%s\n", l->name);
    CL_GUARD_GOTO(write_text(l->dir, "name", name));
    (void)snprintf(name, sizeof(name), "%u\n", (unsigned)l->cid);
    CL_GUARD_GOTO(write_text(l->dir, "cid", name));
out:
    free(running);
    (void)close(lock); /* drops the state directory's lock */
    return rc;
}

cl_status cl_enclave_parse_proxy(const char *spec, cl_enclave_proxy *out)
{
    memset(out, 0, sizeof(*out));
    const char *eq = strchr(spec, '=');
    const char *colon = eq != NULL ? strrchr(eq, ':') : NULL;
    char *end = NULL;
    unsigned long port = eq != NULL ? strtoul(spec, &end, 10) : 0;
    CL_ENSURE(eq != NULL && colon != NULL && end == eq && port > 0 && port <= UINT32_MAX && colon > eq + 1 &&
                  colon[1] != '\0' && (size_t)(colon - eq - 1) < sizeof(out->host) &&
                  strlen(colon + 1) < sizeof(out->service),
              CL_ERR_USAGE, "--proxy '%s': expected VSOCKPORT=HOST:PORT (e.g. 8000=kms.example:443)", spec);
    out->port = (uint32_t)port;
    const char *h = eq + 1;
    size_t hl = (size_t)(colon - h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* [v6]:port */
        h++;
        hl -= 2;
    }
    memcpy(out->host, h, hl);
    out->host[hl] = '\0';
    (void)snprintf(out->service, sizeof(out->service), "%s", colon + 1);
    return CL_OK;
}

cl_status cl_enclave_parse_publish(const char *spec, cl_enclave_publish *out)
{
    memset(out, 0, sizeof(*out));
    const char *eq = strrchr(spec, '=');
    const char *colon = NULL;
    for (const char *p = spec; eq != NULL && p < eq; p++)
        if (*p == ':') colon = p; /* the last ':' before '=': [v6]:port, addr:port */
    const char *port_text = colon != NULL ? colon + 1 : spec;
    char *end = NULL;
    unsigned long vport = eq != NULL ? strtoul(eq + 1, &end, 10) : 0;
    size_t hl = colon != NULL ? (size_t)(colon - spec) : 0;
    size_t pl = eq != NULL ? (size_t)(eq - port_text) : 0;
    CL_ENSURE(eq != NULL && end != NULL && *end == '\0' && vport > 0 && vport <= UINT32_MAX && pl > 0 &&
                  pl < sizeof(out->service) && hl < sizeof(out->host) && (colon == NULL || hl > 0),
              CL_ERR_USAGE,
              "--publish '%s': expected [ADDR:]PORT=VSOCKPORT (e.g. 4996=4996, or 0.0.0.0:443=4996 to be reached "
              "from other machines)",
              spec);
    for (size_t i = 0; i < pl; i++)
        CL_ENSURE(port_text[i] >= '0' && port_text[i] <= '9', CL_ERR_USAGE,
                  "--publish '%s': the TCP port must be a number ([ADDR:]PORT=VSOCKPORT)", spec);
    out->port = (uint32_t)vport;
    memcpy(out->service, port_text, pl);
    const char *h = spec;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* [v6]:port */
        h++;
        hl -= 2;
    }
    if (hl == 0)
        (void)snprintf(out->host, sizeof(out->host), "127.0.0.1");
    else
        memcpy(out->host, h, hl);
    return CL_OK;
}

/* Hands the enclave one end of a fresh socketpair for the accepted TCP connection c and
 * relays between the other end and c in a thread of its own (at most MAX_PUBLISHED_RELAYS at
 * once). Takes c. */
static void publish_accepted(launcher *l, const published *pub, int to_enclave, int c)
{
    int sp[2] = {-1, -1};
    relay_args *r = NULL;
    if (atomic_load(&active_published_relays) >= MAX_PUBLISHED_RELAYS) {
        CL_LOG_WARN("enclave %s: %d relayed connections already open; refusing one to %s", l->id, MAX_PUBLISHED_RELAYS,
                    pub->text);
        goto fail;
    }
    /* The relay forwards writes as they come: no Nagle delay on the client's side either. */
    int one = 1;
    (void)setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    r = calloc(1, sizeof(*r));
    if (r == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) goto fail;
    if (cl_fd_send(to_enclave, "A", 1, sp[1]) != CL_OK) {
        CL_LOG_WARN("enclave %s: could not hand a connection to %s (vsock port %u) to the enclave", l->id, pub->text,
                    pub->port);
        cl_error_clear();
        goto fail;
    }
    (void)close(sp[1]);
    sp[1] = -1;
    r->enclave_fd = sp[0];
    r->host_fd = c;
    r->port = pub->port;
    (void)snprintf(r->id, sizeof(r->id), "%s", l->id);
    (void)snprintf(r->published, sizeof(r->published), "%s", pub->text);
    pthread_t t;
    pthread_attr_t attr;
    (void)pthread_attr_init(&attr);
    (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    atomic_fetch_add(&active_published_relays, 1);
    int pc = pthread_create(&t, &attr, publish_relay_main, r);
    (void)pthread_attr_destroy(&attr);
    if (pc == 0) return;
    atomic_fetch_sub(&active_published_relays, 1);
fail:
    free(r);
    if (c >= 0) (void)close(c);
    if (sp[0] >= 0) (void)close(sp[0]);
    if (sp[1] >= 0) (void)close(sp[1]);
}

/* Binds every --publish address (see published). */
static CL_MUST_USE cl_status publish_bind(launcher *l)
{
    for (size_t i = 0; i < l->cfg->publish_count; i++) {
        const cl_enclave_publish *p = &l->cfg->publish[i];
        published *s = &l->published[l->npublished];
        (void)snprintf(s->text, sizeof(s->text), "%s%s%s:%s", strchr(p->host, ':') ? "[" : "", p->host,
                       strchr(p->host, ':') ? "]" : "", p->service);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
        struct addrinfo *ai = NULL;
        int g = getaddrinfo(p->host, p->service, &hints, &ai);
        CL_ENSURE(g == 0 && ai != NULL, CL_ERR_USAGE, "--publish %s: cannot resolve %s: %s", s->text, p->host,
                  gai_strerror(g));
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int one = 1;
        int err = 0;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0)
            err = errno;
        freeaddrinfo(ai);
        if (err != 0) {
            if (fd >= 0) (void)close(fd);
            errno = err;
            CL_FAIL_ERRNO(CL_ERR_IO, "--publish %s: cannot listen there (another program on that port? choose another)",
                          s->text);
        }
        s->fd = fd;
        s->port = p->port;
        l->npublished++;
    }
    return CL_OK;
}

cl_status cl_enclave_default_state_dir(cl_buf *out)
{
    const char *env = getenv("CLOISTER_STATE_DIR");
    if (env != NULL && env[0] != '\0') return cl_buf_append_str(out, env);
    env = getenv("XDG_RUNTIME_DIR");
    if (env != NULL && env[0] != '\0') return cl_buf_printf(out, "%s/cloister/enclaves", env);
    return cl_buf_printf(out, "/tmp/cloister-%u/enclaves", (unsigned)getuid());
}

static CL_MUST_USE cl_status make_dirs(const char *dir)
{
    char path[4096];
    (void)snprintf(path, sizeof(path), "%s/", dir);
    for (char *s = path + 1; *s != '\0'; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) CL_FAIL_ERRNO(CL_ERR_IO, "cannot create %s", path);
        *s = '/';
    }
    return CL_OK;
}

static CL_MUST_USE cl_status write_id_maps(pid_t pid)
{
    char path[64], text[64];
    (void)snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
    (void)snprintf(text, sizeof(text), "%d %u 1\n", ENCLAVE_UID, (unsigned)getuid());
    CL_GUARD(write_text("/", path + 1, text));
    (void)snprintf(path, sizeof(path), "/proc/%d/setgroups", (int)pid);
    CL_GUARD(write_text("/", path + 1, "deny\n"));
    (void)snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
    (void)snprintf(text, sizeof(text), "%d %u 1\n", ENCLAVE_UID, (unsigned)getgid());
    return write_text("/", path + 1, text);
}

static CL_MUST_USE cl_status serve(launcher *l, pid_t pid, int nsm, int ctl, int sigfd, int *exit_code)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) CL_FAIL_ERRNO(CL_ERR_IO, "pidfd_open");
    for (;;) {
        struct pollfd p[4 + MAX_LISTENERS + CL_ENCLAVE_MAX_PUBLISH];
        int to_enclave[CL_ENCLAVE_MAX_PUBLISH];       /* the listener's enclave_fd of each published poll entry */
        memset(to_enclave, 0xff, sizeof(to_enclave)); /* -1: its port has no listener yet */
        size_t n = 0;
        p[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = sigfd, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = nsm, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = ctl, .events = POLLIN};
        for (size_t i = 0; i < l->nlisteners; i++)
            p[n++] = (struct pollfd){.fd = l->listeners[i].host_fd, .events = POLLIN};
        size_t first_published = n;
        for (size_t i = 0; i < l->npublished; i++) {
            /* Not before the enclave listens on its port: until then the backlog holds them. */
            int efd = -1;
            for (size_t j = 0; j < l->nlisteners; j++)
                if (l->listeners[j].port == l->published[i].port) efd = l->listeners[j].enclave_fd;
            to_enclave[i] = efd;
            p[n++] = (struct pollfd){.fd = efd >= 0 ? l->published[i].fd : -1, .events = POLLIN};
        }
        if (poll(p, n, -1) < 0) {
            if (errno == EINTR) continue;
            (void)close(pidfd);
            CL_FAIL_ERRNO(CL_ERR_IO, "launcher: poll");
        }
        if (p[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                CL_LOG_INFO("enclave %s: terminating (signal %u)", l->id, si.ssi_signo);
            (void)kill(pid, SIGKILL);
        }
        if (p[2].revents & POLLIN) handle_nsm(l, nsm);
        if (p[2].revents & (POLLHUP | POLLERR)) nsm = -1; /* poll ignores negative fds */
        if (p[3].revents & POLLIN)
            handle_ctl(l, ctl);
        else if (p[3].revents & (POLLHUP | POLLERR))
            ctl = -1;
        for (size_t i = 0; i < l->nlisteners; i++) {
            if (!(p[4 + i].revents & POLLIN)) continue;
            int c = accept4(l->listeners[i].host_fd, NULL, NULL, SOCK_CLOEXEC);
            if (c < 0) continue;
            if (cl_fd_send(l->listeners[i].enclave_fd, "A", 1, c) != CL_OK)
                CL_LOG_WARN("enclave %s: could not hand a connection on port %u to the enclave", l->id,
                            l->listeners[i].port);
            (void)close(c);
        }
        for (size_t i = 0; i < l->npublished; i++) {
            if (to_enclave[i] < 0 || !(p[first_published + i].revents & POLLIN)) continue;
            int c = accept4(l->published[i].fd, NULL, NULL, SOCK_CLOEXEC);
            if (c < 0) continue;
            publish_accepted(l, &l->published[i], to_enclave[i], c);
        }
        if (p[0].revents & POLLIN) {
            int st = 0;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
            }
            *exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
            (void)close(pidfd);
            return CL_OK;
        }
    }
}

cl_status cl_enclave_run(const cl_enclave_config *cfg, int *exit_code)
{
    cl_status rc = CL_OK;
    cl_image img;
    cl_image_init(&img);
    cl_attest_platform platform;
    cl_attest_platform_init(&platform);
    launcher *l = calloc(1, sizeof(*l));
    child_args a = {0};
    int nsm[2] = {-1, -1}, ctl[2] = {-1, -1}, sync[2] = {-1, -1}, err[2] = {-1, -1};
    int console = -1, devnull = -1, sigfd = -1;
    char *stack = NULL;
    pid_t pid = -1;
    bool state_made = false;
    cl_buf info;
    cl_buf_init(&info, 1 << 16);
    char root[4200];
    sigset_t mask, oldmask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, &oldmask);

    CL_ENSURE_GOTO(l != NULL, CL_ERR_NOMEM, "out of memory");
    l->cfg = cfg;
    l->pid_fd = -1;
    CL_ENSURE_GOTO(cfg->memory_mib >= 16 && cfg->memory_mib <= ((uint64_t)1 << 20), CL_ERR_USAGE,
                   "--memory %llu MiB: give 16 MiB to 1 TiB", (unsigned long long)cfg->memory_mib);
    if (cfg->name != NULL) CL_GUARD_GOTO(cl_enclave_check_name(cfg->name));
    CL_GUARD_GOTO(choose_cpus(cfg, &l->cpus));
    CL_GUARD_GOTO(cl_image_load(cfg->image_path, &img));
    {
        uint8_t rnd[8];
        CL_GUARD_GOTO(cl_random(rnd, sizeof(rnd)));
        char hex[2 * sizeof(rnd) + 1];
        (void)snprintf(l->id, sizeof(l->id), "i-sim-enc%s", cl_hex_encode(rnd, sizeof(rnd), hex, sizeof(hex)));
    }
    if (cfg->pki_dir != NULL) {
        CL_GUARD_CTX_GOTO(cl_attest_platform_load(&platform, cfg->pki_dir), "attestation PKI %s", cfg->pki_dir);
        CL_GUARD_GOTO(cl_attest_platform_start_enclave(&platform, l->id, (int64_t)time(NULL)));
    } else {
        CL_LOG_WARN("no --pki: the enclave's attestation requests will fail (create one with 'cloister enclave "
                    "init-root')");
    }
    cl_nsm_device_init(&l->dev, &img, cfg->debug, l->id, cfg->pki_dir != NULL ? &platform : NULL);

    CL_GUARD_GOTO(make_dirs(cfg->state_dir));
    {
        /* The default lives under /tmp when there is no XDG_RUNTIME_DIR: refuse a
         * directory someone else made for us (sockets and the console go there). */
        struct stat sb;
        if (lstat(cfg->state_dir, &sb) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "state directory %s", cfg->state_dir);
        CL_ENSURE_GOTO(S_ISDIR(sb.st_mode) && sb.st_uid == getuid() && (sb.st_mode & 022) == 0, CL_ERR_DENIED,
                       "state directory %s is not a directory of ours that only we can write (mode %o, owner %u); "
                       "choose another with --state-dir",
                       cfg->state_dir, (unsigned)(sb.st_mode & 07777), (unsigned)sb.st_uid);
    }
    (void)snprintf(l->dir, sizeof(l->dir), "%s/%s", cfg->state_dir, l->id);
    CL_GUARD_GOTO(claim_state(l, cfg, &state_made));
    CL_GUARD_GOTO(publish_bind(l));
    (void)snprintf(root, sizeof(root), "%s/root", l->dir);
    if (mkdir(root, 0700) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot create %s", root);

    /* The enclave's limits as a whole, before it exists (enclave_limits.c). */
    l->max_tasks = cfg->max_tasks != 0 ? cfg->max_tasks : CL_ENCLAVE_MAX_TASKS_DEFAULT;
    {
        char name[80];
        (void)snprintf(name, sizeof(name), "cloister-%s", l->id);
        const cl_cgroup_sys sys = {.mounts = "/proc/self/mounts", .self = "/proc/self/cgroup"};
        CL_GUARD_GOTO(
            cl_enclave_cgroup_make(&sys, cfg->cgroup, name, (uint64_t)cfg->memory_mib << 20, l->max_tasks, &l->cg));
        if (l->cg.scope == CL_ENCLAVE_SCOPE_PROCESS)
            CL_LOG_WARN("enclave %s: no cgroup bounds it as a whole (%s): --memory limits its one process "
                        "(RLIMIT_AS) and new processes are refused; threads are allowed",
                        l->id, l->cg.why);
        else
            CL_LOG_INFO("enclave %s: %s %s bounds it as a whole: %llu MiB, %u processes and threads", l->id,
                        cl_enclave_scope_name(l->cg.scope), l->cg.dir, (unsigned long long)cfg->memory_mib,
                        l->max_tasks);
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, nsm) != 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) != 0 || pipe2(sync, O_CLOEXEC) != 0 ||
        pipe2(err, O_CLOEXEC) != 0)
        CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "launcher: socketpair/pipe");
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot open /dev/null");
    if (cfg->debug && cfg->attach_console) {
        console = fcntl(1, F_DUPFD_CLOEXEC, 3);
        if (console < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "launcher: dup stdout");
    } else if (cfg->debug) {
        char path[4300];
        (void)snprintf(path, sizeof(path), "%s/console.log", l->dir);
        console = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (console < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot create %s", path);
    }
    a = (child_args){.cfg = cfg,
                     .img = &img,
                     .root = root,
                     .id = l->id,
                     .sync_rd = sync[0],
                     .err_wr = err[1],
                     .nsm_fd = nsm[1],
                     .ctl_fd = ctl[1],
                     .console_fd = console >= 0 ? console : devnull,
                     .null_fd = devnull,
                     .new_processes = l->cg.scope != CL_ENCLAVE_SCOPE_PROCESS,
                     .max_tasks = l->max_tasks};
    stack = malloc(CHILD_STACK);
    CL_ENSURE_GOTO(stack != NULL, CL_ERR_NOMEM, "out of memory");
    pid = clone(child_main, stack + CHILD_STACK,
                CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD, &a);
    if (pid < 0) {
        if (errno == EPERM || errno == EINVAL || errno == ENOSPC || errno == EACCES)
            CL_FAIL_ERRNO_GOTO(CL_ERR_UNSUPPORTED,
                               "the kernel forbids unprivileged user namespaces, which the sim enclave needs "
                               "(sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces)");
        CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "launcher: clone");
    }
    (void)close(sync[0]);
    sync[0] = -1;
    (void)close(err[1]);
    err[1] = -1;
    (void)close(nsm[1]);
    nsm[1] = -1;
    (void)close(ctl[1]);
    ctl[1] = -1;
    CL_GUARD_CTX_GOTO(write_id_maps(pid), "launcher: user namespace id maps");
    /* Before it runs: every thread it makes inherits the mask, and its seccomp filter does not
     * allow sched_setaffinity, so it cannot widen it. */
    if (sched_setaffinity(pid, sizeof(l->cpus), &l->cpus) != 0)
        CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "launcher: cannot pin the enclave to its CPUs");
    /* Before it runs a line of its own: the image it writes into its tmpfs is counted too. */
    CL_GUARD_CTX_GOTO(cl_enclave_cgroup_enter(&l->cg, pid), "launcher: the enclave's cgroup");
    if (write(sync[1], "g", 1) != 1) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "launcher: cannot start the child");
    {
        char msg[1100];
        ssize_t n;
        do {
            n = read(err[0], msg, sizeof(msg) - 1);
        } while (n < 0 && errno == EINTR);
        if (n > 0) {
            msg[n] = '\0';
            int st;
            (void)waitpid(pid, &st, 0);
            pid = -1;
            CL_FAIL_GOTO(CL_ERR_STATE, "the enclave did not start: %s", msg);
        }
    }
    sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sigfd < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "signalfd");
    CL_GUARD_GOTO(describe_json(l, &img, getpid(), &info));
    CL_GUARD_GOTO(write_text(l->dir, "info.json", cl_buf_cstr(&info)));
    if (cfg->detached) {
        /* The caller's stderr is a terminal or a pipe someone waits on: from here on the
         * launcher's lines go to STATE/ID/launcher.log; then the caller learns the enclave runs. */
        char path[4300];
        (void)snprintf(path, sizeof(path), "%s/launcher.log", l->dir);
        int logfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (logfd < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot create %s", path);
        (void)fflush(stderr);
        bool moved = dup2(logfd, STDERR_FILENO) >= 0;
        (void)close(logfd);
        if (!moved) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "launcher: dup2");
        cl_buf msg;
        cl_buf_init(&msg, (size_t)1 << 16);
        cl_status mrc = cl_buf_append_u8(&msg, 'R');
        if (mrc == CL_OK) mrc = cl_buf_append(&msg, info.data, info.len);
        if (mrc == CL_OK && send(cfg->ready_fd, msg.data, msg.len, MSG_NOSIGNAL) != (ssize_t)msg.len)
            mrc = CL_RAISE_ERRNO(CL_ERR_IO, "launcher: cannot tell the caller the enclave runs");
        cl_buf_free(&msg);
        CL_GUARD_GOTO(mrc);
    } else if (!cfg->quiet) {
        fputs(cl_buf_cstr(&info), stdout);
        (void)fflush(stdout);
    }
    CL_GUARD_GOTO(serve(l, pid, nsm[0], ctl[0], sigfd, exit_code));
    pid = -1;
out:
    if (pid > 0) {
        int st;
        (void)kill(pid, SIGKILL);
        (void)waitpid(pid, &st, 0);
    }
    int fds[] = {nsm[0], nsm[1], ctl[0], ctl[1], sync[0], sync[1], err[0], err[1], console, devnull, sigfd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0) (void)close(fds[i]);
    if (l != NULL) {
        cl_enclave_cgroup_remove(&l->cg); /* the enclave is reaped by now */
        for (size_t i = 0; i < l->nlisteners; i++) {
            (void)close(l->listeners[i].host_fd);
            (void)close(l->listeners[i].enclave_fd);
        }
        for (size_t i = 0; i < l->npublished; i++) (void)close(l->published[i].fd);
        if (state_made) remove_state(l);
        if (l->pid_fd >= 0) (void)close(l->pid_fd);
    }
    free(stack);
    free(l);
    cl_buf_free(&info);
    cl_attest_platform_free(&platform);
    cl_image_free(&img);
    sigprocmask(SIG_SETMASK, &oldmask, NULL);
    return rc;
}

/*
 * The launcher in a process of its own, as nitro-cli's run-enclave leaves its enclave process
 * behind: fork, a new session (no terminal, so no SIGHUP or ^C from the caller's), stdin and
 * stdout on /dev/null, stderr the caller's until the enclave runs (launcher.log after). It
 * reports on a SOCK_SEQPACKET pair, one message: 'R' and the description once the enclave
 * runs, or 'E', the status and the message if it could not start. The caller returns on that
 * message, or on end of file if the launcher died without one.
 */
cl_status cl_enclave_start(const cl_enclave_config *cfg, cl_buf *info, pid_t *launcher_pid)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0)
        CL_FAIL_ERRNO(CL_ERR_IO, "launcher: socketpair");
    (void)fflush(stdout);
    (void)fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        (void)close(sp[0]);
        (void)close(sp[1]);
        errno = e;
        CL_FAIL_ERRNO(CL_ERR_IO, "launcher: fork");
    }
    if (pid == 0) {
        (void)close(sp[0]);
        cl_enclave_config c = *cfg;
        c.detached = true;
        c.ready_fd = sp[1];
        c.quiet = true;
        c.attach_console = false;
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        cl_status rc = setsid() < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0
                           ? CL_RAISE_ERRNO(CL_ERR_IO, "launcher: cannot detach")
                           : CL_OK;
        /* SIGTERM is the launcher's own "stop the enclave" (prctl(2): the signal comes when the
         * thread that forked ends; a parent gone before the prctl is seen by getppid). */
        if (rc == CL_OK && cfg->stop_with_parent && prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0)
            rc = CL_RAISE_ERRNO(CL_ERR_IO, "launcher: prctl(PR_SET_PDEATHSIG)");
        if (rc == CL_OK && cfg->stop_with_parent && getppid() != parent)
            rc = CL_RAISE(CL_ERR_IO, "launcher: the process that started it ended before the enclave ran");
        int code = 1;
        if (rc == CL_OK) rc = cl_enclave_run(&c, &code);
        if (rc != CL_OK) {
            /* After 'R' the caller is gone and this send fails; before, it is the answer. */
            char msg[1200];
            int n = snprintf(msg, sizeof(msg), "E%c%s", (char)(rc & 0x7f), cl_error_message());
            (void)send(sp[1], msg, (size_t)(n < (int)sizeof(msg) ? n : (int)sizeof(msg) - 1), MSG_NOSIGNAL);
            code = 1;
        }
        _exit(code & 0xff);
    }
    (void)close(sp[1]);
    cl_status rc = CL_OK;
    uint8_t *msg = malloc((size_t)1 << 16);
    if (msg == NULL) {
        (void)kill(pid, SIGTERM);
        CL_FAIL_GOTO(CL_ERR_NOMEM, "out of memory");
    }
    ssize_t n;
    do {
        n = recv(sp[0], msg, (size_t)1 << 16, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0 && msg[0] == 'R') {
        CL_GUARD_GOTO(cl_buf_append(info, msg + 1, (size_t)n - 1));
        *launcher_pid = pid;
        goto out;
    }
    /* It did not start: collect the launcher, which exits right after its message. */
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (n >= 2 && msg[0] == 'E') {
        cl_status code = msg[1] >= CL_ERR_USAGE && msg[1] <= CL_ERR_INTERNAL ? (cl_status)msg[1] : CL_ERR_INTERNAL;
        CL_FAIL_GOTO(code, "%.*s", (int)(n - 2), (const char *)msg + 2);
    }
    CL_FAIL_GOTO(CL_ERR_INTERNAL, "the launcher ended (status %d) before the enclave ran", st);
out:
    free(msg);
    (void)close(sp[0]);
    return rc;
}
