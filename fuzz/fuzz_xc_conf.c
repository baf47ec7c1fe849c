/* The coordinator's xtask.yaml: xc_conf_load_mem(). */
#include "fuzz.h"
#include "xc_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    xc_conf c;
    char err[512] = "";
    char *text = fz_str(data, size);
    xc_conf_defaults(&c);
    if (xc_conf_load_mem(&c, "xtask.yaml", text, fz_env, NULL, err, sizeof(err)) == 0) {
        xc_conf_taskfile_allows(&c, "build");
        xc_conf_port_allowed(&c, 8080);
        xc_conf_has_cap(&c, "task");
    } else if (err[0] == '\0') {
        abort();
    }
    xc_conf_free(&c);
    free(text);
    return 0;
}
