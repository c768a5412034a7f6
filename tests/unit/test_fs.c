/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloister/fs.h"

#include "test_util.h"

static int count_entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    }
    closedir(d);
    return n;
}

static const char *fresh_dir(const char *name)
{
    static char dir[512];
    (void)snprintf(dir, sizeof(dir), "%s/%s", t_tmpdir(), name);
    assert_int_equal(mkdir(dir, 0700), 0);
    return dir;
}

static void test_commit_creates_whole_file(void **state)
{
    (void)state;
    const char *dir = fresh_dir("commit");
    char path[600];
    (void)snprintf(path, sizeof(path), "%s/out", dir);
    cl_outfile o;
    assert_ok(cl_outfile_open(&o, path, false, 0600));
    assert_int_equal(access(path, F_OK), -1); /* not visible until committed */
    assert_int_equal(write(o.fd, "data", 4), 4);
    assert_ok(cl_outfile_commit(&o));
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 4);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(count_entries(dir), 1); /* no temporary left */
    cl_outfile_abort(&o);                    /* harmless after commit */
    assert_int_equal(access(path, F_OK), 0);
}

static void test_abort_leaves_nothing(void **state)
{
    (void)state;
    const char *dir = fresh_dir("abort");
    char path[600];
    (void)snprintf(path, sizeof(path), "%s/out", dir);
    cl_outfile o;
    assert_ok(cl_outfile_open(&o, path, false, 0600));
    assert_int_equal(write(o.fd, "partial", 7), 7);
    cl_outfile_abort(&o);
    assert_int_equal(count_entries(dir), 0);
}

static void test_existing_target(void **state)
{
    (void)state;
    const char *dir = fresh_dir("exists");
    char path[600];
    (void)snprintf(path, sizeof(path), "%s/out", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("old", f);
    fclose(f);
    cl_outfile o;
    assert_fails(cl_outfile_open(&o, path, false, 0600), CL_ERR_EXISTS, "--force");
    /* The target appearing between open and commit is not clobbered either. */
    assert_int_equal(unlink(path), 0);
    assert_ok(cl_outfile_open(&o, path, false, 0600));
    f = fopen(path, "w");
    fputs("raced", f);
    fclose(f);
    assert_fails(cl_outfile_commit(&o), CL_ERR_EXISTS, "already exists");
    assert_int_equal(count_entries(dir), 1);
    assert_ok(cl_outfile_open(&o, path, true, 0600));
    assert_int_equal(write(o.fd, "new", 3), 3);
    assert_ok(cl_outfile_commit(&o));
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 3);
}

static void test_never_replaces_special_files(void **state)
{
    (void)state;
    const char *dir = fresh_dir("special");
    char fifo[600], link[600];
    (void)snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    (void)snprintf(link, sizeof(link), "%s/link", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(symlink("fifo", link), 0);
    cl_outfile o;
    assert_fails(cl_outfile_open(&o, fifo, true, 0600), CL_ERR_USAGE, "not a regular file");
    assert_fails(cl_outfile_open(&o, link, true, 0600), CL_ERR_USAGE, "not a regular file");
    assert_fails(cl_outfile_open(&o, dir, true, 0600), CL_ERR_USAGE, "not a regular file");
    assert_fails(cl_outfile_open(&o, "/dev/null", true, 0600), CL_ERR_USAGE, "not a regular file");
    struct stat sb;
    assert_int_equal(lstat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    assert_int_equal(count_entries(dir), 2);
}

static void test_unwritable_directory(void **state)
{
    (void)state;
    cl_outfile o;
    assert_fails(cl_outfile_open(&o, "/nonexistent-dir/out", false, 0600), CL_ERR_IO, "cannot create");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_creates_whole_file), cmocka_unit_test(test_abort_leaves_nothing),
        cmocka_unit_test(test_existing_target),           cmocka_unit_test(test_never_replaces_special_files),
        cmocka_unit_test(test_unwritable_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
