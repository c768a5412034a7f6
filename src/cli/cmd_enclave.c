/* SPDX-License-Identifier: Apache-2.0 */
/* cloister enclave ...: the sim backend: attestation PKI (init-root), images (build),
 * the launcher (run) and running enclaves (describe, console, terminate). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cloister/attestation.h"
#include "cloister/enclave.h"
#include "cloister/fs.h"

#include "cli.h"

/*
 * Each subcommand has its usage text; `cloister enclave --help` prints them all. Next to our
 * verbs are nitro-cli's (docs.aws.amazon.com/enclaves/latest/user/nitro-enclave-cli-ref.html:
 * build-enclave, run-enclave, describe-enclaves, describe-eif, console, terminate-enclave), with
 * their option names, so that a nitro-cli user's commands run here as typed where they mean
 * something for the sim backend.
 */
static const char enclave_intro[] =
    "Usage: cloister enclave COMMAND [options]   (cloister enclave COMMAND --help for one)\n"
    "\n"
    "The sim enclave backend: its attestation PKI, images, the launcher and running enclaves.\n"
    "nitro-cli's commands and options are accepted alongside ours (in parentheses).\n"
    "\n";

static const char init_root_usage[] =
    "Usage: cloister enclave init-root -o DIR [--root-days N] [--platform-days N] [--force]\n"
    "\n"
    "Creates the sim backend's attestation PKI in DIR (made 0700 if missing), as Nitro's:\n"
    "  root.pem, root.key          a self-signed P-384 root CA (default 30 years): give root.pem to\n"
    "                              verifiers (cloister attest verify --root, the KMS)\n"
    "  platform.pem, platform.key  a P-384 platform CA issued by the root (pathlen 0, default 1 year):\n"
    "                              the launcher issues each enclave's short-lived signing certificate\n"
    "                              with it, so attestation documents carry cabundle [root, platform]\n"
    "Keys are PKCS#8 PEM, mode 0600. Existing files are kept unless --force.\n";

static const char build_usage[] =
    "Usage: cloister enclave build --exe BIN [--file SRC[:DEST]]... [--no-libs]\n"
    "                              [--sign-key KEY.pem --sign-cert CERT.pem] -o IMAGE [--force]\n"
    "       cloister enclave build-enclave ... (nitro-cli's names: --output-file IMAGE,\n"
    "                              --private-key KEY.pem, --signing-certificate CERT.pem)\n"
    "\n"
    "Packs BIN (at /app/NAME), the loader and libraries it needs (from ldd, at their paths) and\n"
    "each --file (default /files/NAME) into a deterministic image and prints its measurements as\n"
    "nitro-cli does (PCR0 image, PCR1 runtime, PCR2 application, PCR8 signing certificate), then\n"
    "the loader and libraries it packed with their sizes (Runtime) and the image's size.\n"
    "Images are built from files, not from Docker images: nitro-cli's --docker-uri and\n"
    "--docker-dir have no meaning here and are refused. See docs/formats/enclave-image.md.\n";

static const char measure_usage[] = "Usage: cloister enclave measure IMAGE\n"
                                    "       cloister enclave describe-eif --eif-path IMAGE\n"
                                    "\n"
                                    "Prints an image's measurements, libraries and size, as build does.\n";

