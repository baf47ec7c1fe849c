/* xtask-auth's auth.yml (Authelia's configuration): auth_config_load_mem(), access_control included. */
#include "auth.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    auth_config cfg;
    char err[512] = "";
    char *text = fz_str(data, size);
    if (auth_config_load_mem("/etc/xtask/auth.yml", text, fz_env, NULL, &cfg, err, sizeof(err)) == 0) {
        auth_object obj = {.host = "app.example.com",
                           .path = "/api/x?y=1",
                           .method = auth_method_bit("GET", 3),
                           .user = "alice",
                           .groups = NULL};
        int idx, has_subjects;
        auth_acl_match(&cfg.acl, &obj, &idx, &has_subjects);
        auth_config_free(&cfg);
    } else if (err[0] == '\0') {
        abort();
    }
    free(text);
    return 0;
}
