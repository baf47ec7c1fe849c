/* The front's request-head checks (services/web/front.c): a raw HTTP/1 head as libh2o reads it
 * (picohttpparser), then front_head_problem() on the same bytes, and the path as guard_on_req
 * normalizes it. */
#include "fuzz.h"
#include "web.h"
#include "xt_path.h"

struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                      size_t last_len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct phr_header hs[100];
    size_t nh = 100, ml = 0, pl = 0;
    const char *m = NULL, *p = NULL;
    int minor;
    const char *buf = (const char *)data;
    int r = phr_parse_request(buf, size, &m, &ml, &p, &pl, &minor, hs, &nh, 0);
    if (r > 0) {
        /* the request h2o saw: its own head must pass or be refused with a reason, never crash */
        const char *why = front_head_problem(buf, size, m, ml, p, pl);
        if (why != NULL && strcmp(why, "request head unavailable") == 0 && (size_t)r <= H2O_MAX_REQLEN)
            abort();
        /* a head that is not this request's is refused (fails closed) */
        if (front_head_problem(buf, size, "X", 1, p, pl) == NULL && !(ml == 1 && m[0] == 'X')) abort();
        char canon[4096];
        xt_path_normalize(p, pl, canon, sizeof(canon));
    } else {
        /* no head at all: refused */
        if (front_head_problem(buf, size, "GET", 3, "/", 1) == NULL) abort();
    }
    return 0;
}