static const char run_usage[] =
    "Usage: cloister enclave run IMAGE [options]            (stays in the foreground)\n"
    "       cloister enclave run-enclave --eif-path IMAGE [options]   (returns once it runs)\n"
    "       cloister enclave run-enclave --config FILE [options]\n"
    "\n"
    "Options (nitro-cli's names in parentheses):\n"
    "  --memory MiB (default 256)      --cpu-count N | --cpu-ids ID...   --cid N (--enclave-cid N)\n"
    "  --debug (--debug-mode)          --attach-console                  --enclave-name NAME\n"
    "  --pki DIR   --proxy VSOCKPORT=HOST:PORT...   --state-dir DIR   --quiet\n"
    "  --cgroup DIR|none   --max-tasks N   --data HOSTDIR\n"
    "  --publish [ADDR:]PORT=VSOCKPORT...\n"
    "\n"
    "Starts the image's program isolated (namespaces, read-only root of the image's files only,\n"
    "no network, seccomp, memory limit) with two channels: the attestation device (NSM requests;\n"
    "documents signed with the platform CA of --pki, from init-root, over the PCRs measured here)\n"
    "and vsock: the enclave may connect to the vsock ports given with --proxy, which are forwarded\n"
    "to HOST:PORT, and host programs may connect to the ports it listens on at\n"
    "STATE/ID/vsock-PORT.sock, and at a TCP address given with --publish (ADDR defaults to\n"
    "127.0.0.1; bound before the enclave starts, so a taken port stops the launch). --debug zeroes PCR0-2 (as Nitro's "
    "debug mode) and keeps the\n"
    "console (see 'console', or --attach-console to print it here; it needs --debug).\n"
    "\n"
    "run prints the enclave's description (nitro-cli's EnclaveName, EnclaveID, ProcessID,\n"
    "EnclaveCID, NumberOfCPUs, CPUIDs, MemoryMiB, then ours), stays in the foreground until the\n"
    "enclave exits and exits with its status. run-enclave, as nitro-cli's, leaves the launcher in\n"
    "the background and exits 0 once the enclave runs, printing the same description; with\n"
    "--attach-console it stays in the foreground as run does. Its --config FILE is nitro-cli's\n"
    "JSON: enclave_name, cpu_count, cpu_ids, memory_mib, eif_path, enclave_cid, debug_mode,\n"
    "attach_console.\n"
    "\n"
    "--cpu-count N pins the enclave's threads to N of the CPUs the launcher may use (the\n"
    "highest-numbered first; CPU 0 stays the host's where it can) and --cpu-ids to those\n"
    "(sched_setaffinity; the enclave cannot undo it: its seccomp filter refuses\n"
    "sched_setaffinity). Without either it may use them all. Unlike Nitro's, the CPUs are not\n"
    "taken away from the host or from other enclaves. --enclave-name (default: the image's file\n"
    "name without its extension, then -2, -3, ...) is unique among running enclaves.\n"
    "\n"
    "--memory (16 MiB to 1 TiB) and --max-tasks (processes and threads, default 1024) bound the\n"
    "enclave as a whole in a cgroup of its own: under --cgroup DIR (a cgroup v2 directory delegated\n"
    "to you), else one found (cgroup v2 or v1 with the memory and pids controllers). With none\n"
    "(--cgroup none, or none usable: a warning says why) the enclave may not start processes, only\n"
    "threads, and --memory limits its one process. describe shows which applies (\"Limits\").\n"
    "--data HOSTDIR (sim only) bind-mounts HOSTDIR writable at /data inside the enclave, for an\n"
    "embedded store (cloister-api's SQLite); the rest of the root stays read-only. A Nitro enclave\n"
    "has no disk: use a network store there (Redis, docs/api.md).\n"
    "State: --state-dir, $CLOISTER_STATE_DIR, $XDG_RUNTIME_DIR/cloister/enclaves or\n"
    "/tmp/cloister-UID/enclaves.\n";

static const char describe_usage[] =
    "Usage: cloister enclave describe [--state-dir DIR]\n"
    "       cloister enclave describe-enclaves [--state-dir DIR]\n"
    "\n"
    "Prints the running enclaves as a JSON list: each one's description as run printed it.\n";

static const char console_usage[] =
    "Usage: cloister enclave console ID | --enclave-id ID | --enclave-name NAME\n"
    "                                [--disconnect-timeout SECONDS] [--state-dir DIR]\n"
    "\n"
    "Prints a debug-mode enclave's console and follows it, as nitro-cli's console does, until\n"
    "the enclave ends or --disconnect-timeout passes. Production enclaves have no console.\n";

static const char terminate_usage[] =
    "Usage: cloister enclave terminate ID | --enclave-id ID | --enclave-name NAME | --all\n"
    "                                  [--state-dir DIR]\n"
    "       cloister enclave terminate-enclave (the same)\n"
    "\n"
    "Stops enclaves and waits until they are gone: one, or --all of this state directory. For\n"
    "each, as nitro-cli: \"Successfully terminated enclave ID.\" on stderr and\n"
    "{\"EnclaveID\": ID, \"Terminated\": true} on stdout.\n";

static void enclave_help_all(void)
{
    const char *const all[] = {init_root_usage, build_usage,   measure_usage,  run_usage,
                               describe_usage,  console_usage, terminate_usage};
    fputs(enclave_intro, stdout);
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (i > 0) fputs("\n", stdout);
        fputs(all[i], stdout);
    }
}

/* getopt_long's error for the option it just refused: unknown, or missing its value. */
static int option_error(const char *cmd, int c, char **argv)
{
    if (c == ':') return cli_usage_error(cmd, "%s needs a value", argv[optind - 1]);
    return cli_usage_error(cmd, "unknown option %s", argv[optind - 1]);
}

