/* xw_ops: which.check, got.download, kill-port (see xw_ops.h). */
#include "xw_ops.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xg_guard.h"
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
        xr_spec spec = {
            .argv = argv, .env = c->task_env, .timeout_ms = c->which_timeout_ms, .kill_grace_ms = 0};
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
    /* The addresses the guard checked for this hop: the only ones a socket may be opened to. */
    xg_addr checked[XG_ADDRS_MAX];
    size_t nchecked;
    char refused[INET6_ADDRSTRLEN]; /* set when libcurl asked for any other address */
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

/* libcurl's socket factory: the last gate. Only an address the guard checked gets a socket, whatever
 * libcurl resolved or was told (proxies are off, the host is pinned with CURLOPT_RESOLVE). */
static curl_socket_t dl_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *sa)
{
    dl_ctx *d = ud;
    xg_addr a;
    int ok = 0;
    if (purpose == CURLSOCKTYPE_IPCXN && xg_addr_from_sockaddr(&sa->addr, &a) == 0)
        for (size_t i = 0; i < d->nchecked && !ok; i++)
            ok = d->checked[i].family == a.family &&
                 memcmp(d->checked[i].addr, a.addr, a.family == AF_INET ? 4 : 16) == 0;
    if (!ok) {
        if (sa->family == AF_INET || sa->family == AF_INET6)
            xg_addr_format(&a, d->refused, sizeof d->refused);
        else
            snprintf(d->refused, sizeof d->refused, "family %d", sa->family);
        return CURL_SOCKET_BAD;
    }
    return socket(sa->family, sa->socktype | SOCK_CLOEXEC, sa->protocol);
}

/* Start the file over (a redirect's body is not the download). */
static int dl_reset(dl_ctx *d)
{
    d->bytes = 0;
    if (ftruncate(d->fd, 0) != 0 || lseek(d->fd, 0, SEEK_SET) != 0) return -1;
    return EVP_DigestInit_ex(d->md, EVP_sha256(), NULL) ? 0 : -1;
}

/* One request of a download: parse and check `url` (scheme, host resolved once, every address
 * checked), pin the checked addresses, fetch without following redirects. Returns 0 and the
 * redirect target (malloc'd) in *next, or 0 and *next NULL when the body is in the file, or an
 * error: -1, its code and message. */
