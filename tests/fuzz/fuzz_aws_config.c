/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reader of ~/.aws/config and ~/.aws/credentials (cl_aws_ini_parse), files people
 * edit by hand: any input parses or fails with a status, never crashes, and every entry
 * it reports lies inside the input, with a line number that exists and a name where one
 * is required.
 */
#include <stdlib.h>
#include <string.h>

#include "cloister/aws_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_input {
    const uint8_t *data;
    size_t size;
    size_t lines;
} fuzz_input;

static void fuzz_inside(const fuzz_input *in, const cl_reader *r)
{
    const uint8_t *p;
    size_t n;
    cl_reader_rest(r, &p, &n);
    if (n == 0) return;
    if (p < in->data || n > in->size || p > in->data + (in->size - n)) __builtin_trap();
}

static CL_MUST_USE cl_status fuzz_entry(void *arg, const cl_aws_ini_entry *e)
{
    const fuzz_input *in = arg;
    fuzz_inside(in, &e->section);
    fuzz_inside(in, &e->key);
    fuzz_inside(in, &e->subkey);
    fuzz_inside(in, &e->value);
    if (e->line < 1 || e->line > in->lines) __builtin_trap();
    if (cl_reader_remaining(&e->section) == 0) __builtin_trap();
    if (cl_reader_remaining(&e->key) == 0 && cl_reader_remaining(&e->value) != 0) __builtin_trap();
    if (cl_reader_remaining(&e->value) > CL_AWS_VALUE_MAX) __builtin_trap();
    return CL_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {.data = data, .size = size, .lines = 1};
    for (size_t i = 0; i < size; i++) in.lines += data[i] == '\n';
    (void)cl_aws_ini_parse(data, size, "fuzz", fuzz_entry, &in);
    return 0;
}