static int enclave_init_root(int argc, char **argv)
{
    const char *cmd = "enclave init-root";
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"root-days", required_argument, NULL, 'r'},
        {"platform-days", required_argument, NULL, 'p'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    uint64_t root_days = 30ULL * 365, platform_days = 365;
    int ec = CLI_EXIT_OK;
    bool force = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': dir = optarg; break;
        case 'r':
            if ((ec = cli_uint_option(cmd, "--root-days", optarg, 1, 36500, &root_days)) != CLI_EXIT_OK) return ec;
            break;
        case 'p':
            if ((ec = cli_uint_option(cmd, "--platform-days", optarg, 1, 36500, &platform_days)) != CLI_EXIT_OK)
                return ec;
            break;
        case 'f': force = true; break;
        case 'h': fputs(init_root_usage, stdout); return CLI_EXIT_OK;
        default: return option_error(cmd, c, argv);
        }
    }
    if (dir == NULL) return cli_usage_error(cmd, "-o DIR is required");
    if (optind != argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (platform_days > root_days) return cli_usage_error(cmd, "the platform CA cannot outlive the root");

    cl_status rc = cl_attest_pki_create(dir, (int64_t)time(NULL), (int)root_days, (int)platform_days, force);
    if (rc == CL_OK)
        printf("attestation root and platform CA written to %s (root.pem, root.key, platform.pem, platform.key)\n",
               dir);
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
}

#define MAX_FILES 256

/* The measurements, the libraries with their sizes, the image's size. */
static int print_measurements(const cl_image *img)
{
    cl_buf json;
    cl_buf_init(&json, 4096);
    cl_status rc = cl_image_summary_json(img, &json);
    if (rc == CL_OK) fputs(cl_buf_cstr(&json), stdout);
    cl_buf_free(&json);
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
}

static CL_MUST_USE cl_status write_image(const char *path, const cl_buf *raw, bool force)
{
    cl_outfile o;
    CL_GUARD(cl_outfile_open(&o, path, force, 0644));
    size_t off = 0;
    while (off < raw->len) {
        ssize_t w = write(o.fd, raw->data + off, raw->len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            cl_outfile_abort(&o);
            CL_FAIL_ERRNO(CL_ERR_IO, "cannot write %s", path);
        }
        off += (size_t)w;
    }
    return cl_outfile_commit(&o);
}

