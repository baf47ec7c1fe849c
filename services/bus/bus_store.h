/*
 * bus_store: the files of the bus directory, written atomically (temp file, fsync, rename) with an
 * exact mode, and read with a size bound.
 */
#ifndef BUS_STORE_H
#define BUS_STORE_H

#include <stddef.h>
#include <sys/types.h>

/* Write data to path atomically with `mode` (the temporary file is created with that mode, so a
 * secret is never readable by others, not even briefly). Returns 0 or -1 with err. */
int bus_store_write(const char *path, const void *data, size_t len, mode_t mode, char *err, size_t errlen);

/* Read the whole file (at most max bytes; larger is an error) into a NUL-terminated malloc'd buffer.
 * Returns NULL with err; *missing set to 1 when the file does not exist (err then says so too). */
char *bus_store_read(const char *path, size_t max, size_t *len, int *missing, char *err, size_t errlen);

/* mkdir -p with `mode` for each directory created; an existing one gets `mode` too. */
int bus_store_mkdir(const char *path, mode_t mode, char *err, size_t errlen);

/* snprintf into out; -1 if truncated. */
int bus_store_path(char *out, size_t outlen, const char *dir, const char *name);

/* 1 if path exists. */
int bus_store_exists(const char *path);

#endif
