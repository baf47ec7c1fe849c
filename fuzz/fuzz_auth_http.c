/* What xtask-auth reads from a forward-auth or portal request (services/auth/auth_http.c): Cookie,
 * Authorization: Basic, Accept, X-Forwarded-Host / -Method, form bodies, and the query and
 * X-Forwarded-Uri through xt_path (as verify_parse does). Input: a header value; after a NUL byte,
 * the name looked for (cookie or form field). */
#include "auth.h"
#include "fuzz.h"
#include "xt_path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *v, *name;
    size_t vlen, nlen;
    char *s = fz_split(data, size, &v, &vlen, &name, &nlen);
    const char *hdr = (const char *)data; /* the whole input, NUL bytes included */
    char out[AUTH_URL_MAX + 1], user[AUTH_NAME_MAX + 1], pw[AUTH_PASSWORD_MAX + 1];
    long n;

    /* Cookie: the name the service looks for, and the fuzzed one */
    n = auth_cookie_get(hdr, size, "authelia_session", out, sizeof(out));
    if (n >= 0 && strlen(out) > (size_t)n) abort();
    n = auth_cookie_get(v, vlen, name, out, 16);
    if (n >= 16) abort();

    if (auth_basic_parse(hdr, size, user, sizeof(user), pw, sizeof(pw)) == 0) {
        if (user[0] == '\0' || strchr(user, ':') != NULL) abort();
    }
    auth_accepts_html(hdr, size);
    auth_method_bit(hdr, size);

    n = auth_host_normalize(hdr, size, out, sizeof(out));
    if (n >= 0) {
        if (n == 0 || (size_t)n > 253 || strlen(out) != (size_t)n) abort();
        for (long i = 0; i < n; i++)
            if (!((out[i] >= 'a' && out[i] <= 'z') || (out[i] >= '0' && out[i] <= '9') || out[i] == '-' ||
                  out[i] == '.'))
                abort();
        auth_host_under(out, "example.com");
        auth_host_under(out, name);
    }

    /* a form body: the login form's fields */
    n = auth_form_get(hdr, size, "username", out, sizeof(out));
    if (n >= 0 && (size_t)n > size) abort();
    n = auth_form_get(v, vlen, name, out, 32);
    if (n >= 32) abort();

    /* percent-encoding round trip (the rd= the portal is given back) */
    n = auth_url_encode(hdr, size, out, sizeof(out));
    if (n >= 0) {
        char back[AUTH_URL_MAX + 1];
        long m = xt_url_decode(out, (size_t)n, 0, back, sizeof(back));
        if (memchr(data, 0, size) == NULL && (m != (long)size || memcmp(back, data, size) != 0)) abort();
    }

    /* durations and encodings of the config and the TOTP store */
    int64_t ms;
    auth_duration_parse(v, 0, &ms);
    auth_duration_parse(v, 1, &ms);
    uint8_t key[64];
    auth_base32_decode(hdr, size, key, sizeof(key));
    auth_hex_decode(hdr, size, key, sizeof(key));
    free(s);
    return 0;
}