static int enclave_build(int argc, char **argv)
{
    const char *cmd = strcmp(argv[0], "build-enclave") == 0 ? "enclave build-enclave" : "enclave build";
    static const struct option opts[] = {
        {"exe", required_argument, NULL, 'e'},
        {"file", required_argument, NULL, 'F'},
        {"no-libs", no_argument, NULL, 'n'},
        {"sign-key", required_argument, NULL, 'k'},
        {"private-key", required_argument, NULL, 'k'},
        {"sign-cert", required_argument, NULL, 'c'},
        {"signing-certificate", required_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'},
        {"output-file", required_argument, NULL, 'o'},
        {"docker-uri", required_argument, NULL, 'D'},
        {"docker-dir", required_argument, NULL, 'D'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static cl_image_input files[MAX_FILES];
    static char dests[MAX_FILES][CL_IMAGE_MAX_PATH + 1];
    static char srcs[MAX_FILES][4096];
    size_t nfiles = 0;
    cl_image_build_params p = {.with_libraries = true};
    const char *out = NULL;
    bool force = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'e': p.exe = optarg; break;
        case 'F': {
            if (nfiles == MAX_FILES) return cli_usage_error(cmd, "at most %d --file", MAX_FILES);
            const char *colon = strchr(optarg, ':');
            size_t sl = colon != NULL ? (size_t)(colon - optarg) : strlen(optarg);
            if (sl == 0 || sl >= sizeof(srcs[0])) return cli_usage_error(cmd, "--file '%s': bad source", optarg);
            memcpy(srcs[nfiles], optarg, sl);
            srcs[nfiles][sl] = '\0';
            if (colon != NULL) {
                (void)snprintf(dests[nfiles], sizeof(dests[0]), "%s", colon + 1);
            } else {
                const char *base = strrchr(srcs[nfiles], '/');
                (void)snprintf(dests[nfiles], sizeof(dests[0]), "/files/%s", base != NULL ? base + 1 : srcs[nfiles]);
            }
            files[nfiles] = (cl_image_input){.kind = CL_IMAGE_FILE, .src = srcs[nfiles], .path = dests[nfiles]};
            nfiles++;
            break;
        }
        case 'n': p.with_libraries = false; break;
        case 'k': p.sign_key = optarg; break;
        case 'c': p.sign_cert = optarg; break;
        case 'o': out = optarg; break;
        case 'D':
            return cli_usage_error(cmd, "--docker-uri and --docker-dir have no meaning here: images are built from "
                                        "files, not from Docker images; give the program with --exe BIN and its data "
                                        "with --file SRC[:DEST]");
        case 'f': force = true; break;
        case 'h': fputs(build_usage, stdout); return CLI_EXIT_OK;
        default: return option_error(cmd, c, argv);
        }
    }
    if (p.exe == NULL) return cli_usage_error(cmd, "--exe BIN is required");
    if (out == NULL) return cli_usage_error(cmd, "-o IMAGE (--output-file IMAGE) is required");
    if (optind != argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if ((p.sign_key == NULL) != (p.sign_cert == NULL))
        return cli_usage_error(cmd, "--sign-key and --sign-cert (--private-key, --signing-certificate) go together");
    p.files = files;
    p.file_count = nfiles;
    cl_image img;
    cl_image_init(&img);
    cl_status rc = cl_image_build(&p, &img);
    if (rc == CL_OK) rc = write_image(out, &img.raw, force);
    int ec = rc == CL_OK ? print_measurements(&img) : cli_report(rc);
    cl_image_free(&img);
    return ec;
}

static int enclave_measure(int argc, char **argv)
{
    const char *cmd = strcmp(argv[0], "describe-eif") == 0 ? "enclave describe-eif" : "enclave measure";
    static const struct option opts[] = {
        {"eif-path", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': path = optarg; break;
        case 'h': fputs(measure_usage, stdout); return CLI_EXIT_OK;
        default: return option_error(cmd, c, argv);
        }
    }
    if (path == NULL && optind == argc - 1) path = argv[optind++];
    if (path == NULL || optind != argc) return cli_usage_error(cmd, "expected one IMAGE (or --eif-path IMAGE)");
    cl_image img;
    cl_image_init(&img);
    cl_status rc = cl_image_load(path, &img);
    int ec = rc == CL_OK ? print_measurements(&img) : cli_report(rc);
    cl_image_free(&img);
    return ec;
}

/* What run / run-enclave were given, before it becomes a cl_enclave_config. */
typedef struct run_args {
    const char *image;
    const char *state;
    const char *config; /* nitro-cli's --config FILE */
    bool nitro_set;     /* a setting --config also makes was given as an option */
    uint32_t cpu_ids[CL_ENCLAVE_MAX_CPUS];
    size_t n_cpu_ids;
} run_args;

static int add_cpu_id(const char *cmd, const char *text, run_args *ra)
{
    uint64_t v = 0;
    int ec = cli_uint_option(cmd, "--cpu-ids", text, 0, CL_ENCLAVE_MAX_CPUS - 1, &v);
    if (ec != CLI_EXIT_OK) return ec;
    if (ra->n_cpu_ids == CL_ENCLAVE_MAX_CPUS) return cli_usage_error(cmd, "too many --cpu-ids");
    ra->cpu_ids[ra->n_cpu_ids++] = (uint32_t)v;
    return CLI_EXIT_OK;
}

/*
 * nitro-cli's run-enclave --config FILE (its documented JSON: enclave_name, cpu_count, cpu_ids,
 * memory_mib, eif_path, enclave_cid, debug_mode, attach_console) into cfg. Strings point into
 * *doc, which the caller frees after the run.
 */
static int run_config(const char *cmd, run_args *ra, cl_enclave_config *cfg, json_t **doc)
{
    json_error_t err;
    json_t *j = json_load_file(ra->config, JSON_REJECT_DUPLICATES, &err);
    if (j == NULL) return cli_usage_error(cmd, "--config %s: %s (line %d)", ra->config, err.text, err.line);
    *doc = j;
    if (!json_is_object(j)) return cli_usage_error(cmd, "--config %s: not a JSON object", ra->config);
    static const char *const known[] = {"enclave_name", "cpu_count",   "cpu_ids",    "memory_mib",
                                        "eif_path",     "enclave_cid", "debug_mode", "attach_console"};
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) ok = ok || strcmp(key, known[i]) == 0;
        if (!ok)
            return cli_usage_error(cmd,
                                   "--config %s: unknown key \"%s\" (nitro-cli's keys: enclave_name, cpu_count, "
                                   "cpu_ids, memory_mib, eif_path, enclave_cid, debug_mode, attach_console)",
                                   ra->config, key);
    }
    if ((v = json_object_get(j, "eif_path")) != NULL) {
        if (!json_is_string(v)) return cli_usage_error(cmd, "--config %s: \"eif_path\" must be a string", ra->config);
        ra->image = json_string_value(v);
    }
    if ((v = json_object_get(j, "enclave_name")) != NULL) {
        if (!json_is_string(v))
            return cli_usage_error(cmd, "--config %s: \"enclave_name\" must be a string", ra->config);
        cfg->name = json_string_value(v);
    }
    uint64_t mem = cfg->memory_mib, cid = 0, cpus = 0;
    const struct {
        const char *key;
        uint64_t min, max, *out;
    } nums[3] = {{"memory_mib", 16, (uint64_t)1 << 20, &mem},
                 {"enclave_cid", 4, UINT32_MAX - 1, &cid},
                 {"cpu_count", 1, CL_ENCLAVE_MAX_CPUS, &cpus}};
    for (size_t i = 0; i < 3; i++) {
        if ((v = json_object_get(j, nums[i].key)) == NULL) continue;
        if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)nums[i].min ||
            (uint64_t)json_integer_value(v) > nums[i].max)
            return cli_usage_error(cmd, "--config %s: \"%s\" must be an integer %llu..%llu", ra->config, nums[i].key,
                                   (unsigned long long)nums[i].min, (unsigned long long)nums[i].max);
        *nums[i].out = (uint64_t)json_integer_value(v);
    }
    cfg->memory_mib = mem;
    if (cid != 0) cfg->cid = (uint32_t)cid;
    cfg->cpu_count = (uint32_t)cpus;
    if ((v = json_object_get(j, "cpu_ids")) != NULL) {
        size_t i;
        json_t *id;
        if (!json_is_array(v)) return cli_usage_error(cmd, "--config %s: \"cpu_ids\" must be a list", ra->config);
        json_array_foreach(v, i, id)
        {
            if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= CL_ENCLAVE_MAX_CPUS ||
                ra->n_cpu_ids == CL_ENCLAVE_MAX_CPUS)
                return cli_usage_error(cmd, "--config %s: \"cpu_ids\" holds CPU numbers 0..%d", ra->config,
                                       CL_ENCLAVE_MAX_CPUS - 1);
            ra->cpu_ids[ra->n_cpu_ids++] = (uint32_t)json_integer_value(id);
        }
    }
    const char *const flags[] = {"debug_mode", "attach_console"};
    bool *outs[] = {&cfg->debug, &cfg->attach_console};
    for (size_t i = 0; i < 2; i++) {
        if ((v = json_object_get(j, flags[i])) == NULL) continue;
        if (!json_is_boolean(v))
            return cli_usage_error(cmd, "--config %s: \"%s\" must be true or false", ra->config, flags[i]);
        *outs[i] = json_is_true(v);
    }
    return CLI_EXIT_OK;
}

