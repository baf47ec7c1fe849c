/* The coordinator's wire JSON (services/coordinator/xp_proto.c): task.run requests, discover
 * filters, error replies, with the task.run encode/decode round trip. */
#include "fuzz.h"
#include "xp_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    char err[256], code[64], msg[256];
    xp_err ec;
    xp_run_req r, r2;

    if (xp_run_req_parse(json, size, &r, &ec, err, sizeof(err)) == 0) {
        if (r.nargs == 0 || r.nargs > XP_ARGS_MAX || r.args[r.nargs] != NULL ||
            !xp_task_name_valid(r.args[0]) || !xp_token_valid(r.project) ||
            (r.id[0] && !xp_token_valid(r.id)))
            abort();
        char *enc = xp_run_req_json(&r);
        if (enc == NULL) abort();
        if (xp_run_req_parse(enc, strlen(enc), &r2, &ec, err, sizeof(err)) != 0) abort();
        if (r2.nargs != r.nargs || strcmp(r2.project, r.project) != 0 || strcmp(r2.id, r.id) != 0 ||
            r2.timeout_ms != r.timeout_ms)
            abort();
        for (size_t i = 0; i < r.nargs; i++)
            if (strcmp(r.args[i], r2.args[i]) != 0) abort();
        xp_run_req_free(&r2);
        free(enc);
        xp_run_req_free(&r);
    } else if ((unsigned)ec >= XP_ERR__COUNT) {
        abort();
    }

    xp_filter f;
    if (xp_filter_parse(json, size, &f, err, sizeof(err)) == 0) {
        const char *caps[] = {"task", NULL}, *tasks[] = {"build", NULL};
        xp_node_info n = {.id = "n1",
                          .region = "local",
                          .capabilities = caps,
                          .os = "linux",
                          .arch = "x86_64",
                          .hostname = "h",
                          .tasks = tasks};
        xp_filter_match(&f, &n);
    }

    if (xp_error_parse(json, size, code, sizeof(code), msg, sizeof(msg)) == 1) {
        if (strlen(code) >= sizeof(code) || strlen(msg) >= sizeof(msg)) abort();
    }
    json_t *o = xp_parse_object(json, size, 1, err, sizeof(err));
    json_decref(o);
    return 0;
}
