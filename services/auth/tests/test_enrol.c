/* auth_enrol: the identity verification code (bound to one session, used once, bounded tries), the
 * pending secret confirmed by its own code before it counts, the QR code; auth_notify's file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth.h"

static const uint8_t sid1[AUTH_SID_BYTES] = {1}, sid2[AUTH_SID_BYTES] = {2};

static void code_flow(void **st)
{
    auth_enrol *e = auth_enrol_new();
    char code[16], wrong[16], b32[64];
    int64_t now = 1700000000000LL;
    (void)st;
    assert_non_null(e);
    assert_int_equal(auth_enrol_stage(e, "ann", sid1, now, b32, sizeof(b32)), AUTH_ENROL_NONE);
    assert_int_equal(auth_enrol_elevate(e, "ann", sid1, "ABCDEFGH", now), -1); /* no code asked */
    assert_int_equal(auth_enrol_new_code(e, "ann", sid1, now, code, sizeof(code)), 0);
    assert_int_equal(strlen(code), 8);
    assert_int_equal(auth_enrol_stage(e, "ann", sid1, now, b32, sizeof(b32)), AUTH_ENROL_CODE_SENT);
    /* another session of the same user does not see it */
    assert_int_equal(auth_enrol_stage(e, "ann", sid2, now, b32, sizeof(b32)), AUTH_ENROL_NONE);
    assert_int_equal(auth_enrol_elevate(e, "ann", sid2, code, now), -1);
    snprintf(wrong, sizeof(wrong), "%s", code);
    wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
    assert_int_equal(auth_enrol_elevate(e, "ann", sid1, wrong, now), 0);
    /* lower case and spaces as typed are fine; then the session is elevated with a secret */
    for (char *p = code; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
    assert_int_equal(auth_enrol_elevate(e, "ann", sid1, code, now + 1000), 1);
    assert_int_equal(auth_enrol_stage(e, "ann", sid1, now, b32, sizeof(b32)), AUTH_ENROL_ELEVATED);
    assert_int_equal(strlen(b32), 32);
    /* used once */
    assert_int_equal(auth_enrol_elevate(e, "ann", sid1, code, now + 2000), -1);
    /* the elevation ends after 5 minutes */
    assert_int_equal(auth_enrol_stage(e, "ann", sid1, now + 6 * 60 * 1000, b32, sizeof(b32)),
                     AUTH_ENROL_NONE);
    /* 5 tries, then the code is void even when right */
    assert_int_equal(auth_enrol_new_code(e, "bob", sid2, now, code, sizeof(code)), 0);
    snprintf(wrong, sizeof(wrong), "%s", code);
    wrong[1] = wrong[1] == 'A' ? 'B' : 'A';
    for (int i = 0; i < 5; i++)
        assert_int_equal(auth_enrol_elevate(e, "bob", sid2, wrong, now), 0);
    assert_int_equal(auth_enrol_elevate(e, "bob", sid2, code, now), -1);
    /* expired */
    assert_int_equal(auth_enrol_new_code(e, "bob", sid2, now, code, sizeof(code)), 0);
    assert_int_equal(auth_enrol_elevate(e, "bob", sid2, code, now + 6 * 60 * 1000), -1);
    auth_enrol_free(e);
}

static void confirm(void **st)
{
    auth_enrol *e = auth_enrol_new();
    auth_config cfg;
    char code[16], b32[64], out[64], tok[16];
    uint8_t key[64];
    long kl;
    int64_t now = 1700000000000LL, step = -1;
    (void)st;
    memset(&cfg, 0, sizeof(cfg));
    cfg.totp_period = 30;
    cfg.totp_skew = 1;
    cfg.totp_digits = 6;
    cfg.totp_algo = AUTH_TOTP_SHA1;
    assert_int_equal(auth_enrol_confirm(e, "ann", sid1, "123456", now, &cfg, out, sizeof(out), &step), -1);
    assert_int_equal(auth_enrol_new_code(e, "ann", sid1, now, code, sizeof(code)), 0);
    assert_int_equal(auth_enrol_elevate(e, "ann", sid1, code, now), 1);
    assert_int_equal(auth_enrol_stage(e, "ann", sid1, now, b32, sizeof(b32)), AUTH_ENROL_ELEVATED);
    kl = auth_base32_decode(b32, strlen(b32), key, sizeof(key));
    assert_int_equal(kl, 20);
    snprintf(tok, sizeof(tok), "%06u",
             auth_hotp(key, (size_t)kl, (uint64_t)(now / 1000 / 30), 6, AUTH_TOTP_SHA1));
    {
        char bad[16];
        snprintf(bad, sizeof(bad), "%06u", (unsigned)((strtoul(tok, NULL, 10) + 1) % 1000000));
        assert_int_equal(auth_enrol_confirm(e, "ann", sid1, bad, now, &cfg, out, sizeof(out), &step),
                         AUTH_TOTP_WRONG);
    }
    assert_int_equal(auth_enrol_confirm(e, "ann", sid2, tok, now, &cfg, out, sizeof(out), &step), -1);
    assert_int_equal(auth_enrol_confirm(e, "ann", sid1, tok, now, &cfg, out, sizeof(out), &step),
                     AUTH_TOTP_OK);
    assert_string_equal(out, b32);
    assert_int_equal(step, now / 1000 / 30);
    /* done: nothing pending any more */
    assert_int_equal(auth_enrol_stage(e, "ann", sid1, now, b32, sizeof(b32)), AUTH_ENROL_NONE);
    auth_enrol_free(e);
}

static void qr_and_notify(void **st)
{
    size_t len = 0;
    char *svg = auth_enrol_qr_svg("otpauth://totp/x:ann?secret=JBSWY3DPEHPK3PXP&issuer=x", 4, &len);
    char dir[] = "/tmp/xt-enrol-XXXXXX", path[256], buf[512], err[256];
    FILE *f;
    struct stat sb;
    size_t n;
    (void)st;
    assert_non_null(svg);
    assert_int_equal(strlen(svg), len);
    assert_non_null(strstr(svg, "<svg ") && strstr(svg, "h1v1h-1z") ? svg : NULL);
    free(svg);
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/n.txt", dir);
    assert_int_equal(auth_notify_send(path, "Ann <ann@x>", "code", "your code: ABCD", err, sizeof(err)), 0);
    assert_int_equal(auth_notify_send(path, "Ann <ann@x>", "code", "your code: EFGH", err, sizeof(err)), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    assert_non_null(strstr(buf, "Recipient: Ann <ann@x>\nSubject: code\n\nyour code: EFGH\n"));
    assert_null(strstr(buf, "ABCD")); /* each message replaces the file */
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(code_flow), cmocka_unit_test(confirm),
                                       cmocka_unit_test(qr_and_notify)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
