/*
 * xtask-auth: command line.
 *
 *   xtask-auth [--config FILE] [--listen HOST:PORT]        run the service
 *   xtask-auth check-config [--config FILE]                 validate and exit
 *   xtask-auth hash-password [--config FILE] [--password-stdin | PASSWORD]
 *   xtask-auth totp-generate --user NAME [--config FILE]    enrol a TOTP secret, print its otpauth URI
 *   xtask-auth totp-code --user NAME [--config FILE]        print the user's current code (like
 *                                                           `oathtool --totp`; needs read access to the
 *                                                           TOTP secrets file, so local/admin use only)
 *
 * Exit codes: 0 ok, 1 runtime error, 2 usage or configuration error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth.h"
#include "xt_log.h"

#define DEFAULT_CONFIG "/etc/xtask/auth.yml"

static void usage(FILE *f)
{
    fprintf(f, "usage: xtask-auth [--config FILE] [--listen HOST:PORT]\n"
               "       xtask-auth check-config [--config FILE]\n"
               "       xtask-auth hash-password [--config FILE] [--password-stdin | PASSWORD]\n"
               "       xtask-auth totp-generate --user NAME [--config FILE]\n"
               "       xtask-auth totp-code --user NAME [--config FILE]\n");
}

typedef struct {
    const char *config, *listen, *user, *password;
    int password_stdin, help;
} opts_t;

static int parse_opts(int argc, char **argv, int start, opts_t *o)
{
    int i;
    for (i = start; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) && i + 1 < argc)
            o->config = argv[++i];
        else if (strncmp(a, "--config=", 9) == 0)
            o->config = a + 9;
        else if (strcmp(a, "--listen") == 0 && i + 1 < argc)
            o->listen = argv[++i];
        else if (strncmp(a, "--listen=", 9) == 0)
            o->listen = a + 9;
        else if (strcmp(a, "--user") == 0 && i + 1 < argc)
            o->user = argv[++i];
        else if (strcmp(a, "--password-stdin") == 0 || strcmp(a, "--stdin") == 0)
            o->password_stdin = 1;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            o->help = 1;
        else if (a[0] != '-' && !o->password)
            o->password = a;
        else {
            fprintf(stderr, "xtask-auth: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

/* Load the configuration. hash-password and totp-* never use the session secret (need_secret 0),
 * so a shell without the supervisor's secrets can still run them: a placeholder lets the file
 * parse. Serving and check-config (need_secret 1) report a missing secret as the error it is. */