static int enclave_run(int argc, char **argv)
{
    const bool nitro = strcmp(argv[0], "run-enclave") == 0;
    const char *cmd = nitro ? "enclave run-enclave" : "enclave run";
    enum { O_PKI = 1000, O_CPU_COUNT, O_CPU_IDS, O_NAME, O_CONFIG, O_EIF, O_DATA };
    static const struct option opts[] = {
        {"pki", required_argument, NULL, 'p'},
        {"debug", no_argument, NULL, 'd'},
        {"debug-mode", no_argument, NULL, 'd'},
        {"memory", required_argument, NULL, 'm'},
        {"cid", required_argument, NULL, 'c'},
        {"enclave-cid", required_argument, NULL, 'c'},
        {"cpu-count", required_argument, NULL, O_CPU_COUNT},
        {"cpu-ids", required_argument, NULL, O_CPU_IDS},
        {"enclave-name", required_argument, NULL, O_NAME},
        {"eif-path", required_argument, NULL, O_EIF},
        {"config", required_argument, NULL, O_CONFIG},
        {"proxy", required_argument, NULL, 'x'},
        {"publish", required_argument, NULL, 'P'},
        {"state-dir", required_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'},
        {"attach-console", no_argument, NULL, 'a'},
        {"cgroup", required_argument, NULL, 'g'},
        {"max-tasks", required_argument, NULL, 't'},
        {"data", required_argument, NULL, O_DATA},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static cl_enclave_config cfg;
    static run_args ra;
    memset(&cfg, 0, sizeof(cfg));
    memset(&ra, 0, sizeof(ra));
    cfg.memory_mib = 256;
    uint64_t v = 0;
    int c, ec = CLI_EXIT_OK;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) != -1) {
        /* The settings nitro-cli's --config also makes. */
        if (c == 'd' || c == 'm' || c == 'c' || c == O_CPU_COUNT || c == O_CPU_IDS || c == O_NAME || c == O_EIF ||
            c == 'a')
            ra.nitro_set = true;
        switch (c) {
        case 'p': cfg.pki_dir = optarg; break;
        case 'd': cfg.debug = true; break;
        case 'm':
            if ((ec = cli_uint_option(cmd, "--memory (MiB)", optarg, 16, (uint64_t)1 << 20, &v)) != CLI_EXIT_OK)
                return ec;
            cfg.memory_mib = v;
            break;
        case 'c':
            /* vsock CIDs 0-2 are reserved (hypervisor, local, host), as on Nitro. */
            if ((ec = cli_uint_option(cmd, "--cid", optarg, 4, UINT32_MAX - 1, &v)) != CLI_EXIT_OK) return ec;
            cfg.cid = (uint32_t)v;
            break;
        case O_CPU_COUNT:
            if ((ec = cli_uint_option(cmd, "--cpu-count", optarg, 1, CL_ENCLAVE_MAX_CPUS, &v)) != CLI_EXIT_OK)
                return ec;
            cfg.cpu_count = (uint32_t)v;
            break;
        case O_CPU_IDS:
            /* nitro-cli takes them space-separated (--cpu-ids 1 3); commas and repeats too. */
            for (const char *t = optarg; *t != '\0';) {
                char one[16];
                size_t n = strcspn(t, ",");
                if (n == 0 || n >= sizeof(one)) return cli_usage_error(cmd, "--cpu-ids '%s': give CPU numbers", optarg);
                (void)snprintf(one, sizeof(one), "%.*s", (int)n, t);
                if ((ec = add_cpu_id(cmd, one, &ra)) != CLI_EXIT_OK) return ec;
                t += n + (t[n] == ',');
            }
            while (optind < argc && argv[optind][0] >= '0' && argv[optind][0] <= '9')
                if ((ec = add_cpu_id(cmd, argv[optind++], &ra)) != CLI_EXIT_OK) return ec;
            break;
        case O_NAME:
            if (cl_enclave_check_name(optarg) != CL_OK) return cli_usage_error(cmd, "%s", cl_error_message());
            cfg.name = optarg;
            break;
        case O_EIF: ra.image = optarg; break;
        case O_CONFIG: ra.config = optarg; break;
        case 'x':
            if (cfg.proxy_count == CL_ENCLAVE_MAX_PROXIES)
                return cli_usage_error(cmd, "at most %d --proxy", CL_ENCLAVE_MAX_PROXIES);
            if (cl_enclave_parse_proxy(optarg, &cfg.proxies[cfg.proxy_count]) != CL_OK)
                return cli_usage_error(cmd, "%s", cl_error_message());
            cfg.proxy_count++;
            break;
        case 'P':
            if (cfg.publish_count == CL_ENCLAVE_MAX_PUBLISH)
                return cli_usage_error(cmd, "at most %d --publish", CL_ENCLAVE_MAX_PUBLISH);
            if (cl_enclave_parse_publish(optarg, &cfg.publish[cfg.publish_count]) != CL_OK)
                return cli_usage_error(cmd, "%s", cl_error_message());
            cfg.publish_count++;
            break;
        case 's': ra.state = optarg; break;
        case 'q': cfg.quiet = true; break;
        case 'a': cfg.attach_console = true; break;
        case 'g':
            if (optarg[0] != '/' && strcmp(optarg, "none") != 0)
                return cli_usage_error(cmd, "--cgroup takes an absolute cgroup v2 directory, or none");
            cfg.cgroup = optarg;
            break;
        case 't':
            /* The program, its threads (a pool, OpenMP's) and nothing much else. */
            if ((ec = cli_uint_option(cmd, "--max-tasks", optarg, 8, 65536, &v)) != CLI_EXIT_OK) return ec;
            cfg.max_tasks = (uint32_t)v;
            break;
        case O_DATA: {
            struct stat sb;
            if (optarg[0] != '/' || stat(optarg, &sb) != 0 || !S_ISDIR(sb.st_mode))
                return cli_usage_error(cmd, "--data %s: give an absolute path of an existing directory", optarg);
            cfg.data_dir = optarg;
            break;
        }
        case 'h': fputs(run_usage, stdout); return CLI_EXIT_OK;
        default: return option_error(cmd, c, argv);
        }
    }
    json_t *doc = NULL;
    cl_buf sd, info;
    cl_buf_init(&sd, 4096);
    cl_buf_init(&info, 1 << 16);
    if (ra.config != NULL) {
        if (ra.nitro_set) {
            ec = cli_usage_error(cmd,
                                 "--config %s says it all: give the enclave's settings there, not as options "
                                 "(as nitro-cli)",
                                 ra.config);
            goto out;
        }
        if ((ec = run_config(cmd, &ra, &cfg, &doc)) != CLI_EXIT_OK) goto out;
        if (cfg.name != NULL && cl_enclave_check_name(cfg.name) != CL_OK) {
            ec = cli_usage_error(cmd, "--config %s: %s", ra.config, cl_error_message());
            goto out;
        }
    }
    if (ra.image == NULL && optind == argc - 1) ra.image = argv[optind++];
    if (ra.image == NULL || optind != argc) {
        ec = cli_usage_error(cmd, "expected one IMAGE (or --eif-path IMAGE)");
        goto out;
    }
    if (cfg.attach_console && !cfg.debug) {
        ec = cli_usage_error(cmd, "--attach-console needs --debug (--debug-mode), as on Nitro");
        goto out;
    }
    if (cfg.cpu_count != 0 && ra.n_cpu_ids != 0) {
        ec = cli_usage_error(cmd, "give --cpu-count or --cpu-ids, not both (as nitro-cli)");
        goto out;
    }
    cfg.image_path = ra.image;
    cfg.cpu_ids = ra.cpu_ids;
    cfg.cpu_id_count = ra.n_cpu_ids;
    cl_status rc = ra.state != NULL ? cl_buf_append_str(&sd, ra.state) : cl_enclave_default_state_dir(&sd);
    cfg.state_dir = cl_buf_cstr(&sd);
    if (rc == CL_OK && nitro && !cfg.attach_console) {
        /* nitro-cli's run-enclave: back once the enclave runs, its launcher left behind. */
        pid_t launcher = 0;
        rc = cl_enclave_start(&cfg, &info, &launcher);
        if (rc == CL_OK && !cfg.quiet) fputs(cl_buf_cstr(&info), stdout);
        ec = rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
        goto out;
    }
    int code = 0;
    if (rc == CL_OK) rc = cl_enclave_run(&cfg, &code);
    ec = rc == CL_OK ? code : cli_report(rc);
out:
    json_decref(doc);
    cl_buf_free(&sd);
    cl_buf_free(&info);
    return ec;
}

