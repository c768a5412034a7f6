/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sim enclave backend, host side (library cloister_enclave): enclave images and
 * their measurements, the attestation device the launcher serves, and the launcher.
 *
 * Image format and measurements: docs/formats/enclave-image.md. In short, an image is
 * a sorted list of (kind, path, mode, bytes) entries; the PCRs are those NSM ExtendPCR
 * gives from an all-zero register, PCR = SHA-384(0^48 || SHA-384(measured bytes)):
 *   PCR0  the whole image without its signature      (Nitro: the enclave image file)
 *   PCR1  the runtime entries: loader and libraries  (Nitro: kernel and bootstrap)
 *   PCR2  the application entries: exe and files     (Nitro: user application)
 *   PCR8  the signing certificate (DER), when signed (Nitro: the same)
 */
#ifndef CLOISTER_ENCLAVE_H
#define CLOISTER_ENCLAVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cloister/attestation.h"
#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/nsm.h"
#include "cloister/platform.h"

#define CL_IMAGE_MAX_LEN ((size_t)1 << 30)
#define CL_IMAGE_MAX_ENTRIES 4096
#define CL_IMAGE_MAX_PATH 255

typedef enum cl_image_kind {
    CL_IMAGE_EXE = 1,     /* the program the launcher runs (exactly one) */
    CL_IMAGE_RUNTIME = 2, /* the dynamic loader and shared libraries */
    CL_IMAGE_FILE = 3,    /* data files given with --file */
} cl_image_kind;

typedef struct cl_image_entry {
    cl_image_kind kind;
    uint16_t mode; /* normalised: 0555 (exe, runtime) or 0444 (files) */
    char path[CL_IMAGE_MAX_PATH + 1];
    const uint8_t *data; /* points into the image */
    uint64_t size;
} cl_image_entry;

typedef struct cl_image {
    cl_buf raw;      /* the whole image file */
    size_t body_len; /* bytes covered by PCR0 and the signature */
    size_t count;
    cl_image_entry *entries; /* sorted by path */
    size_t exe;              /* index of the CL_IMAGE_EXE entry */
    bool signed_;
    const uint8_t *cert; /* DER, inside raw */
    size_t cert_len;
    uint8_t pcr0[48], pcr1[48], pcr2[48], pcr8[48];
} cl_image;

/* An input for cl_image_build. */
typedef struct cl_image_input {
    cl_image_kind kind;
    const char *src;  /* file on the host */
    const char *path; /* absolute path inside the enclave */
} cl_image_input;

typedef struct cl_image_build_params {
    const char *exe;             /* host path of the program */
    const cl_image_input *files; /* --file SRC[:DEST] */
    size_t file_count;
    bool with_libraries;              /* add the exe's loader and libraries (via ldd) */
    const char *sign_key, *sign_cert; /* PEM files; both or neither */
} cl_image_build_params;

void cl_image_init(cl_image *img);
void cl_image_free(cl_image *img);

/* Builds an image in memory (out->raw) and measures it. Same inputs, same bytes. */
CL_MUST_USE cl_status cl_image_build(const cl_image_build_params *params, cl_image *out);
/* Parses and measures an image (untrusted bytes), checking its signature if any. */
CL_MUST_USE cl_status cl_image_parse(const uint8_t *p, size_t n, cl_image *out);
CL_MUST_USE cl_status cl_image_load(const char *path, cl_image *out);
/* {"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": ..., ...}} as nitro-cli prints. */
CL_MUST_USE cl_status cl_image_measurements_json(const cl_image *img, cl_buf *out);
/* The measurements and what the image holds besides them, for `cloister enclave build` and
 * `measure`: {"Measurements": ..., "Runtime": {"Libraries": [{"Path", "Bytes"}...], "Count",
 * "Bytes", "MiB"}, "ImageBytes", "ImageMiB"}: the loader and libraries are the part of the
 * enclave's TCB that is not ours (docs/threat-model.md, "TCB"). */
