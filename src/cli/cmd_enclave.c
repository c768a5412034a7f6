/* SPDX-License-Identifier: Apache-2.0 */
/* cloister enclave ...: the sim backend: attestation PKI (init-root), images (build),
 * the launcher (run) and running enclaves (describe, console, terminate). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cloister/attestation.h"
#include "cloister/enclave.h"
#include "cloister/fs.h"

#include "cli.h"

static const char enclave_usage[] =
    "Usage: cloister enclave init-root -o DIR [--root-days N] [--platform-days N] [--force]\n"
    "       cloister enclave build --exe BIN [--file SRC[:DEST]]... [--no-libs]\n"
    "                              [--sign-key KEY.pem --sign-cert CERT.pem] -o IMAGE [--force]\n"
    "       cloister enclave measure IMAGE\n"
    "       cloister enclave run IMAGE [--pki DIR] [--debug] [--memory MiB] [--cid N]\n"
    "                              [--proxy VSOCKPORT=HOST:PORT]... [--state-dir DIR]\n"
    "                              [--attach-console] [--quiet] [--cgroup DIR|none] [--max-tasks N]\n"
    "       cloister enclave describe [--state-dir DIR]\n"
    "       cloister enclave console ID [--state-dir DIR]\n"
    "       cloister enclave terminate ID [--state-dir DIR]\n"
    "\n"
    "build packs BIN (at /app/NAME), the loader and libraries it needs (from ldd, at their paths)\n"
    "and each --file (default /files/NAME) into a deterministic image and prints its measurements\n"
    "as nitro-cli does (PCR0 image, PCR1 runtime, PCR2 application, PCR8 signing certificate),\n"
    "then the loader and libraries it packed with their sizes (Runtime) and the image's size;\n"
    "measure prints the same for an image.\n"
    "See docs/formats/enclave-image.md.\n"
    "\n"
    "run starts the image's program isolated (namespaces, read-only root of the image's files only,\n"
    "no network, seccomp, memory limit) with two channels: the attestation device (NSM requests;\n"
    "documents signed with the platform CA of --pki, from init-root, over the PCRs measured here)\n"
    "and vsock: the enclave may connect to the vsock ports given with --proxy, which are forwarded\n"
    "to HOST:PORT, and host programs may connect to the ports it listens on at\n"
    "STATE/ID/vsock-PORT.sock. --debug zeroes PCR0-2 (as Nitro's debug mode) and keeps the\n"
    "console (see 'console', or --attach-console to print it here). run prints the enclave's description, stays in the "
    "foreground until\n"
    "the enclave exits and exits with its status. State: $CLOISTER_STATE_DIR,\n"
    "$XDG_RUNTIME_DIR/cloister/enclaves or /tmp/cloister-UID/enclaves.\n"
    "--memory (default 256 MiB) and --max-tasks (processes and threads, default 1024) bound the\n"
    "enclave as a whole in a cgroup of its own: under --cgroup DIR (a cgroup v2 directory delegated\n"
    "to you), else one found (cgroup v2 or v1 with the memory and pids controllers). With none\n"
    "(--cgroup none, or none usable: a warning says why) the enclave may not start processes, only\n"
    "threads, and --memory limits its one process. describe shows which applies (\"Limits\").\n"
    "\n"
    "Creates the sim backend's attestation PKI in DIR (made 0700 if missing), as Nitro's:\n"
    "  root.pem, root.key          a self-signed P-384 root CA (default 30 years): give root.pem to\n"
    "                              verifiers (cloister attest verify --root, the KMS)\n"
    "  platform.pem, platform.key  a P-384 platform CA issued by the root (pathlen 0, default 1 year):\n"
    "                              the launcher issues each enclave's short-lived signing certificate\n"
    "                              with it, so attestation documents carry cabundle [root, platform]\n"
    "Keys are PKCS#8 PEM, mode 0600. Existing files are kept unless --force.\n";

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
    while ((c = getopt_long(argc, argv, "o:fh", opts, NULL)) != -1) {
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
        case 'h': fputs(enclave_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error(cmd, "unknown option");
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
    const char *cmd = "enclave build";
    static const struct option opts[] = {
        {"exe", required_argument, NULL, 'e'},
        {"file", required_argument, NULL, 'F'},
        {"no-libs", no_argument, NULL, 'n'},
        {"sign-key", required_argument, NULL, 'k'},
        {"sign-cert", required_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'},
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
    while ((c = getopt_long(argc, argv, "o:fh", opts, NULL)) != -1) {
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
        case 'f': force = true; break;
        case 'h': fputs(enclave_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (p.exe == NULL) return cli_usage_error(cmd, "--exe BIN is required");
    if (out == NULL) return cli_usage_error(cmd, "-o IMAGE is required");
    if (optind != argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if ((p.sign_key == NULL) != (p.sign_cert == NULL))
        return cli_usage_error(cmd, "--sign-key and --sign-cert go together");
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
    if (argc != 2 || argv[1][0] == '-') return cli_usage_error("enclave measure", "expected one IMAGE");
    cl_image img;
    cl_image_init(&img);
    cl_status rc = cl_image_load(argv[1], &img);
    int ec = rc == CL_OK ? print_measurements(&img) : cli_report(rc);
    cl_image_free(&img);
    return ec;
}

static int enclave_run(int argc, char **argv)
{
    const char *cmd = "enclave run";
    static const struct option opts[] = {
        {"pki", required_argument, NULL, 'p'},
        {"debug", no_argument, NULL, 'd'},
        {"debug-mode", no_argument, NULL, 'd'},
        {"memory", required_argument, NULL, 'm'},
        {"cid", required_argument, NULL, 'c'},
        {"proxy", required_argument, NULL, 'x'},
        {"state-dir", required_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'},
        {"attach-console", no_argument, NULL, 'a'},
        {"cgroup", required_argument, NULL, 'g'},
        {"max-tasks", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static cl_enclave_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.memory_mib = 256;
    cfg.cid = 16;
    const char *state = NULL;
    uint64_t v = 0;
    int c, ec = CLI_EXIT_OK;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
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
        case 'x':
            if (cfg.proxy_count == CL_ENCLAVE_MAX_PROXIES)
                return cli_usage_error(cmd, "at most %d --proxy", CL_ENCLAVE_MAX_PROXIES);
            if (cl_enclave_parse_proxy(optarg, &cfg.proxies[cfg.proxy_count]) != CL_OK)
                return cli_usage_error(cmd, "%s", cl_error_message());
            cfg.proxy_count++;
            break;
        case 's': state = optarg; break;
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
        case 'h': fputs(enclave_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind != argc - 1) return cli_usage_error(cmd, "expected one IMAGE");
    if (cfg.attach_console && !cfg.debug) return cli_usage_error(cmd, "--attach-console needs --debug (as on Nitro)");
    cfg.image_path = argv[optind];
    cl_buf sd;
    cl_buf_init(&sd, 4096);
    cl_status rc = state != NULL ? cl_buf_append_str(&sd, state) : cl_enclave_default_state_dir(&sd);
    cfg.state_dir = cl_buf_cstr(&sd);
    int code = 0;
    if (rc == CL_OK) rc = cl_enclave_run(&cfg, &code);
    cl_buf_free(&sd);
    return rc == CL_OK ? code : cli_report(rc);
}

static CL_MUST_USE cl_status state_dir_opt(int argc, char **argv, const char **id, cl_buf *sd)
{
    static const struct option opts[] = {{"state-dir", required_argument, NULL, 's'}, {NULL, 0, NULL, 0}};
    const char *state = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 's')
            state = optarg;
        else
            CL_FAIL(CL_ERR_USAGE, "unknown option");
    }
    if (id != NULL) {
        CL_ENSURE(optind == argc - 1, CL_ERR_USAGE, "expected one enclave ID (see 'cloister enclave describe')");
        *id = argv[optind];
        /* IDs are what run made: i-sim-enc + hex. Refuse anything that could leave the state dir. */
        CL_ENSURE(strncmp(*id, "i-sim-enc", 9) == 0 && strspn(*id + 9, "0123456789abcdef") == strlen(*id + 9) &&
                      strlen(*id) < 64,
                  CL_ERR_USAGE, "'%s' is not an enclave ID (i-sim-enc...)", *id);
    } else {
        CL_ENSURE(optind == argc, CL_ERR_USAGE, "unexpected argument '%s'", argv[optind]);
    }
    return state != NULL ? cl_buf_append_str(sd, state) : cl_enclave_default_state_dir(sd);
}