static int load_config_for(const opts_t *o, auth_config *cfg, int need_secret)
{
    char err[1024];
    if (!need_secret && getenv("AUTH_SESSION_SECRET") == NULL)
        setenv("AUTH_SESSION_SECRET", "placeholder-for-commands-that-do-not-serve-0123456789", 0);
    if (auth_config_load(o->config ? o->config : DEFAULT_CONFIG, cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int load_config(const opts_t *o, auth_config *cfg)
{
    return load_config_for(o, cfg, 0);
}

static int cmd_hash(const opts_t *o)
{
    auth_config cfg;
    auth_argon2_params p = {0};
    char pw[AUTH_PASSWORD_MAX + 2], out[AUTH_HASH_MAX + 1];
    size_t len;
    int have_cfg = 0;

    if (o->config) {
        if (load_config(o, &cfg) < 0) return 2;
        p = cfg.argon2;
        have_cfg = 1;
    } else { /* Authelia's defaults: argon2id, t=3, m=64 MiB, p=4, 16-byte salt, 32-byte key */
        p = (auth_argon2_params){Argon2_id, 3, 65536, 4, 16, 32};
    }
    if (o->password_stdin) {
        if (!fgets(pw, sizeof(pw), stdin)) {
            fprintf(stderr, "xtask-auth: no password on stdin\n");
            goto usage_err;
        }
        len = strcspn(pw, "\r\n");
        pw[len] = '\0';
    } else if (o->password) {
        len = strlen(o->password);
        if (len > AUTH_PASSWORD_MAX) goto toolong;
        memcpy(pw, o->password, len + 1);
    } else { /* no argument: one line on stdin (echo off when it is a terminal) */
        struct termios old, quiet;
        int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
        if (tty) {
            fprintf(stderr, "Password: ");
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        }
        if (!fgets(pw, sizeof(pw), stdin)) pw[0] = '\0';
        if (tty) {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
            fprintf(stderr, "\n");
        }
        len = strcspn(pw, "\r\n");
        pw[len] = '\0';
    }
    if (len == 0 || len > AUTH_PASSWORD_MAX) goto toolong;
    if (auth_password_hash(&p, pw, len, out, sizeof(out)) < 0) {
        OPENSSL_cleanse(pw, sizeof(pw));
        fprintf(stderr, "xtask-auth: hashing failed\n");
        if (have_cfg) auth_config_free(&cfg);
        return 1;
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    printf("%s\n", out);
    if (have_cfg) auth_config_free(&cfg);
    return 0;
toolong:
    fprintf(stderr, "xtask-auth: the password must be 1-%d bytes\n", AUTH_PASSWORD_MAX);
usage_err:
    OPENSSL_cleanse(pw, sizeof(pw));
    if (have_cfg) auth_config_free(&cfg);
    return 2;
}

static int cmd_totp(const opts_t *o)
{
    auth_config cfg;
    auth_users *users = NULL;
    uint8_t key[32];
    char b32[64], uri[1024], err[1024];
    int rc = 1;

    if (!o->user) {
        fprintf(stderr, "xtask-auth: totp-generate needs --user NAME\n");
        return 2;
    }
    if (load_config(o, &cfg) < 0) return 2;
    if (auth_users_load(cfg.users_path, &users, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        rc = 2;
        goto out;
    }
    if (!auth_users_find(users, o->user)) {
        fprintf(stderr, "xtask-auth: no user '%s' in %s\n", o->user, cfg.users_path);
        rc = 2;
        goto out;
    }
    if (RAND_bytes(key, sizeof(key)) != 1 || auth_base32_encode(key, sizeof(key), b32, sizeof(b32)) < 0) {
        fprintf(stderr, "xtask-auth: no randomness\n");
        goto out;
    }
    if (auth_totp_store_set(cfg.totp_path, o->user, b32, err, sizeof(err)) < 0) {
        fprintf(stderr, "xtask-auth: %s\n", err);
        goto out;
    }
    if (auth_totp_uri(cfg.totp_issuer, o->user, b32, cfg.totp_algo, cfg.totp_digits, cfg.totp_period, uri,
                      sizeof(uri)) < 0) {
        fprintf(stderr, "xtask-auth: URI too long\n");
        goto out;
    }
    printf("%s\n", uri);
    rc = 0;
out:
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(b32, sizeof(b32));
    OPENSSL_cleanse(uri, sizeof(uri));
    auth_users_free(users);
    auth_config_free(&cfg);
    return rc;
}

/* The current TOTP code of an enrolled user, for a person at the machine without an authenticator
 * app (the local stack's admin) and for scripts. Reading the secrets file is the privilege. */
static int cmd_totp_code(const opts_t *o)
{
    auth_config cfg;
    auth_totp_store st = {0};
    char err[1024];
    int rc = 1;

    if (!o->user) {
        fprintf(stderr, "xtask-auth: totp-code needs --user NAME\n");
        return 2;
    }
    if (load_config(o, &cfg) < 0) return 2;
    if (auth_totp_store_load(cfg.totp_path, &st, err, sizeof(err)) < 0) {
        fprintf(stderr, "xtask-auth: %s\n", err);
        goto out;
    }
    auth_totp_entry *e = auth_totp_store_find(&st, o->user);
    if (e == NULL) {
        fprintf(stderr, "xtask-auth: no TOTP secret for '%s' in %s (xtask-auth totp-generate --user %s)\n",
                o->user, cfg.totp_path, o->user);
        rc = 2;
        goto out;
    }
    uint32_t code = auth_hotp(e->key, e->keylen, (uint64_t)time(NULL) / (uint64_t)cfg.totp_period,
                              cfg.totp_digits, cfg.totp_algo);
    printf("%0*u\n", cfg.totp_digits, code);
    rc = 0;
out:
    auth_totp_store_free(&st);
    auth_config_free(&cfg);
    return rc;
}

static int cmd_serve(const opts_t *o)
{
    auth_config cfg;
    int rc;
    if (load_config_for(o, &cfg, 1) < 0) return 2;
    xt_log_init((xt_log_level)cfg.log_level, cfg.log_json);
    if (o->listen) {
        const char *colon = strrchr(o->listen, ':');
        char *end;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || port < 1 || port > 65535 || *end ||
            (size_t)(colon - o->listen) >= sizeof(cfg.listen_host)) {
            fprintf(stderr, "xtask-auth: --listen HOST:PORT (e.g. 127.0.0.1:9091)\n");
            auth_config_free(&cfg);
            return 2;
        }
        if (colon != o->listen) {
            memcpy(cfg.listen_host, o->listen, (size_t)(colon - o->listen));
            cfg.listen_host[colon - o->listen] = '\0';
        }
        cfg.port = (int)port;
    }
    rc = auth_server_run(&cfg);
    auth_config_free(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    opts_t o = {0};
    const char *cmd = "serve";
    int start = 1;

    if (argc > 1 && argv[1][0] != '-') {
        cmd = argv[1];
        start = 2;
    }
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (parse_opts(argc, argv, start, &o) < 0) return 2;
    if (o.help) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "hash-password") == 0) return cmd_hash(&o);
    if (o.password) {
        fprintf(stderr, "xtask-auth: unexpected argument '%s'\n", o.password);
        return 2;
    }
    if (strcmp(cmd, "totp-generate") == 0) return cmd_totp(&o);
    if (strcmp(cmd, "totp-code") == 0) return cmd_totp_code(&o);
    if (strcmp(cmd, "check-config") == 0) {
        auth_config cfg;
        if (load_config_for(&o, &cfg, 1) < 0) return 2;
        printf("%s: ok (%zu rules)\n", o.config ? o.config : DEFAULT_CONFIG, cfg.acl.nrules);
        auth_config_free(&cfg);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0) return cmd_serve(&o);
    fprintf(stderr, "xtask-auth: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
