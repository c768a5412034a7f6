/* SPDX-License-Identifier: Apache-2.0 */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void t_hex(cl_buf *out, const char *hex)
{
    cl_buf_init(out, 1 << 24);
    assert_ok(cl_hex_decode(hex, strlen(hex), out));
}

const char *t_source_path(const char *rel)
{
    static char path[4096];
    const char *root = getenv("CLOISTER_SOURCE_DIR");
    if (root == NULL) root = ".";
    (void)snprintf(path, sizeof(path), "%s/%s", root, rel);
    return path;
}

const char *t_tmpdir(void)
{
    static char dir[256];
    if (dir[0] == '\0') {
        const char *base = getenv("TMPDIR");
        (void)snprintf(dir, sizeof(dir), "%s/cloister-test-XXXXXX", base ? base : "/tmp");
        if (mkdtemp(dir) == NULL) fail_msg("mkdtemp failed");
    }
    return dir;
}