static int enclave_describe(int argc, char **argv)
{
    cl_buf sd, info;
    cl_buf_init(&sd, 4096);
    cl_buf_init(&info, 1 << 16);
    cl_status rc = state_dir_opt(argc, argv, NULL, &sd);
    if (rc != CL_OK) {
        cl_buf_free(&sd);
        cl_buf_free(&info);
        return rc == CL_ERR_USAGE ? cli_usage_error("enclave describe", "%s", cl_error_message()) : cli_report(rc);
    }
    DIR *d = opendir(cl_buf_cstr(&sd));
    fputs("[", stdout);
    bool first = true;
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "i-sim-enc", 9) != 0) continue;
        char path[4400];
        (void)snprintf(path, sizeof(path), "%s/%s/info.json", cl_buf_cstr(&sd), de->d_name);
        cl_buf_reset(&info);
        if (cl_buf_read_file(&info, path) != CL_OK) continue;
        /* Skip what a launcher killed with SIGKILL left behind. */
        (void)snprintf(path, sizeof(path), "%s/%s/pid", cl_buf_cstr(&sd), de->d_name);
        char pidtext[32] = "";
        FILE *pf = fopen(path, "r");
        uint64_t pid = 0;
        if (pf != NULL) {
            if (fgets(pidtext, sizeof(pidtext), pf) != NULL) pidtext[strcspn(pidtext, "\n")] = '\0';
            (void)fclose(pf);
        }
        if (cl_parse_uint(pidtext, 2, INT32_MAX, "pid", &pid) != CL_OK || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
            continue;
        fputs(first ? "\n" : ",\n", stdout);
        first = false;
        /* info.json ends with "}\n": print it without the newline, as one array element. */
        fwrite(info.data, 1, info.len > 0 ? info.len - 1 : 0, stdout);
    }
    fputs(first ? "]\n" : "\n]\n", stdout);
    if (d != NULL) (void)closedir(d);
    cl_buf_free(&sd);
    cl_buf_free(&info);
    return CLI_EXIT_OK;
}

