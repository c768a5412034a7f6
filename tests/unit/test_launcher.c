/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The launcher's helpers (src/host/launcher.c) and the state directory's running enclaves
 * (src/host/enclave_state.c). The launcher itself is exercised end to end, from inside the
 * enclave, by tests/integration/enclave_run.py and enclave_nitro.py.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloister/enclave.h"

#include "test_util.h"

static void test_parse_proxy(void **state)
{
    (void)state;
    cl_enclave_proxy p;
    assert_ok(cl_enclave_parse_proxy("8000=kms.example:443", &p));
    assert_int_equal(p.port, 8000);
    assert_string_equal(p.host, "kms.example");
    assert_string_equal(p.service, "443");
    assert_ok(cl_enclave_parse_proxy("1=[::1]:8443", &p));
    assert_string_equal(p.host, "::1");
    assert_string_equal(p.service, "8443");
    const char *bad[] = {"8000", "8000=host", "=h:1", "0=h:1", "x=h:1", "8000=:443", "8000=h:", "99999999999=h:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_fails(cl_enclave_parse_proxy(bad[i], &p), CL_ERR_USAGE, "VSOCKPORT=HOST:PORT");
}

static void test_parse_publish(void **state)
{
    (void)state;
    cl_enclave_publish p;
    assert_ok(cl_enclave_parse_publish("4996=5005", &p));
    assert_int_equal(p.port, 5005);
    assert_string_equal(p.host, "127.0.0.1"); /* loopback unless told otherwise */
    assert_string_equal(p.service, "4996");
    assert_ok(cl_enclave_parse_publish("0.0.0.0:443=4996", &p));
    assert_string_equal(p.host, "0.0.0.0");
    assert_string_equal(p.service, "443");
    assert_int_equal(p.port, 4996);
    assert_ok(cl_enclave_parse_publish("[::1]:8443=1", &p));
    assert_string_equal(p.host, "::1");
    assert_string_equal(p.service, "8443");
    const char *bad[] = {"4996",    "=5005",      "4996=",      "4996=0",          "4996=x",          ":4996=5005",
                         "h:=5005", "[::1]=5005", "4996=5005x", "host:https=5005", "4996=99999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_fails(cl_enclave_parse_publish(bad[i], &p), CL_ERR_USAGE, "[ADDR:]PORT=VSOCKPORT");
}

static void test_state_dir(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b, 4096);
    assert_int_equal(setenv("CLOISTER_STATE_DIR", "/x/y", 1), 0);
    assert_ok(cl_enclave_default_state_dir(&b));
    assert_string_equal(cl_buf_cstr(&b), "/x/y");
    assert_int_equal(unsetenv("CLOISTER_STATE_DIR"), 0);
    assert_int_equal(setenv("XDG_RUNTIME_DIR", "/run/user/5", 1), 0);
    cl_buf_reset(&b);
    assert_ok(cl_enclave_default_state_dir(&b));
    assert_string_equal(cl_buf_cstr(&b), "/run/user/5/cloister/enclaves");
    cl_buf_free(&b);
}

static void test_run_refusals(void **state)
{
    (void)state;
    cl_enclave_config cfg = {.image_path = "/nonexistent.img", .state_dir = t_tmpdir(), .memory_mib = 8};
    int code = 0;
    assert_fails(cl_enclave_run(&cfg, &code), CL_ERR_USAGE, "--memory");
    cfg.memory_mib = 64;
    assert_fails(cl_enclave_run(&cfg, &code), CL_ERR_IO, "/nonexistent.img");
    /* CPUs and names, before the image is read. */
    cpu_set_t mine;
    assert_int_equal(sched_getaffinity(0, sizeof(mine), &mine), 0);
    cfg.cpu_count = (uint32_t)CPU_COUNT(&mine) + 1;
    char needle[64];
    (void)snprintf(needle, sizeof(needle), "this launcher may use %d CPUs", CPU_COUNT(&mine));
    assert_fails(cl_enclave_run(&cfg, &code), CL_ERR_USAGE, needle);
    uint32_t ids[2] = {0, 0};
    cfg.cpu_count = 1;
    cfg.cpu_ids = ids;
    cfg.cpu_id_count = 1;
    assert_fails(cl_enclave_run(&cfg, &code), CL_ERR_USAGE, "not both");
    cfg.cpu_count = 0;
    ids[0] = CL_ENCLAVE_MAX_CPUS + 5;
    assert_fails(cl_enclave_run(&cfg, &code), CL_ERR_USAGE, "is not one this launcher may use");
    cfg.cpu_id_count = 0;
    cfg.name = "two words";
    assert_fails(cl_enclave_run(&cfg, &code), CL_ERR_USAGE, "give 1 to 64 letters");
    cfg.name = NULL;

    /* A state directory others can write is refused before anything starts. */
    char exe[512], img_path[512], shared[512];
    (void)snprintf(exe, sizeof(exe), "%s/prog", t_tmpdir());
    (void)snprintf(img_path, sizeof(img_path), "%s/prog.img", t_tmpdir());
    (void)snprintf(shared, sizeof(shared), "%s/shared", t_tmpdir());
    FILE *f = fopen(exe, "w");
    assert_non_null(f);
    assert_int_equal(fputs("x", f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    cl_image img;
    cl_image_init(&img);
    cl_image_build_params p = {.exe = exe};
    assert_ok(cl_image_build(&p, &img));
    f = fopen(img_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(img.raw.data, 1, img.raw.len, f), img.raw.len);
    assert_int_equal(fclose(f), 0);
    cl_image_free(&img);
    assert_int_equal(mkdir(shared, 0700), 0);
    assert_int_equal(chmod(shared, 0777), 0);
    cfg.image_path = img_path;
    cfg.state_dir = shared;
    assert_fails(cl_enclave_run(&cfg, &code), CL_ERR_DENIED, "only we can write");
}

/* A file with text in it, its directories made. */
static void put(const char *dir, const char *name, const char *text)
{
    char path[1024];
    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    for (char *q = path + strlen(dir) + 1; (q = strchr(q, '/')) != NULL; q++) {
        *q = '\0';
        (void)mkdir(path, 0755);
        *q = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static bool exists(const char *dir, const char *name)
{
    char path[1024];
    struct stat sb;
    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &sb) == 0;
}

/*
 * How the launcher picks what bounds an enclave as a whole (src/host/enclave_limits.c), on a
 * tree of plain files standing for the kernel's: a plain directory has none of the files a
 * cgroup's has, so every cgroup made here fails at its first limit, which shows the order of
 * the attempts, their reasons and their cleaning up. The kernel's own cgroups are exercised end
 * to end by tests/integration/enclave_run.py (test_fork).
 */
static void test_cgroup_choice(void **state)
{
    (void)state;
    char root[512], mounts[600], self[600], text[1400];
    (void)snprintf(root, sizeof(root), "%s/cg", t_tmpdir());
    (void)snprintf(mounts, sizeof(mounts), "%s/mounts", root);
    (void)snprintf(self, sizeof(self), "%s/self", root);
    assert_int_equal(mkdir(root, 0755), 0);
    const cl_cgroup_sys sys = {.mounts = mounts, .self = self};
    cl_enclave_cgroup cg;

    /* Not one path component, --cgroup none, a --cgroup that is not there. */
    assert_fails(cl_enclave_cgroup_make(&sys, NULL, "a/b", 1 << 20, 8, &cg), CL_ERR_USAGE, "one path component");
    assert_ok(cl_enclave_cgroup_make(&sys, "none", "e1", 1 << 20, 8, &cg));
    assert_int_equal(cg.scope, CL_ENCLAVE_SCOPE_PROCESS);
    assert_string_equal(cg.why, "--cgroup none");
    assert_string_equal(cl_enclave_scope_name(cg.scope), "process");
    assert_fails(cl_enclave_cgroup_make(&sys, "/nonexistent-cgroup", "e1", 1 << 20, 8, &cg), CL_ERR_IO,
                 "--cgroup /nonexistent-cgroup: the enclave's cgroup (a cgroup v2 directory delegated");

    /* No cgroup mounted at all. */
    put(root, "mounts", "proc /proc proc rw 0 0\n");
    put(root, "self", "");
    assert_ok(cl_enclave_cgroup_make(&sys, NULL, "e1", 1 << 20, 8, &cg));
    assert_int_equal(cg.scope, CL_ENCLAVE_SCOPE_PROCESS);
    assert_string_equal(cg.why, "no cgroup hierarchy with the memory and pids controllers");

    /* A hybrid system like this test machine's: cgroup v2 without the two controllers; v1's
     * memory and pids hierarchies, the launcher in a memory cgroup of its own. */
    (void)snprintf(text, sizeof(text),
                   "cgroup2 %s/unified cgroup2 rw 0 0\ncgroup %s/memory cgroup rw,relatime,memory 0 0\n"
                   "cgroup %s/pids cgroup rw,relatime,pids 0 0\n",
                   root, root, root);
    put(root, "mounts", text);
    put(root, "self", "9:name=systemd:/\n8:pids:/\n4:memory:/box/me\n0::/\n");
    put(root, "unified/cgroup.controllers", "hugetlb\n");
    put(root, "memory/box/me/cgroup.procs", "");
    put(root, "pids/cgroup.procs", "");
    assert_ok(cl_enclave_cgroup_make(&sys, NULL, "e1", 1 << 20, 8, &cg));
    assert_int_equal(cg.scope, CL_ENCLAVE_SCOPE_PROCESS);
    assert_non_null(strstr(cg.why, "cgroup v2 at "));
    assert_non_null(strstr(cg.why, "/unified has no memory and pids controllers; cgroup v1: cannot open "));
    assert_non_null(strstr(cg.why, "/memory/box/me/e1/memory.limit_in_bytes"));
    assert_false(exists(root, "memory/box/me/e1")); /* what was made for it is gone */
    assert_false(exists(root, "pids/e1"));

    /* cgroup v2 with both controllers: first the launcher's own cgroup (the controllers enabled
     * for its children), then <root>/cloister. */
    (void)snprintf(text, sizeof(text), "cgroup2 %s/v2 cgroup2 rw,nsdelegate 0 0\n", root);
    put(root, "mounts", text);
    put(root, "self", "0::/user.slice/me.scope\n");
    put(root, "v2/cgroup.controllers", "cpu io memory pids\n");
    put(root, "v2/cgroup.subtree_control", "cpu\n");
    put(root, "v2/user.slice/me.scope/cgroup.subtree_control", "\n");
    assert_ok(cl_enclave_cgroup_make(&sys, NULL, "e2", (uint64_t)256 << 20, 1024, &cg));
    assert_int_equal(cg.scope, CL_ENCLAVE_SCOPE_PROCESS);
    assert_non_null(strstr(cg.why, "cgroup v2, the launcher's own cgroup: cannot open "));
    assert_non_null(strstr(cg.why, "/v2/user.slice/me.scope/e2/memory.max"));
    assert_non_null(strstr(cg.why, "; cgroup v2, <root>/cloister: cannot open "));
    assert_non_null(strstr(cg.why, "/v2/cloister/cgroup.subtree_control"));
    assert_false(exists(root, "v2/user.slice/me.scope/e2"));
    char on[64];
    (void)snprintf(text, sizeof(text), "%s/v2/user.slice/me.scope/cgroup.subtree_control", root);
    FILE *f = fopen(text, "r");
    assert_non_null(f);
    assert_non_null(fgets(on, sizeof(on), f));
    assert_int_equal(fclose(f), 0);
    assert_string_equal(on, "+memory +pids"); /* asked for, as the kernel's interface takes it */
}

/* STATE/ID as a launcher leaves it; `lock` holds STATE/ID/pid's lock as a running one does. */
static int fake_enclave(const char *state, const char *id, const char *name, const char *cid, int pid, bool lock)
{
    char rel[128], text[32];
    (void)snprintf(text, sizeof(text), "%d\n", pid);
    const char *files[][2] = {{"pid", text}, {"name", name}, {"cid", cid}, {"info.json", "{}\n"}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        (void)snprintf(rel, sizeof(rel), "%s/%s", id, files[i][0]);
        put(state, rel, files[i][1]);
    }
    if (!lock) return -1;
    char path[1100];
    (void)snprintf(path, sizeof(path), "%s/%s/pid", state, id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    return fd;
}

/* What runs is what holds its lock: a directory a SIGKILLed launcher left (its pid maybe another
 * process's by now) is not listed and never signalled. */
static void test_running_enclaves(void **state)
{
    (void)state;
    char st[512];
    (void)snprintf(st, sizeof(st), "%s/enclaves", t_tmpdir());
    assert_int_equal(mkdir(st, 0700), 0);
    int live = fake_enclave(st, "i-sim-enc00aa", "web\n", "17\n", (int)getpid(), true);
    (void)fake_enclave(st, "i-sim-enc00bb", "stale\n", "16\n", (int)getpid(), false);
    put(st, "not-an-enclave/pid", "1\n");
    cl_enclave_entry *all = NULL;
    size_t n = 0;
    assert_ok(cl_enclave_list(st, &all, &n));
    assert_int_equal(n, 1);
    assert_string_equal(all[0].id, "i-sim-enc00aa");
    assert_string_equal(all[0].name, "web");
    assert_int_equal(all[0].cid, 17);
    assert_int_equal(all[0].launcher, getpid());
    assert_true(all[0].started);
    free(all);
    cl_enclave_entry e;
    assert_ok(cl_enclave_find_name(st, "web", &e));
    assert_string_equal(e.id, "i-sim-enc00aa");
    assert_fails(cl_enclave_find_name(st, "stale", &e), CL_ERR_NOT_FOUND, "no running enclave is named 'stale'");
    bool done = true;
    /* Its pid is this test's own: were it signalled, the test would die of SIGTERM. */
    assert_fails(cl_enclave_terminate(st, "i-sim-enc00bb", 1000, &done), CL_ERR_NOT_FOUND, "no running enclave");
    assert_false(done);
    assert_fails(cl_enclave_console(st, "i-sim-enc00bb", 1, 0), CL_ERR_NOT_FOUND, "no running enclave");
    assert_fails(cl_enclave_console(st, "i-sim-enc00aa", 1, 0), CL_ERR_NOT_FOUND, "not started in debug mode");
    assert_fails(cl_enclave_terminate(st, "../x", 1000, &done), CL_ERR_USAGE, "not an enclave ID");
    assert_fails(cl_enclave_check_id("i-sim-encXY"), CL_ERR_USAGE, "not an enclave ID");
    assert_fails(cl_enclave_check_id("i-sim-enc"), CL_ERR_USAGE, "not an enclave ID");
    assert_ok(cl_enclave_check_id("i-sim-enc0123456789abcdef"));
    assert_ok(cl_enclave_check_name("a.b_c-9"));
    assert_fails(cl_enclave_check_name(""), CL_ERR_USAGE, "enclave name ''");
    assert_fails(cl_enclave_check_name("a/b"), CL_ERR_USAGE, "enclave name 'a/b'");
    (void)close(live); /* the launcher is gone */
    assert_ok(cl_enclave_list(st, &all, &n));
    assert_int_equal(n, 0);
    free(all);
    char missing[600];
    (void)snprintf(missing, sizeof(missing), "%s/none", t_tmpdir());
    assert_ok(cl_enclave_list(missing, &all, &n)); /* nothing ran yet: no directory, no enclave */
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_proxy),   cmocka_unit_test(test_parse_publish),
        cmocka_unit_test(test_state_dir),     cmocka_unit_test(test_run_refusals),
        cmocka_unit_test(test_cgroup_choice), cmocka_unit_test(test_running_enclaves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
