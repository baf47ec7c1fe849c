/*
 * stack-manifest-check: load a manifest with the supervisor's own parser (manifest_load +
 * graph_order) and print the start order. Lets the stack tests validate configs/services.yaml
 * exactly as the supervisor will, independently of the runtime's CLI.
 *
 *   stack-manifest-check FILE      exit 0 and "order: a b c"; 2 and "file:line:col: ..." on error
 */
#include <stdio.h>

#include "manifest.h"

int main(int argc, char **argv)
{
    char err[1024];
    manifest *m = NULL;
    if (argc != 2) {
        fprintf(stderr, "usage: stack-manifest-check FILE\n");
        return 2;
    }
    if (manifest_load(argv[1], &m, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    printf("order:");
    for (size_t i = 0; i < m->nservices; i++)
        printf(" %s", m->services[m->order[i]].name);
    printf("\nstop_timeout_ms: %lld\nstatus_http: %s\n", (long long)m->stop_timeout_ms,
           m->status_http ? m->status_http : "");
    manifest_free(m);
    return 0;
}