/* The options of describe, console and terminate; which apply is the caller's. */
typedef struct target_args {
    const char *id, *name;
    bool all;
    int64_t timeout_ms; /* console --disconnect-timeout; -1 none */
    cl_buf state;
} target_args;

static int target_opts(const char *cmd, const char *usage, bool ids, int argc, char **argv, target_args *t)
{
    enum { O_ID = 1000, O_NAME, O_ALL, O_TIMEOUT, O_STATE };
    static const struct option opts[] = {
        {"enclave-id", required_argument, NULL, O_ID},
        {"enclave-name", required_argument, NULL, O_NAME},
        {"all", no_argument, NULL, O_ALL},
        {"disconnect-timeout", required_argument, NULL, O_TIMEOUT},
        {"state-dir", required_argument, NULL, O_STATE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *state = NULL;
    uint64_t v = 0;
    int c, ec;
    t->timeout_ms = -1;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (!ids && (c == O_ID || c == O_NAME || c == O_ALL || c == O_TIMEOUT))
            return cli_usage_error(cmd, "%s does not apply here", argv[optind - 1]);
        switch (c) {
        case O_ID: t->id = optarg; break;
        case O_NAME: t->name = optarg; break;
        case O_ALL: t->all = true; break;
        case O_TIMEOUT:
            if ((ec = cli_uint_option(cmd, "--disconnect-timeout (seconds)", optarg, 1, 86400, &v)) != CLI_EXIT_OK)
                return ec;
            t->timeout_ms = (int64_t)v * 1000;
            break;
        case O_STATE: state = optarg; break;
        case 'h': fputs(usage, stdout); return -1;
        default: return option_error(cmd, c, argv);
        }
    }
    if (ids && t->id == NULL && optind == argc - 1) t->id = argv[optind++];
    if (optind != argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (t->id != NULL && cl_enclave_check_id(t->id) != CL_OK) return cli_usage_error(cmd, "%s", cl_error_message());
    cl_status rc = state != NULL ? cl_buf_append_str(&t->state, state) : cl_enclave_default_state_dir(&t->state);
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
}

static int enclave_describe(int argc, char **argv)
{
    const char *cmd = strcmp(argv[0], "describe-enclaves") == 0 ? "enclave describe-enclaves" : "enclave describe";
    target_args t = {0};
    cl_buf_init(&t.state, 4096);
    cl_buf info;
    cl_buf_init(&info, 1 << 16);
    cl_enclave_entry *all = NULL;
    size_t n = 0;
    int ec = target_opts(cmd, describe_usage, false, argc, argv, &t);
    if (ec != CLI_EXIT_OK) goto out;
    cl_status rc = cl_enclave_list(cl_buf_cstr(&t.state), &all, &n);
    if (rc != CL_OK) {
        ec = cli_report(rc);
        goto out;
    }
    fputs("[", stdout);
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        char path[4400];
        (void)snprintf(path, sizeof(path), "%s/%s/info.json", cl_buf_cstr(&t.state), all[i].id);
        cl_buf_reset(&info);
        if (!all[i].started || cl_buf_read_file(&info, path) != CL_OK || info.len == 0) {
            cl_error_clear(); /* starting, or gone meanwhile */
            continue;
        }
        fputs(first ? "\n" : ",\n", stdout);
        first = false;
        /* info.json ends with "}\n": print it without the newline, as one array element. */
        fwrite(info.data, 1, info.len - 1, stdout);
    }
    fputs(first ? "]\n" : "\n]\n", stdout);
out:
    free(all);
    cl_buf_free(&t.state);
    cl_buf_free(&info);
    return ec < 0 ? CLI_EXIT_OK : ec;
}

/* --enclave-name NAME, or the ID given, into id (an ID of a running enclave, or a refusal). */
static int resolve_target(const char *cmd, target_args *t, char id[CL_ENCLAVE_ID_MAX + 1])
{
    if ((t->id != NULL) + (t->name != NULL) + t->all != 1)
        return cli_usage_error(cmd, "give one of ID, --enclave-id ID, --enclave-name NAME%s",
                               strstr(cmd, "terminate") != NULL ? " or --all" : "");
    if (t->id != NULL) {
        (void)snprintf(id, CL_ENCLAVE_ID_MAX + 1, "%s", t->id);
        return CLI_EXIT_OK;
    }
    if (t->name == NULL) return CLI_EXIT_OK;
    cl_enclave_entry e;
    cl_status rc = cl_enclave_find_name(cl_buf_cstr(&t->state), t->name, &e);
    if (rc != CL_OK) return cli_report(rc);
    (void)snprintf(id, CL_ENCLAVE_ID_MAX + 1, "%s", e.id);
    return CLI_EXIT_OK;
}

static int enclave_console(int argc, char **argv)
{
    const char *cmd = "enclave console";
    target_args t = {0};
    cl_buf_init(&t.state, 4096);
    char id[CL_ENCLAVE_ID_MAX + 1] = "";
    int ec = target_opts(cmd, console_usage, true, argc, argv, &t);
    if (ec == CLI_EXIT_OK && t.all) ec = cli_usage_error(cmd, "--all applies to terminate only");
    if (ec == CLI_EXIT_OK) ec = resolve_target(cmd, &t, id);
    if (ec == CLI_EXIT_OK) {
        (void)fflush(stdout);
        cl_status rc = cl_enclave_console(cl_buf_cstr(&t.state), id, STDOUT_FILENO, (int)t.timeout_ms);
        if (rc != CL_OK) ec = cli_report(rc);
    }
    cl_buf_free(&t.state);
    return ec < 0 ? CLI_EXIT_OK : ec;
}

/* Each stopped as nitro-cli reports it; the launcher has up to 10 s to stop its enclave. */
static int terminate_one(const char *state, const char *id)
{
    bool done = false;
    cl_status rc = cl_enclave_terminate(state, id, 10000, &done);
    if (rc != CL_OK) return cli_report(rc);
    if (done) fprintf(stderr, "Successfully terminated enclave %s.\n", id);
    printf("{\n  \"EnclaveID\": \"%s\",\n  \"Terminated\": %s\n}\n", id, done ? "true" : "false");
    (void)fflush(stdout);
    if (!done) fprintf(stderr, "cloister: error: enclave %s did not stop within 10 s\n", id);
    return done ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int enclave_terminate(int argc, char **argv)
{
    const char *cmd = strcmp(argv[0], "terminate-enclave") == 0 ? "enclave terminate-enclave" : "enclave terminate";
    target_args t = {0};
    cl_buf_init(&t.state, 4096);
    char id[CL_ENCLAVE_ID_MAX + 1] = "";
    cl_enclave_entry *all = NULL;
    size_t n = 0;
    int ec = target_opts(cmd, terminate_usage, true, argc, argv, &t);
    if (ec == CLI_EXIT_OK && t.timeout_ms >= 0) ec = cli_usage_error(cmd, "--disconnect-timeout applies to console");
    if (ec == CLI_EXIT_OK) ec = resolve_target(cmd, &t, id);
    if (ec != CLI_EXIT_OK) goto out;
    if (!t.all) {
        ec = terminate_one(cl_buf_cstr(&t.state), id);
        goto out;
    }
    cl_status rc = cl_enclave_list(cl_buf_cstr(&t.state), &all, &n);
    if (rc != CL_OK) {
        ec = cli_report(rc);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        int one = terminate_one(cl_buf_cstr(&t.state), all[i].id);
        if (one != CLI_EXIT_OK) ec = one;
    }
out:
    free(all);
    cl_buf_free(&t.state);
    return ec < 0 ? CLI_EXIT_OK : ec;
}

int cmd_enclave(int argc, char **argv)
{
    static const struct {
        const char *verb, *nitro;
        int (*run)(int, char **);
    } verbs[] = {
        {"init-root", NULL, enclave_init_root},
        {"build", "build-enclave", enclave_build},
        {"measure", "describe-eif", enclave_measure},
        {"run", "run-enclave", enclave_run},
        {"describe", "describe-enclaves", enclave_describe},
        {"console", NULL, enclave_console},
        {"terminate", "terminate-enclave", enclave_terminate},
    };
    if (argc < 2)
        return cli_usage_error("enclave", "missing command (init-root, build, measure, run, describe, console, "
                                          "terminate; or nitro-cli's build-enclave, describe-eif, run-enclave, "
                                          "describe-enclaves, terminate-enclave)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        enclave_help_all();
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strcmp(argv[1], verbs[i].verb) == 0 || (verbs[i].nitro != NULL && strcmp(argv[1], verbs[i].nitro) == 0))
            return verbs[i].run(argc - 1, argv + 1);
    }
    return cli_usage_error("enclave", "unknown command '%s'", argv[1]);
}
