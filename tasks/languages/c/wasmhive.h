/* wasmhive task helper for C (Task ABI v1): read all of stdin, parse numbers, write the
 * output, fail with a message. Header-only; build with
 *   clang --target=wasm32-wasi -O2 -o task.wasm task.c
 * wasm32 trap: `int`, `long` and `size_t` are 32 bits there; use uint64_t for anything
 * that can pass 2^32. */
#ifndef WASMHIVE_H
#define WASMHIVE_H

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints "error: MESSAGE" to stderr and exits with code 2 (a deterministic failure). */
static void wasmhive_fail(const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    fputs("error: ", stderr);
    vfprintf(stderr, format, arguments);
    fputc('\n', stderr);
    va_end(arguments);
    exit(2);
}

/* All of stdin, NUL-terminated; its length in *length (if not NULL). */
static char *wasmhive_read_input(size_t *length) {
    size_t capacity = 4096, used = 0;
    char *buffer = malloc(capacity);
    if (buffer == NULL) wasmhive_fail("out of memory");
    for (;;) {
        if (used + 1 == capacity) {
            capacity *= 2;
            buffer = realloc(buffer, capacity);
            if (buffer == NULL) wasmhive_fail("out of memory");
        }
        size_t count = fread(buffer + used, 1, capacity - used - 1, stdin);
        if (count == 0) break;
        used += count;
    }
    buffer[used] = '\0';
    if (length != NULL) *length = used;
    return buffer;
}

/* Parses exactly `count` whitespace-separated whole numbers from stdin into `numbers`;
 * `names` (e.g. "START END") is used in the error message. */
static void wasmhive_read_numbers(uint64_t *numbers, int count, const char *names) {
    char *cursor = wasmhive_read_input(NULL);
    for (int index = 0; index < count; index++) {
        while (isspace((unsigned char)*cursor)) cursor++;
        if (!isdigit((unsigned char)*cursor)) wasmhive_fail("expected %d numbers `%s`", count, names);
        char *end;
        errno = 0;
        numbers[index] = strtoull(cursor, &end, 10);
        if (errno != 0 || (*end != '\0' && !isspace((unsigned char)*end)))
            wasmhive_fail("expected %d numbers `%s`", count, names);
        cursor = end;
    }
    while (isspace((unsigned char)*cursor)) cursor++;
    if (*cursor != '\0') wasmhive_fail("expected %d numbers `%s`", count, names);
}

#endif
