/* xtask-auth's TOTP store (totp_secrets.yml, `user: BASE32SECRET`): auth_totp_store_load() from a
 * memfd, then a code check against every entry. */
#include "auth.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    auth_totp_store st;
    char err[512] = "";
    if (auth_totp_store_load(fz_path(data, size), &st, err, sizeof(err)) == 0) {
        for (size_t i = 0; i < st.n; i++) {
            if (st.v[i].keylen < 10 || st.v[i].keylen > sizeof(st.v[i].key)) abort();
            if (auth_totp_store_find(&st, st.v[i].name) == NULL) abort();
            auth_totp_check(st.v[i].key, st.v[i].keylen, "123456", 1700000000, 30, 1, 6, AUTH_TOTP_SHA1,
                            &st.v[i].last_step);
        }
        auth_totp_store_free(&st);
    } else if (err[0] == '\0') {
        abort();
    }
    return 0;
}
