/* SPDX-License-Identifier: Apache-2.0 */
/* The SQLite key store against the backend-independent cases of store_cases.h. */
#include <stdio.h>
#include <unistd.h>

#include "store_cases.h"

static void t_fresh(char *path, size_t cap)
{
    (void)snprintf(path, cap, "%s/store-%d.db", t_tmpdir(), (int)getpid());
    unlink(path);
}

static cl_status t_open(const char *path, kms_store **s) { return kms_store_open_sqlite(path, s); }

static void t_done(const char *path) { unlink(path); }

int main(void)
{
    const struct CMUnitTest tests[] = {T_STORE_CASES};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
