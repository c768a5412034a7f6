/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Output files that appear whole or not at all: written to a temporary file in
 * the same directory, synced, then renamed over the target. A failure deletes
 * the temporary file, so no partial plaintext is ever left behind.
 */
#ifndef CLOISTER_FS_H
#define CLOISTER_FS_H

#include <stdbool.h>
#include <sys/types.h>

#include "cloister/error.h"

typedef struct cl_outfile {
    char *path;
    char *tmp;
    int fd;
    bool force;
} cl_outfile;

/* Fails with CL_ERR_EXISTS if path exists and !force. */
CL_MUST_USE cl_status cl_outfile_open(cl_outfile *o, const char *path, bool force, mode_t mode);
/* Syncs and renames into place (without replacing an existing file unless
 * force), then syncs the directory. Closes the file either way. */
CL_MUST_USE cl_status cl_outfile_commit(cl_outfile *o);
/* Deletes the temporary file. Safe after commit (does nothing) and twice. */
void cl_outfile_abort(cl_outfile *o);

/* fsyncs the directory that holds path, so a rename or create is durable. */
CL_MUST_USE cl_status cl_fs_sync_parent(const char *path);

#endif
