/* SPDX-License-Identifier: Apache-2.0 */
#include "cloister/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static _Atomic int cl_log_level_current = CL_LOG_LEVEL_WARN;
static const char *cl_log_program = "cloister";

static const char *const cl_log_level_names[] = {"error", "warn", "info", "debug"};

void cl_log_init(const char *program)
{
    if (program != NULL) cl_log_program = program;
    const char *env = getenv("CLOISTER_LOG");
    if (env == NULL) return;
    for (int i = 0; i <= CL_LOG_LEVEL_DEBUG; i++) {
        if (strcasecmp(env, cl_log_level_names[i]) == 0) cl_log_set_level((cl_log_level)i);
    }
}

void cl_log_set_level(cl_log_level level) { atomic_store(&cl_log_level_current, (int)level); }

cl_log_level cl_log_get_level(void) { return (cl_log_level)atomic_load(&cl_log_level_current); }

int cl_log_enabled(cl_log_level level) { return (int)level <= atomic_load(&cl_log_level_current); }

void cl_log_write(cl_log_level level, const char *file, int line, const char *fmt, ...)
{
    char msg[2048];
    char when[40];
    struct timespec ts;
    struct tm tm;
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    (void)strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    /* One fprintf per line so lines from threads do not interleave. */
    if (level == CL_LOG_LEVEL_DEBUG) {
        fprintf(stderr, "%s.%03ldZ %s %s: %s (%s:%d)\n", when, ts.tv_nsec / 1000000L, cl_log_program,
                cl_log_level_names[level], msg, file, line);
    } else {
        fprintf(stderr, "%s.%03ldZ %s %s: %s\n", when, ts.tv_nsec / 1000000L, cl_log_program, cl_log_level_names[level],
                msg);
    }
}
