/*
 * users: `user:` and `group:` resolved to numbers without loading NSS modules.
 *
 * The supervisor is linked statically (README, "Memory"), and a static glibc that is asked
 * getpwnam_r/initgroups loads the NSS modules of /etc/nsswitch.conf (libnss_systemd.so.2, sss,
 * ldap) with dlopen: a module built against the shared libc then runs inside the static one, which
 * glibc does not support, and crashes (SIGSEGV in getpwnam_r on a host without the user). So:
 *
 * 1. /etc/passwd and /etc/group are read directly (fgetpwent_r / fgetgrent_r parse a stream: no
 *    NSS, no dlopen);
 * 2. a name the files do not know is asked of `getent` (a dynamic program, where NSS works: LDAP,
 *    SSSD, systemd's dynamic users), in a child with a deadline;
 * 3. what neither knows is an error at `check`, at `run` (nothing started) and at `reload`
 *    (refused), with the position of the `user:` or `group:` value. A number is taken as is.
 *
 * This runs once per manifest load, never at a spawn: a spawn takes the numbers (setgroups, setgid,
 * setuid) and looks nothing up. XTASK_SUPERVISOR_PASSWD_FILE / XTASK_SUPERVISOR_GROUP_FILE replace
 * the two files (tests; an image whose users live elsewhere).
 */
#include "sv.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define USERS_GETENT_MS 5000  /* getent's deadline (a slow directory server) */
#define USERS_GETENT_MAX 8192 /* bytes of getent output read */
#define USERS_MAX_GROUPS 256  /* supplementary groups kept */

typedef struct {
    char name[256];
    uid_t uid;
    gid_t gid;
    int from_nss; /* found by getent, not in the passwd file */
} users_pw;

static const char *passwd_file(void)
{
    const char *f = getenv("XTASK_SUPERVISOR_PASSWD_FILE");
    return f != NULL && *f != '\0' ? f : "/etc/passwd";
}

static const char *group_file(void)
{
    const char *f = getenv("XTASK_SUPERVISOR_GROUP_FILE");
    return f != NULL && *f != '\0' ? f : "/etc/group";
}

/* A decimal id (no sign, no blank, fits in 32 bits); 1 and *out, or 0. */
static int parse_id(const char *s, unsigned long *out)
{
    char *end;
    if (*s < '0' || *s > '9') return 0;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > 0xfffffffeUL) return 0;
    *out = v;
    return 1;
}

/* Run `getent DB KEY` and return its output (NUL-terminated, malloc'd) when it exits 0 within the
 * deadline; NULL otherwise (not found: exit 2; no getent; timeout: killed). */
static char *getent(const char *db, const char *key)
{
    int p[2];
    char *out = NULL;
    if (pipe2(p, O_CLOEXEC) < 0) return NULL;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return NULL;
    }
    if (pid == 0) {
        sigset_t empty;
        sigemptyset(&empty);
        sigprocmask(SIG_SETMASK, &empty, NULL);
        int nul = open("/dev/null", O_RDWR);
        if (nul < 0 || dup2(nul, 0) < 0 || dup2(p[1], 1) < 0 || dup2(nul, 2) < 0) _exit(127);
        char *argv[] = {"getent", (char *)db, (char *)key, NULL};
        execvp("getent", argv);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0, cap = USERS_GETENT_MAX + 1;
    char *buf = malloc(cap);
    int64_t deadline = sv_now_ms() + USERS_GETENT_MS;
    int killed = 0;
    for (;;) {
        int64_t left = deadline - sv_now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            killed = 1;
            break;
        }
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue; /* timeout: caught above */
        char tmp[1024];
        ssize_t n = read(p[0], tmp, sizeof(tmp));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (buf != NULL && len + (size_t)n < cap) {
            memcpy(buf + len, tmp, (size_t)n);
            len += (size_t)n;
        }
    }
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (buf != NULL && !killed && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        buf[len] = '\0';
        out = buf;
        buf = NULL;
    }
    free(buf);
    return out;
}

/* Split a colon-separated passwd/group line in place into at most max fields; returns the count. */
static int split_colons(char *line, char **f, int max)
{
    int n = 0;
    line[strcspn(line, "\n")] = '\0';
    f[n++] = line;
    for (char *c = line; *c != '\0' && n < max; c++)
        if (*c == ':') {
            *c = '\0';
            f[n++] = c + 1;
        }
    return n;
}

/* The user `key` (a name or a uid): the passwd file first, then getent. 1 found, 0 not. */
static int user_lookup(const char *key, users_pw *out)
{
    unsigned long num = 0;
    int by_id = parse_id(key, &num), found = 0;
    FILE *f = fopen(passwd_file(), "re");
    if (f != NULL) {
        struct passwd pw, *res;
        char buf[4096];
        while (!found && fgetpwent_r(f, &pw, buf, sizeof(buf), &res) == 0)
            if (by_id ? pw.pw_uid == (uid_t)num : strcmp(pw.pw_name, key) == 0) {
                snprintf(out->name, sizeof(out->name), "%s", pw.pw_name);
                out->uid = pw.pw_uid;
                out->gid = pw.pw_gid;
                out->from_nss = 0;
                found = 1;
            }
        fclose(f);
    }
    if (found) return 1;
    char *line = getent("passwd", key);
    if (line == NULL) return 0;
    char *fl[7];
    unsigned long uid, gid;
    if (split_colons(line, fl, 7) == 7 && parse_id(fl[2], &uid) && parse_id(fl[3], &gid) &&
        fl[0][0] != '\0') {
        snprintf(out->name, sizeof(out->name), "%s", fl[0]);
        out->uid = (uid_t)uid;
        out->gid = (gid_t)gid;
        out->from_nss = 1;
        found = 1;
    }
    free(line);
    return found;
}

