/* The supervisor's manifest (services.yaml): manifest_load_mem() with the dependency graph. */
#include "fuzz.h"
#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    manifest *m = NULL;
    char err[512];
    if (manifest_load_mem("services.yaml", (const char *)data, size, &m, err, sizeof(err)) == 0) {
        /* the contract the runtime relies on: names findable, order a permutation */
        int seen[MF_MAX_SERVICES] = {0};
        for (size_t i = 0; i < m->nservices; i++) {
            if (manifest_find(m, m->services[i].name) != (int)i) abort();
            if (m->services[i].argv == NULL || m->services[i].argv[0] == NULL ||
                m->services[i].argv[0][0] == 0)
                abort();
            int o = m->order[i];
            if (o < 0 || (size_t)o >= m->nservices || seen[o]++) abort();
        }
        manifest_free(m);
    } else if (m != NULL || err[0] == '\0') {
        abort(); /* a failure leaves nothing allocated and always says why */
    }
    return 0;
}
