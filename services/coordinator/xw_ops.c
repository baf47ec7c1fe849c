/* xw_ops: which.check, got.download, kill-port (see xw_ops.h). */
#include "xw_ops.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xp_proto.h"
#include "xr_run.h"

static char *dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

int xw_which_path(const char *name, char *out, size_t outlen)
{
    const char *path = getenv("PATH");
    if (!name || !*name || strchr(name, '/')) return -1;
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path; *p;) {
        const char *colon = strchr(p, ':');
        size_t dl = colon ? (size_t)(colon - p) : strlen(p);
        struct stat sb;
        int n = snprintf(out, outlen, "%.*s/%s", (int)dl, dl ? p : ".", name);
        if (n > 0 && (size_t)n < outlen && stat(out, &sb) == 0 && S_ISREG(sb.st_mode) &&
            access(out, X_OK) == 0)
            return 0;
        p += dl;
        if (*p == ':') p++;
    }
    return -1;
}

char *xw_which(const xc_conf *c, json_t *req)
{
    const char *name = json_string_value(json_object_get(req, "name"));
    char path[PATH_MAX];
    if (!name) return xp_error_json(XP_ERR_BAD_REQUEST, "'name' (string) is required");
    if (!xp_task_name_valid(name))
        return xp_error_json(XP_ERR_BAD_REQUEST, "'%.64s' is not a program name", name);
    if (xw_which_path(name, path, sizeof path) != 0)
        return dump(json_pack("{s:s,s:b,s:n,s:n}", "name", name, "found", 0, "path", "version"));
    json_t *o = json_pack("{s:s,s:b,s:s,s:n}", "name", name, "found", 1, "path", path, "version");
    if (c->which_version) {
        /* `<path> --version`, first non-empty line; bounded in time and size, no shell. */
        char *argv[] = {path, "--version", NULL};
        xo_output out;
        xr_status st;
        xr_spec spec = {.argv = argv, .timeout_ms = c->which_timeout_ms, .kill_grace_ms = 0};
        if (xo_output_init(&out, 512, 0) == 0) {
            if (xr_run(&spec, &out, &st) == 0 && !st.timed_out) {
                size_t len;
                char *tail = xo_output_tail(&out, &len);
                char *line = tail;
                while (line && *line == '\n')
                    line++;
                if (line && *line) {
                    line[strcspn(line, "\r\n")] = '\0';
                    json_object_set_new(o, "version", json_string(line));
                }
                free(tail);
            }
            xo_output_free(&out);
        }
    }
    return dump(o);
}

int xw_path_allowed(char *const *dirs, const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    char dir[PATH_MAX], real[PATH_MAX];
    if (!path || path[0] != '/') {
        snprintf(err, errlen, "'output' must be an absolute path");
        return -1;
    }
    if (strlen(path) >= sizeof dir) {
        snprintf(err, errlen, "'output' is too long");
        return -1;
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash + 1;
    if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        snprintf(err, errlen, "'output' must name a file");
        return -1;
    }
    size_t dl = (size_t)(slash - path);
    memcpy(dir, path, dl);
    dir[dl] = '\0';
    if (!realpath(dl ? dir : "/", real)) {
        snprintf(err, errlen, "directory of '%s': %s", path, strerror(errno));
        return -1;
    }
    for (size_t i = 0; dirs && dirs[i]; i++) {
        size_t n = strlen(dirs[i]);
        if (strncmp(real, dirs[i], n) == 0 && (real[n] == '\0' || real[n] == '/' || n == 1)) {
            int w = snprintf(out, outlen, "%s/%s", real, base);
            if (w < 0 || (size_t)w >= outlen) {
                snprintf(err, errlen, "'output' is too long");
                return -1;
            }
            /* The target itself must not be a symlink that leads elsewhere, nor a directory. */
            struct stat sb;
            if (lstat(out, &sb) == 0 && !S_ISREG(sb.st_mode)) {
                snprintf(err, errlen, "'%s' exists and is not a regular file", out);
                return -1;
            }
            return 0;
        }
    }
    snprintf(err, errlen, "'%s' is outside the allowed download directories", path);
    return -1;
}