CL_MUST_USE cl_status cl_image_summary_json(const cl_image *img, cl_buf *out);
/* PCR = SHA-384(pcr || SHA-384(data)) */
CL_MUST_USE cl_status cl_image_pcr_extend_digest(uint8_t pcr[48], const uint8_t *data, size_t len);
/* The libraries `exe` needs, from `ldd`: absolute paths, one per line in out. */
CL_MUST_USE cl_status cl_image_list_libraries(const char *exe, cl_buf *out);

/* --- the attestation device ------------------------------------------------ */

typedef struct cl_nsm_device {
    uint8_t pcrs[CL_NSM_MAX_PCRS][CL_NSM_PCR_LEN];
    uint32_t locked; /* bit i: PCR i is read-only */
    char module_id[80];
    cl_attest_platform *platform; /* signs documents; NULL: Attestation is InternalError */
    int64_t (*now_ms)(void);      /* the clock documents are stamped with (tests fix it) */
} cl_nsm_device;

/*
 * Starts the device the way the Nitro hypervisor does: PCR0, 1, 2 and 8 hold the
 * launcher's measurements of the image (all zero for PCR0-2 in debug mode), PCRs 0-15
 * are locked (the enclave can extend only 16-31, as on Nitro), the rest are zero.
 */
void cl_nsm_device_init(cl_nsm_device *dev, const cl_image *img, bool debug, const char *module_id,
                        cl_attest_platform *platform);
/*
 * Answers one request from the enclave. Malformed requests are answered
 * {"Error": "InvalidArgument"} (never a failure of the launcher); a failure is
 * returned only when no answer could be encoded.
 */
CL_MUST_USE cl_status cl_nsm_device_handle(cl_nsm_device *dev, const uint8_t *req, size_t n, cl_buf *resp);

/* --- the enclave's limits as a whole (src/host/enclave_limits.c) ------------------ */

#define CL_CGROUP_PATH 4096
#define CL_ENCLAVE_MAX_TASKS_DEFAULT 1024 /* processes and threads: pool, OpenMP, relays */

typedef enum cl_enclave_scope {
    CL_ENCLAVE_SCOPE_PROCESS = 0, /* no cgroup: RLIMIT_AS on the one process allowed */
    CL_ENCLAVE_SCOPE_CGROUP_V2,
    CL_ENCLAVE_SCOPE_CGROUP_V1,
} cl_enclave_scope;

typedef struct cl_enclave_cgroup {
    cl_enclave_scope scope;
    char dir[CL_CGROUP_PATH];      /* v2: the enclave's cgroup; v1: its memory cgroup */
    char pids_dir[CL_CGROUP_PATH]; /* v1: its pids cgroup */
    char why[1024];                /* scope process: why no cgroup */
} cl_enclave_cgroup;

/* Where the kernel tells this process about cgroups; tests point them at a tree of their own. */
typedef struct cl_cgroup_sys {
    const char *mounts; /* /proc/self/mounts */
    const char *self;   /* /proc/self/cgroup */
} cl_cgroup_sys;

/*
 * Makes the cgroup named `name` the enclave will run in, with memory_bytes of memory (no swap)
 * and max_tasks processes and threads in all, as the top of enclave_limits.c says: under
 * `parent` (a delegated cgroup v2 directory: failing there is an error), or found by itself
 * when parent is NULL, or none when parent is "none". Finding nothing usable is not an error:
 * out->scope is then CL_ENCLAVE_SCOPE_PROCESS and out->why says why.
 */
CL_MUST_USE cl_status cl_enclave_cgroup_make(const cl_cgroup_sys *sys, const char *parent, const char *name,
                                             uint64_t memory_bytes, uint32_t max_tasks, cl_enclave_cgroup *out);
