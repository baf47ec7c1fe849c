/* bus_store: atomic, mode-exact files of the bus directory (contract in bus_store.h). */
#include "bus_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int bus_store_path(char *out, size_t outlen, const char *dir, const char *name)
{
    int n = snprintf(out, outlen, "%s/%s", dir, name);
    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

int bus_store_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int bus_store_write(const char *path, const void *data, size_t len, mode_t mode, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    int fd = -1, rc = -1;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (fchmod(fd, mode) != 0) {
        snprintf(err, errlen, "cannot chmod %s: %s", tmp, strerror(errno));
        goto out;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
            goto out;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0) close(fd);
    if (rc != 0) unlink(tmp);
    return rc;
}

char *bus_store_read(const char *path, size_t max, size_t *len, int *missing, char *err, size_t errlen)
{
    char *buf = NULL, *result = NULL;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (missing) *missing = 0;
    if (fd < 0) {
        if (missing) *missing = errno == ENOENT;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    buf = malloc(max + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + got, max + 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0) break;
        got += (size_t)r;
        if (got > max) {
            snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
            goto out;
        }
    }
    buf[got] = '\0';
    if (len) *len = got;
    result = buf;
    buf = NULL;
out:
    if (fd >= 0) close(fd);
    if (buf) {
        memset(buf, 0, max + 1);
        free(buf);
    }
    return result;
}

int bus_store_mkdir(const char *path, mode_t mode, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    size_t n = strnlen(path, sizeof(tmp));
    if (n == 0 || n >= sizeof(tmp)) {
        snprintf(err, errlen, "bad directory path");
        return -1;
    }
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, c ? 0755 : mode) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
                return -1;
            }
            *p = c;
            if (c == '\0') break;
        }
    }
    if (chmod(path, mode) != 0) {
        snprintf(err, errlen, "cannot chmod %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
