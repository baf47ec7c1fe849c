/*
 * fuzz.h: what the libFuzzer harnesses share (header-only: each harness is one file).
 *
 * A harness gets bytes; the parsers take C strings, memory buffers or file paths. fz_str() gives a
 * NUL-terminated copy, fz_path() a path to a memfd holding the bytes (no disk I/O, nothing left
 * behind), fz_env() a fixed environment for ${VAR} expansion so that a finding replays the same.
 */
#ifndef XT_FUZZ_H
#define XT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A malloc'd NUL-terminated copy of the input (NUL bytes inside stay: the parser sees a prefix). */
static inline char *fz_str(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL) abort();
    if (size) memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* "/proc/self/fd/N" of one memfd per process, rewritten with the input. */
static inline const char *fz_path(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz-input", MFD_CLOEXEC);
        if (fd < 0) abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) abort();
    size_t off = 0;
    while (off < size) {
        ssize_t n = pwrite(fd, data + off, size - off, (off_t)off);
        if (n <= 0) abort();
        off += (size_t)n;
    }
    return path;
}

/* ${VAR} lookups: a few set names, everything else unset. */
static inline const char *fz_env(const char *name, void *ud)
{
    (void)ud;
    if (strcmp(name, "HOME") == 0) return "/home/fuzz";
    if (strcmp(name, "XTASK_RUN_DIR") == 0) return "/run/xtask";
    if (strcmp(name, "XTASK_DOMAIN") == 0) return "example.com";
    if (strcmp(name, "EMPTY") == 0) return "";
    return NULL;
}

/* Split the input at the first NUL: a = before, b = after (both NUL-terminated, malloc'd as one). */
static inline char *fz_split(const uint8_t *data, size_t size, const char **a, size_t *alen, const char **b,
                             size_t *blen)
{
    char *s = fz_str(data, size);
    size_t n = strlen(s);
    *a = s;
    *alen = n;
    *b = n < size ? s + n + 1 : s + size;
    *blen = n < size ? size - n - 1 : 0;
    return s;
}

#endif