static int dl_hop(const xc_conf *c, const char *url, dl_ctx *d, int64_t deadline, char **next, xp_err *code,
                  char *msg, size_t msglen)
{
    int rc = -1;
    char *scheme = NULL, *host = NULL, *port = NULL, *loc = NULL, err[512];
    char entry[512 + XG_ADDRS_MAX * (INET6_ADDRSTRLEN + 3)];
    struct curl_slist *pin = NULL;
    CURLU *u = curl_url();
    CURL *h = curl_easy_init();
    xg_allow allow = {c->download_allow_hosts, c->download_allow_nets, c->ndownload_allow_nets};
    *next = NULL;
    if (!u || !h) {
        *code = XP_ERR_INTERNAL;
        snprintf(msg, msglen, "out of memory");
        goto out;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        *code = XP_ERR_BAD_REQUEST;
        snprintf(msg, msglen, "'%.200s' is not a valid URL", url);
        goto out;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        *code = XP_ERR_BAD_REQUEST;
        snprintf(msg, msglen, "only http:// and https:// URLs are allowed (got %.16s://)", scheme);
        goto out;
    }
    if (xg_resolve_checked(host, &allow, d->checked, &d->nchecked, err, sizeof err) != 0) {
        *code = strstr(err, "refused") ? XP_ERR_NOT_ALLOWED : XP_ERR_DOWNLOAD_FAILED;
        snprintf(msg, msglen, "%s", err);
        goto out;
    }
    /* Pin the name to the checked addresses: libcurl must not ask the resolver again. */
    if (host[0] != '[') {
        size_t off = (size_t)snprintf(entry, sizeof entry, "%s:%s:", host, port);
        for (size_t i = 0; i < d->nchecked && off < sizeof entry; i++) {
            char t[INET6_ADDRSTRLEN];
            xg_addr_format(&d->checked[i], t, sizeof t);
            off += (size_t)snprintf(entry + off, sizeof entry - off,
                                    d->checked[i].family == AF_INET6 ? "%s[%s]" : "%s%s", i ? "," : "", t);
        }
        if (off >= sizeof entry || !(pin = curl_slist_append(NULL, entry))) {
            *code = XP_ERR_INTERNAL;
            snprintf(msg, msglen, "the host '%.200s' is too long", host);
            goto out;
        }
        curl_easy_setopt(h, CURLOPT_RESOLVE, pin);
    }
    int64_t left = deadline - xp_mono_ms();
    if (left <= 0) {
        *code = XP_ERR_DOWNLOAD_FAILED;
        snprintf(msg, msglen, "the download timed out");
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_CURLU, u); /* the very URL that was checked, no second parse */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* redirects are new hops, checked again */
    curl_easy_setopt(h, CURLOPT_PROXY, "");          /* never an environment proxy: it would resolve */
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, dl_open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, d);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)left);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->download_max_bytes);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, dl_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "xtask/" XP_VERSION);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (d->refused[0]) {
        *code = XP_ERR_NOT_ALLOWED;
        snprintf(msg, msglen, "libcurl tried to connect to %s, which was not checked: refused", d->refused);
    } else if (d->too_big || cc == CURLE_FILESIZE_EXCEEDED) {
        *code = XP_ERR_DOWNLOAD_FAILED;
        snprintf(msg, msglen, "the download exceeds the limit of %zu bytes", c->download_max_bytes);
    } else if (d->io_err) {
        *code = XP_ERR_INTERNAL;
        snprintf(msg, msglen, "writing the download: %s", strerror(d->io_err));
    } else if (cc != CURLE_OK) {
        *code = XP_ERR_DOWNLOAD_FAILED;
        snprintf(msg, msglen, "%s", curl_easy_strerror(cc));
    } else if (status >= 300 && status < 400) {
        if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK || !loc) {
            *code = XP_ERR_DOWNLOAD_FAILED;
            snprintf(msg, msglen, "HTTP %ld without a Location", status);
        } else if (!(*next = strdup(loc))) {
            *code = XP_ERR_INTERNAL;
            snprintf(msg, msglen, "out of memory");
        } else {
            rc = 0;
        }
    } else {
        rc = 0;
    }
out:
    curl_easy_cleanup(h);
    curl_slist_free_all(pin);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

static int hex_valid_sha256(const char *s)
{
    if (strlen(s) != 64) return 0;
    for (size_t i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

#define DL_MAX_REDIRECTS 5

char *xw_download(const xc_conf *c, json_t *req)
{
    const char *url = json_string_value(json_object_get(req, "url"));
    const char *output = json_string_value(json_object_get(req, "output"));
    json_t *jsha = json_object_get(req, "sha256");
    const char *want = json_string_value(jsha);
    char path[PATH_MAX], tmp[PATH_MAX + 32], err[512], hex[65];
    char *reply = NULL, *hop_url = NULL;
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
    hop_url = strdup(url);
    if (!d.md || !hop_url || !EVP_DigestInit_ex(d.md, EVP_sha256(), NULL)) {
        reply = xp_error_json(XP_ERR_INTERNAL, "out of memory");
        goto out;
    }
    int64_t deadline = xp_mono_ms() + c->download_timeout_ms;
    for (int hop = 0;; hop++) {
        char *next = NULL;
        if (hop > DL_MAX_REDIRECTS) {
            reply = xp_error_json(XP_ERR_DOWNLOAD_FAILED, "more than %d redirects", DL_MAX_REDIRECTS);
            goto out;
        }
        if (hop > 0 && dl_reset(&d) != 0) {
            reply = xp_error_json(XP_ERR_INTERNAL, "cannot truncate '%s': %s", tmp, strerror(errno));
            goto out;
        }
        xp_err code = XP_ERR_INTERNAL;
        char msg[768];
        if (dl_hop(c, hop_url, &d, deadline, &next, &code, msg, sizeof msg) != 0) {
            if (hop > 0) /* say which redirect it was */
                reply = xp_error_json(code, "redirect to '%.300s': %s", hop_url, msg);
            else
                reply = xp_error_json(code, "%s", msg);
            goto out;
        }
        if (!next) break;
        free(hop_url);
        hop_url = next;
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
    free(hop_url);
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
