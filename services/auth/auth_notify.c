/*
 * auth_notify: Authelia's notifier, the `filesystem` kind: each message (the one-time code of an
 * identity verification) replaces the file `notifier.filesystem.filename`, written 0600 and renamed
 * into place, so whoever reads it sees one whole message. `notifier.smtp` is refused: nothing here
 * sends mail.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"

int auth_notify_parse(const xt_doc *doc, const xt_node *n, char **filename, char *err, size_t errlen)
{
    static const char *const keys[] = {"disable_startup_check", "filesystem", "smtp", "template_path", NULL};
    static const char *const fs_keys[] = {"filename", NULL};
    const xt_node *fs, *fn;
    const char *path = NULL;
    *filename = NULL;
    if (!n || n->is_null) return 0;
    if (xt_conf_want_map(doc, n, "notifier", err, errlen) < 0 ||
        xt_conf_check_keys(doc, n, keys, "notifier", err, errlen) < 0)
        return -1;
    if (xt_map_get(n, "smtp"))
        return xt_conf_error(err, errlen, doc, xt_map_key(n, "smtp"),
                             "notifier.smtp is not supported by xtask-auth (nothing here sends mail): use "
                             "notifier.filesystem.filename");
    if (!(fs = xt_map_get(n, "filesystem"))) return 0;
    if (xt_conf_want_map(doc, fs, "notifier.filesystem", err, errlen) < 0 ||
        xt_conf_check_keys(doc, fs, fs_keys, "notifier.filesystem", err, errlen) < 0)
        return -1;
    if (!(fn = xt_map_get(fs, "filename")) ||
        xt_conf_string(doc, fn, "notifier.filesystem.filename", &path, err, errlen) < 0 || !path || !*path)
        return xt_conf_error(
            err, errlen, doc, fn ? fn : xt_map_key(n, "filesystem"),
            "notifier.filesystem.filename: want the path of the file messages are written to");
    if (path[0] != '/')
        return xt_conf_error(err, errlen, doc, fn, "notifier.filesystem.filename: want an absolute path");
    if (strlen(path) >= 4000)
        return xt_conf_error(err, errlen, doc, fn, "notifier.filesystem.filename: path too long");
    *filename = strdup(path);
    if (!*filename) return xt_conf_error(err, errlen, doc, fn, "out of memory");
    return 0;
}

int auth_notify_send(const char *filename, const char *to, const char *subject, const char *body, char *err,
                     size_t errlen)
{
    char tmp[4096], date[64];
    time_t now = time(NULL);
    struct tm tm;
    FILE *f = NULL;
    int fd, rc = -1;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", filename, (long)getpid()) >= sizeof(tmp)) {
        snprintf(err, errlen, "%s: path too long", filename);
        return -1;
    }
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    fprintf(f, "Date: %s\nRecipient: %s\nSubject: %s\n\n%s\n", date, to, subject, body);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        return -1;
    }
    fclose(f);
    if (rename(tmp, filename) != 0) {
        snprintf(err, errlen, "rename %s: %s", filename, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    return rc;
}