typedef struct {
    int fd;
    size_t bytes, max;
    int too_big, io_err;
    EVP_MD_CTX *md;
} dl_ctx;

static size_t dl_write(char *p, size_t sz, size_t nm, void *ud)
{
    dl_ctx *d = ud;
    size_t n = sz * nm;
    if (d->bytes + n > d->max) {
        d->too_big = 1;
        return 0;
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(d->fd, p + off, n - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            d->io_err = errno;
            return 0;
        }
        off += (size_t)w;
    }
    EVP_DigestUpdate(d->md, p, n);
    d->bytes += n;
    return n;
}

static int hex_valid_sha256(const char *s)
{
    if (strlen(s) != 64) return 0;
    for (size_t i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

char *xw_download(const xc_conf *c, json_t *req)
{
    const char *url = json_string_value(json_object_get(req, "url"));
    const char *output = json_string_value(json_object_get(req, "output"));
    json_t *jsha = json_object_get(req, "sha256");
    const char *want = json_string_value(jsha);
    char path[PATH_MAX], tmp[PATH_MAX + 32], err[512], hex[65];
    char *reply = NULL;
    CURL *h = NULL;
    dl_ctx d = {.fd = -1, .max = c->download_max_bytes};

    if (!url || !output)
        return xp_error_json(XP_ERR_BAD_REQUEST, "'url' and 'output' (strings) are required");
    if (jsha && !json_is_null(jsha) && (!want || !hex_valid_sha256(want)))
        return xp_error_json(XP_ERR_BAD_REQUEST, "'sha256' must be 64 hex digits");
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return xp_error_json(XP_ERR_BAD_REQUEST, "only http:// and https:// URLs are allowed");
    if (!c->download_dirs || !c->download_dirs[0])
        return xp_error_json(XP_ERR_NOT_ALLOWED,
                             "downloads are not enabled on this node (download.dirs is empty)");
    if (xw_path_allowed(c->download_dirs, output, path, sizeof path, err, sizeof err) != 0)
        return xp_error_json(XP_ERR_PATH_NOT_ALLOWED, "%s", err);

    snprintf(tmp, sizeof tmp, "%s.partXXXXXX", path);
    d.fd = mkostemp(tmp, O_CLOEXEC);
    if (d.fd < 0)
        return xp_error_json(XP_ERR_INTERNAL, "cannot create a temporary file: %s", strerror(errno));
    d.md = EVP_MD_CTX_new();
    h = curl_easy_init();
    if (!d.md || !h || !EVP_DigestInit_ex(d.md, EVP_sha256(), NULL)) {
        reply = xp_error_json(XP_ERR_INTERNAL, "out of memory");
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->download_timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->download_max_bytes);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, dl_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "xtask/" XP_VERSION);
    CURLcode cc = curl_easy_perform(h);
    if (d.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
        reply = xp_error_json(XP_ERR_DOWNLOAD_FAILED, "the download exceeds the limit of %zu bytes",
                              c->download_max_bytes);
        goto out;
    }
    if (d.io_err) {
        reply = xp_error_json(XP_ERR_INTERNAL, "writing '%s': %s", tmp, strerror(d.io_err));
        goto out;
    }
    if (cc != CURLE_OK) {
        reply = xp_error_json(XP_ERR_DOWNLOAD_FAILED, "%s", curl_easy_strerror(cc));
        goto out;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_DigestFinal_ex(d.md, md, &mdlen);
    for (unsigned i = 0; i < mdlen && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[64] = '\0';
    if (want && strcasecmp(want, hex) != 0) {
        reply = xp_error_json(XP_ERR_CHECKSUM_MISMATCH, "sha256 is %s, expected %s", hex, want);
        goto out;
    }
    if (fsync(d.fd) != 0 || fchmod(d.fd, 0644) != 0 || rename(tmp, path) != 0) {
        reply = xp_error_json(XP_ERR_INTERNAL, "cannot put '%s' in place: %s", path, strerror(errno));
        goto out;
    }
    tmp[0] = '\0'; /* renamed: nothing to remove */
    reply = dump(json_pack("{s:s,s:I,s:s}", "path", path, "bytes", (json_int_t)d.bytes, "sha256", hex));
out:
    if (d.fd >= 0) close(d.fd);
    if (tmp[0]) unlink(tmp);
    EVP_MD_CTX_free(d.md);
    curl_easy_cleanup(h);
    return reply;
}

/* Socket inodes listening on `port` in one /proc/net/tcp-format file. */
static size_t listen_inodes(const char *file, unsigned port, unsigned long *inodes, size_t n, size_t max)
{
    FILE *f = fopen(file, "re");
    char line[512];
    if (!f) return n;
    if (!fgets(line, sizeof line, f)) { /* header */
        fclose(f);
        return n;
    }
    while (n < max && fgets(line, sizeof line, f)) {
        char local[128];
        unsigned st;
        unsigned long inode;
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
        if (sscanf(line, " %*s %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &st, &inode) != 3) continue;
        const char *colon = strrchr(local, ':');
        if (!colon || st != 0x0A) /* TCP_LISTEN */
            continue;
        if (strtoul(colon + 1, NULL, 16) == port && inode != 0) inodes[n++] = inode;
    }
    fclose(f);
    return n;
}

size_t xw_port_listeners(const char *proc_root, unsigned port, pid_t *pids, size_t max)
{
    unsigned long inodes[64];
    size_t ni = 0, np = 0;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/net/tcp", proc_root);
    ni = listen_inodes(p, port, inodes, ni, 64);
    snprintf(p, sizeof p, "%s/net/tcp6", proc_root);
    ni = listen_inodes(p, port, inodes, ni, 64);
    if (ni == 0) return 0;
    DIR *d = opendir(proc_root);
    struct dirent *e;
    while (d && np < max && (e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        snprintf(p, sizeof p, "%s/%ld/fd", proc_root, pid);
        DIR *fd = opendir(p);
        struct dirent *fe;
        int hit = 0;
        while (fd && !hit && (fe = readdir(fd))) {
            char lp[PATH_MAX], target[64];
            if (fe->d_name[0] == '.') continue;
            snprintf(lp, sizeof lp, "%s/%ld/fd/%s", proc_root, pid, fe->d_name);
            ssize_t n = readlink(lp, target, sizeof target - 1);
            if (n <= 0) continue;
            target[n] = '\0';
            unsigned long ino;
            if (sscanf(target, "socket:[%lu]", &ino) == 1)
                for (size_t i = 0; i < ni && !hit; i++)
                    hit = inodes[i] == ino;
        }
        if (fd) closedir(fd);
        if (hit) pids[np++] = (pid_t)pid;
    }
    if (d) closedir(d);
    return np;
}

char *xw_kill_port(const xc_conf *c, unsigned port)
{
    pid_t pids[16];
    if (port < 1 || port > 65535) return xp_error_json(XP_ERR_BAD_REQUEST, "port must be 1-65535");
    if (!xc_conf_port_allowed(c, port))
        return xp_error_json(XP_ERR_NOT_ALLOWED, "port %u is not in kill_port.ports on this node", port);
    size_t n = xw_port_listeners("/proc", port, pids, 16);
    json_t *killed = json_array();
    for (size_t i = 0; i < n; i++) {
        if (pids[i] == getpid() || pids[i] == 1) continue; /* never ourselves nor init */
        if (kill(pids[i], SIGTERM) == 0) json_array_append_new(killed, json_integer(pids[i]));
    }
    /* Give them up to a second to go, then force. */
    int64_t until = xp_mono_ms() + 1000;
    for (size_t i = 0; i < json_array_size(killed); i++) {
        pid_t pid = (pid_t)json_integer_value(json_array_get(killed, i));
        while (kill(pid, 0) == 0 && xp_mono_ms() < until) {
            char st[64], path[64];
            snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
            FILE *f = fopen(path, "re");
            int zombie = f && fgets(st, sizeof st, f) && strstr(st, ") Z");
            if (f) fclose(f);
            if (zombie) break;
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL); /* polling a foreign pid's exit: no fd to wait on */
        }
        if (xp_mono_ms() >= until) kill(pid, SIGKILL);
    }
    return dump(json_pack("{s:i,s:b,s:o}", "port", (int)port, "found", n > 0, "killed", killed));
}
