/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one way to log: leveled lines on stderr.
 *
 * Never pass a secret, a plaintext, or key material to these macros. Log what
 * happened and to which object (key id, file name, sizes), never the bytes.
 */
#ifndef CLOISTER_LOG_H
#define CLOISTER_LOG_H

#include "cloister/error.h"

typedef enum cl_log_level {
    CL_LOG_LEVEL_ERROR = 0,
    CL_LOG_LEVEL_WARN,
    CL_LOG_LEVEL_INFO,
    CL_LOG_LEVEL_DEBUG,
} cl_log_level;

/* Sets the program name shown on each line and reads CLOISTER_LOG
 * (error|warn|info|debug) for the level; default warn. */
void cl_log_init(const char *program);
void cl_log_set_level(cl_log_level level);
cl_log_level cl_log_get_level(void);
int cl_log_enabled(cl_log_level level);
void cl_log_write(cl_log_level level, const char *file, int line, const char *fmt, ...) CL_PRINTF(4, 5);

#define CL_LOG(level, ...) \
    do { \
        if (cl_log_enabled(level)) cl_log_write((level), __FILE__, __LINE__, __VA_ARGS__); \
    } while (0)
#define CL_LOG_ERROR(...) CL_LOG(CL_LOG_LEVEL_ERROR, __VA_ARGS__)
#define CL_LOG_WARN(...) CL_LOG(CL_LOG_LEVEL_WARN, __VA_ARGS__)
#define CL_LOG_INFO(...) CL_LOG(CL_LOG_LEVEL_INFO, __VA_ARGS__)
#define CL_LOG_DEBUG(...) CL_LOG(CL_LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
