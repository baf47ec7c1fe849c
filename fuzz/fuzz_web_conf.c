/* The front's web.yaml: web_conf_load() (it reads a path: the input is a memfd). */
#include "fuzz.h"
#include "web.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    web_conf c;
    char err[512] = "";
    if (web_conf_load(&c, fz_path(data, size), NULL, NULL, NULL, err, sizeof(err)) != 0 && err[0] == '\0')
        abort(); /* a failure always says why */
    web_conf_free(&c);
    return 0;
}
