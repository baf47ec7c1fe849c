/* xtask-auth's users database (Authelia's users_database.yml): auth_users_load() from a memfd. */
#include "auth.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    auth_users *u = NULL;
    char err[512] = "";
    if (auth_users_load(fz_path(data, size), &u, err, sizeof(err)) == 0) {
        for (size_t i = 0; i < u->n; i++) /* sorted and findable */
            if (auth_users_find(u, u->v[i].name) == NULL) abort();
        auth_users_free(u);
    } else if (u != NULL || err[0] == '\0') {
        abort();
    }
    return 0;
}