static int enclave_by_id(int argc, char **argv)
{
    const bool term = strcmp(argv[0], "terminate") == 0;
    const char *cmd = term ? "enclave terminate" : "enclave console";
    const char *id = NULL;
    cl_buf sd, text;
    cl_buf_init(&sd, 4096);
    cl_buf_init(&text, CL_BUF_MAX_DEFAULT);
    char path[4400];
    int ec = CLI_EXIT_OK;
    cl_status rc = state_dir_opt(argc, argv, &id, &sd);
    if (rc != CL_OK) {
        ec = rc == CL_ERR_USAGE ? cli_usage_error(cmd, "%s", cl_error_message()) : cli_report(rc);
        goto out;
    }
    if (!term) {
        (void)snprintf(path, sizeof(path), "%s/%s/console.log", cl_buf_cstr(&sd), id);
        rc = cl_buf_read_file(&text, path);
        if (rc != CL_OK) {
            ec = cli_report(CL_RAISE(CL_ERR_NOT_FOUND,
                                     "enclave %s has no console: it is not running, or was not started with "
                                     "--debug (only debug-mode enclaves show their console, as on Nitro)",
                                     id));
            goto out;
        }
        fwrite(text.data, 1, text.len, stdout);
        goto out;
    }
    (void)snprintf(path, sizeof(path), "%s/%s/pid", cl_buf_cstr(&sd), id);
    uint64_t pid = 0;
    char *nl = NULL;
    if (cl_buf_read_file(&text, path) == CL_OK && (nl = strchr((char *)text.data, '\n')) != NULL) *nl = '\0';
    if (nl == NULL || cl_parse_uint(cl_buf_cstr(&text), 2, INT32_MAX, "pid", &pid) != CL_OK) {
        ec = cli_report(CL_RAISE(CL_ERR_NOT_FOUND, "no running enclave %s", id));
        goto out;
    }
    if (kill((pid_t)pid, SIGTERM) != 0) {
        ec =
            cli_report(CL_RAISE_ERRNO(CL_ERR_NOT_FOUND, "enclave %s (launcher pid %llu)", id, (unsigned long long)pid));
        goto out;
    }
    /* The launcher removes the enclave's state directory when the enclave is gone. */
    (void)snprintf(path, sizeof(path), "%s/%s", cl_buf_cstr(&sd), id);
    for (int i = 0; i < 500 && access(path, F_OK) == 0; i++) {
        struct timespec ts = {0, 10L * 1000 * 1000};
        (void)nanosleep(&ts, NULL);
    }
    printf("{\n  \"EnclaveID\": \"%s\",\n  \"Terminated\": %s\n}\n", id, access(path, F_OK) == 0 ? "false" : "true");
out:
    cl_buf_free(&sd);
    cl_buf_free(&text);
    return ec;
}

int cmd_enclave(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("enclave",
                               "missing command (init-root, build, measure, run, describe, console, terminate)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(enclave_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "init-root") == 0) return enclave_init_root(argc - 1, argv + 1);
    if (strcmp(argv[1], "build") == 0) return enclave_build(argc - 1, argv + 1);
    if (strcmp(argv[1], "measure") == 0) return enclave_measure(argc - 1, argv + 1);
    if (strcmp(argv[1], "run") == 0) return enclave_run(argc - 1, argv + 1);
    if (strcmp(argv[1], "describe") == 0) return enclave_describe(argc - 1, argv + 1);
    if (strcmp(argv[1], "console") == 0 || strcmp(argv[1], "terminate") == 0) return enclave_by_id(argc - 1, argv + 1);
    return cli_usage_error("enclave", "unknown command '%s'", argv[1]);
}
