/* The supervisor's control socket (supervisor/control.c): one request line as client_io() hands it
 * to ctl_parse(): at most SV_CTL_REQ_MAX - 1 bytes, cut at the first newline. */
#include "fuzz.h"
#include "sv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char line[SV_CTL_REQ_MAX], err[256];
    sv_ctl_req req;
    size_t n = size < sizeof(line) - 1 ? size : sizeof(line) - 1;
    memcpy(line, data, n);
    line[n] = '\0';
    char *nl = memchr(line, '\n', n);
    if (nl != NULL) *nl = '\0';
    if (ctl_parse(line, &req, err, sizeof(err)) == 0) {
        /* nlines: a count (no cap: the reply streams what the rings keep) or -1 for all */
        if (strlen(req.name) > MF_NAME_MAX || req.nlines < -1 || req.since_ms < 0) abort();
    } else if (err[0] == '\0') {
        abort();
    }
    return 0;
}