/* Moves pid into the cgroup (nothing for scope process). */
CL_MUST_USE cl_status cl_enclave_cgroup_enter(const cl_enclave_cgroup *cg, pid_t pid);
/* Removes the cgroup, killing what is left in it. */
void cl_enclave_cgroup_remove(cl_enclave_cgroup *cg);
/* "cgroup v2", "cgroup v1", "process". */
const char *cl_enclave_scope_name(cl_enclave_scope s);

/* --- the launcher ------------------------------------------------------------ */

#define CL_ENCLAVE_MAX_PROXIES 8
/* nitro-cli's enclave names: letters, digits, '-', '_', '.'; ours are at most this long. */
#define CL_ENCLAVE_NAME_MAX 64
#define CL_ENCLAVE_ID_MAX 63
/* CPU ids as sched_setaffinity takes them (glibc's cpu_set_t). */
#define CL_ENCLAVE_MAX_CPUS 1024

typedef struct cl_enclave_proxy {
    uint32_t port;  /* vsock port the enclave connects to */
    char host[256]; /* where the launcher connects */
    char service[16];
} cl_enclave_proxy;

/* --publish [ADDR:]PORT=VSOCKPORT: a TCP address on the host whose connections go to the
 * enclave's listening vsock port (as docker's -p; bytes only, so TLS ends inside the enclave). */
#define CL_ENCLAVE_MAX_PUBLISH 8
typedef struct cl_enclave_publish {
    uint32_t port; /* the enclave's vsock port */
    char host[64]; /* the address to listen on: 127.0.0.1 when not given */
    char service[16];
} cl_enclave_publish;

/* Parses --publish's argument. CL_ERR_USAGE with the expected form. */
CL_MUST_USE cl_status cl_enclave_parse_publish(const char *spec, cl_enclave_publish *out);

typedef struct cl_enclave_config {
    const char *image_path;
    const char *pki_dir;   /* cloister enclave init-root's directory; NULL: no attestation */
    const char *state_dir; /* parent of the per-enclave directories */
    bool debug;
    uint64_t memory_mib;
    uint32_t cid; /* 0: the lowest from 16 no running enclave of state_dir has (nitro-cli allocates one) */
    cl_enclave_proxy proxies[CL_ENCLAVE_MAX_PROXIES];
    size_t proxy_count;
    cl_enclave_publish publish[CL_ENCLAVE_MAX_PUBLISH];
    size_t publish_count;
    bool quiet;          /* no start-up JSON on stdout */
    bool attach_console; /* debug: the enclave's console is the launcher's stdout */
    const char *cgroup;  /* NULL: found by itself; "none"; or a delegated cgroup v2 directory */
    uint32_t max_tasks;  /* processes and threads in all; 0: CL_ENCLAVE_MAX_TASKS_DEFAULT */
    /* nitro-cli's --enclave-name: unique among the running enclaves of state_dir. NULL: the
     * image file's name without its extension, made unique with -2, -3, ... */
    const char *name;
    /* The CPUs the enclave's threads may run on (sched_setaffinity; the enclave's seccomp
     * filter refuses sched_setaffinity, so it cannot widen them): cpu_count CPUs of those the
     * launcher may use, the highest-numbered first (CPU 0 stays the host's, as on Nitro), or
     * exactly cpu_ids. Neither: every CPU the launcher may use. */
    uint32_t cpu_count;
    const uint32_t *cpu_ids;
    size_t cpu_id_count;
    /* The launcher runs in the background (cl_enclave_start): once the enclave runs, its
     * stderr goes to STATE/ID/launcher.log, and its description to ready_fd. */
    bool detached;
    /* cl_enclave_start only: the launcher stops the enclave (as on SIGTERM) when the process that
     * started it ends, however it ends (PR_SET_PDEATHSIG): for a caller that owns the enclave, such
     * as the training-job runner, which its supervisor may have to SIGKILL. Without it the enclave
     * outlives its starter, as nitro-cli's run-enclave does. */
    bool stop_with_parent;
    int ready_fd; /* with detached: a SOCK_SEQPACKET socket */
    /* Sim only: a host directory bind-mounted writable at /data (an embedded store's files; the
     * root stays a read-only tmpfs). A Nitro enclave has no disk: use a network store there. */
    const char *data_dir;
} cl_enclave_config;