/* The group `key` (a name or a gid) to a gid: the group file first, then getent; a number as is. */
static int group_lookup(const char *key, gid_t *gid)
{
    unsigned long num = 0;
    int found = 0;
    if (parse_id(key, &num)) {
        *gid = (gid_t)num;
        return 1;
    }
    FILE *f = fopen(group_file(), "re");
    if (f != NULL) {
        struct group gr, *res;
        char buf[16384];
        while (!found && fgetgrent_r(f, &gr, buf, sizeof(buf), &res) == 0)
            if (strcmp(gr.gr_name, key) == 0) {
                *gid = gr.gr_gid;
                found = 1;
            }
        fclose(f);
    }
    if (found) return 1;
    char *line = getent("group", key);
    if (line == NULL) return 0;
    char *fl[4];
    if (split_colons(line, fl, 4) >= 3 && parse_id(fl[2], &num)) {
        *gid = (gid_t)num;
        found = 1;
    }
    free(line);
    return found;
}

static void groups_add(gid_t *v, size_t *n, gid_t g)
{
    for (size_t i = 0; i < *n; i++)
        if (v[i] == g) return;
    if (*n < USERS_MAX_GROUPS) v[(*n)++] = g;
}

/* The supplementary groups of user `pw` (what initgroups would set): its primary gid, and every
 * group that lists it as a member. A user known to the files: the group file; a user known only to
 * NSS: `getent initgroups NAME` (its directory's memberships too). */
static void user_groups(const users_pw *pw, gid_t *v, size_t *n)
{
    *n = 0;
    groups_add(v, n, pw->gid);
    if (!pw->from_nss) {
        FILE *f = fopen(group_file(), "re");
        if (f == NULL) return;
        struct group gr, *res;
        char buf[16384];
        while (fgetgrent_r(f, &gr, buf, sizeof(buf), &res) == 0)
            for (char **m = gr.gr_mem; m != NULL && *m != NULL; m++)
                if (strcmp(*m, pw->name) == 0) groups_add(v, n, gr.gr_gid);
        fclose(f);
        return;
    }
    char *line = getent("initgroups", pw->name);
    if (line == NULL) return;
    /* "name   gid gid gid" */
    char *p = line + strcspn(line, " \t");
    while (*p != '\0') {
        p += strspn(p, " \t\n");
        char *end;
        errno = 0;
        unsigned long g = strtoul(p, &end, 10);
        if (end == p || errno != 0) break;
        groups_add(v, n, (gid_t)g);
        p = end;
    }
    free(line);
}

/* Resolve one service's `user:` / `group:` into d->ident. -1 with "file:line:col: ..." in err. */
static int users_resolve_one(const manifest *m, mf_service *d, char *err, size_t errlen)
{
    users_pw pw;
    unsigned long num;
    gid_t gv[USERS_MAX_GROUPS];
    size_t ng = 0;
    free(d->ident.groups);
    memset(&d->ident, 0, sizeof(d->ident));
    if (d->user == NULL) {
        if (d->group == NULL) return 0;
        snprintf(err, errlen,
                 "%s:%d:%d: service '%s': group: needs a user: (the group replaces that user's "
                 "primary group)",
                 m->path, d->group_line, d->group_col, d->name);
        return -1;
    }
    if (user_lookup(d->user, &pw)) {
        user_groups(&pw, gv, &ng);
    } else if (parse_id(d->user, &num)) {
        /* a uid without an entry anywhere: its own number as group, no supplementary groups */
        pw.uid = (uid_t)num;
        pw.gid = (gid_t)num;
        groups_add(gv, &ng, pw.gid);
    } else {
        snprintf(err, errlen,
                 "%s:%d:%d: service '%s': unknown user '%s' (not in %s, and getent passwd does not "
                 "know it)",
                 m->path, d->user_line, d->user_col, d->name, d->user, passwd_file());
        return -1;
    }
    if (d->group != NULL) {
        gid_t g;
        if (!group_lookup(d->group, &g)) {
            snprintf(err, errlen,
                     "%s:%d:%d: service '%s': unknown group '%s' (not in %s, and getent group does "
                     "not know it)",
                     m->path, d->group_line, d->group_col, d->name, d->group, group_file());
            return -1;
        }
        pw.gid = g;
        groups_add(gv, &ng, g);
    }
    d->ident.groups = malloc(ng * sizeof(gid_t));
    if (d->ident.groups == NULL) {
        snprintf(err, errlen, "%s: out of memory", m->path);
        return -1;
    }
    memcpy(d->ident.groups, gv, ng * sizeof(gid_t));
    d->ident.ngroups = ng;
    d->ident.uid = pw.uid;
    d->ident.gid = pw.gid;
    d->ident.set = 1;
    return 0;
}

int users_resolve(manifest *m, char *err, size_t errlen)
{
    for (size_t i = 0; i < m->nservices; i++)
        if (users_resolve_one(m, &m->services[i], err, errlen) < 0) return -1;
    return 0;
}
