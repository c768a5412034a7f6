/* SPDX-License-Identifier: Apache-2.0 */
#include "cloister/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloister/crypto.h"

cl_status cl_fs_sync_parent(const char *path)
{
    char *copy = strdup(path);
    CL_ENSURE(copy != NULL, CL_ERR_NOMEM, "out of memory");
    char *slash = strrchr(copy, '/');
    const char *dir = ".";
    if (slash == copy)
        dir = "/";
    else if (slash != NULL) {
        *slash = '\0';
        dir = copy;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        cl_status rc = CL_RAISE_ERRNO(CL_ERR_IO, "cannot open directory %s", dir);
        free(copy);
        return rc;
    }
    int r = fsync(fd);
    int saved = errno;
    close(fd);
    free(copy);
    errno = saved;
    /* Some file systems cannot sync directories; that is not our failure. */
    if (r != 0 && errno != EINVAL && errno != EROFS) CL_FAIL_ERRNO(CL_ERR_IO, "cannot sync directory of %s", path);
    return CL_OK;
}

cl_status cl_outfile_open(cl_outfile *o, const char *path, bool force, mode_t mode)
{
    memset(o, 0, sizeof(*o));
    o->fd = -1;
    o->force = force;
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        /* --force replaces a file; it must never replace a device, a directory
         * or a link (renaming over /dev/null would destroy it). */
        CL_ENSURE(S_ISREG(sb.st_mode), CL_ERR_USAGE, "%s exists and is not a regular file; give a file path", path);
        CL_ENSURE(force, CL_ERR_EXISTS, "%s already exists; use --force to replace it", path);
    }
    uint8_t rnd[6];
    CL_GUARD(cl_random(rnd, sizeof(rnd)));
    size_t n = strlen(path) + 32;
    o->path = strdup(path);
    o->tmp = malloc(n);
    if (o->path == NULL || o->tmp == NULL) {
        cl_outfile_abort(o);
        CL_FAIL(CL_ERR_NOMEM, "out of memory");
    }
    char hex[2 * 6 + 1];
    (void)snprintf(o->tmp, n, "%s.%s.tmp", path, cl_hex_encode(rnd, 6, hex, sizeof(hex)));
    o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (o->fd < 0) {
        cl_status rc = CL_RAISE_ERRNO(CL_ERR_IO, "cannot create %s", o->tmp);
        free(o->tmp);
        o->tmp = NULL;
        cl_outfile_abort(o);
        return rc;
    }
    return CL_OK;
}

cl_status cl_outfile_commit(cl_outfile *o)
{
    cl_status rc = CL_OK;
    CL_ENSURE(o->fd >= 0 && o->tmp != NULL, CL_ERR_INTERNAL, "output file is not open");
    if (fsync(o->fd) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot sync %s", o->tmp);
    if (close(o->fd) != 0) {
        o->fd = -1;
        CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot close %s", o->tmp);
    }
    o->fd = -1;
    if (o->force) {
        if (rename(o->tmp, o->path) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot rename to %s", o->path);
    } else {
        /* link() fails if the target appeared meanwhile: never clobber. */
        if (link(o->tmp, o->path) != 0) {
            if (errno == EEXIST) CL_FAIL_GOTO(CL_ERR_EXISTS, "%s already exists; use --force to replace it", o->path);
            CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot create %s", o->path);
        }
        (void)unlink(o->tmp);
    }
    free(o->tmp);
    o->tmp = NULL;
    CL_GUARD_GOTO(cl_fs_sync_parent(o->path));
out:
    cl_outfile_abort(o);
    return rc;
}

void cl_outfile_abort(cl_outfile *o)
{
    if (o->fd >= 0) close(o->fd);
    o->fd = -1;
    if (o->tmp != NULL) (void)unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    o->tmp = NULL;
    o->path = NULL;
}