/* Checks a name for --enclave-name: 1..CL_ENCLAVE_NAME_MAX of [A-Za-z0-9._-]. */
CL_MUST_USE cl_status cl_enclave_check_name(const char *name);

/* Parses "PORT=HOST:PORT". */
CL_MUST_USE cl_status cl_enclave_parse_proxy(const char *spec, cl_enclave_proxy *out);
/* The default state directory: $CLOISTER_STATE_DIR, else $XDG_RUNTIME_DIR/cloister, else /tmp/cloister-UID. */
CL_MUST_USE cl_status cl_enclave_default_state_dir(cl_buf *out);
/*
 * Runs an enclave until it exits (or the launcher gets SIGTERM/SIGINT): measures the
 * image, starts the program isolated, serves the device and the vsock emulation, and
 * removes its state directory at the end. *exit_code is the program's exit status
 * (128 + signal when killed).
 */
CL_MUST_USE cl_status cl_enclave_run(const cl_enclave_config *cfg, int *exit_code);
/*
 * nitro-cli's run-enclave: runs the enclave as cl_enclave_run does, in a launcher process of
 * its own in the background (a new session, no terminal), and returns once the enclave runs
 * with its description (the JSON `run` prints) appended to info and the launcher's pid. A
 * failure to start is this call's failure, with the launcher's message. cfg->ready_fd and
 * cfg->detached are set here.
 */
CL_MUST_USE cl_status cl_enclave_start(const cl_enclave_config *cfg, cl_buf *info, pid_t *launcher);

/* --- the running enclaves of a state directory (src/host/enclave_state.c) ------------ */

/*
 * An enclave is running while its launcher holds the lock on STATE/ID/pid (flock), which the
 * kernel releases however the launcher ends: a directory left by a launcher killed with
 * SIGKILL is not running, and its pid (maybe reused since) is never signalled.
 */
typedef struct cl_enclave_entry {
    char id[CL_ENCLAVE_ID_MAX + 1];
    char name[CL_ENCLAVE_NAME_MAX + 1];
    uint32_t cid;
    pid_t launcher;
    bool started; /* info.json written: the enclave's program runs */
} cl_enclave_entry;

/* Checks an enclave ID as run makes them (i-sim-enc + hex): anything else could name a path
 * outside the state directory. */
CL_MUST_USE cl_status cl_enclave_check_id(const char *id);
/* The running enclaves of state_dir (none if it does not exist), by ID; free *out. */
CL_MUST_USE cl_status cl_enclave_list(const char *state_dir, cl_enclave_entry **out, size_t *n);
/* The running enclave called `name` (CL_ERR_NOT_FOUND if none). */
CL_MUST_USE cl_status cl_enclave_find_name(const char *state_dir, const char *name, cl_enclave_entry *out);
/* Sends the launcher SIGTERM (it stops the enclave and removes its state) and waits up to
 * timeout_ms for it to exit; *terminated says whether it did. CL_ERR_NOT_FOUND if the enclave
 * is not running. */
CL_MUST_USE cl_status cl_enclave_terminate(const char *state_dir, const char *id, int timeout_ms, bool *terminated);
/*
 * nitro-cli's console: copies a debug-mode enclave's console (STATE/ID/console.log) to out_fd,
 * then follows it as it grows until the enclave ends, out_fd is closed, or timeout_ms passes
 * (-1: no timeout). CL_ERR_NOT_FOUND when the enclave is not running or has no console.
 */
CL_MUST_USE cl_status cl_enclave_console(const char *state_dir, const char *id, int out_fd, int timeout_ms);

#endif
