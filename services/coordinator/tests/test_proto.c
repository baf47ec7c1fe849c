/* Unit tests: wire formats (xp_proto): errors, ids, node records, filters, task.run bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xp_proto.h"

static void test_error_json(void **state)
{
    char *s = xp_error_json(XP_ERR_UNKNOWN_TASK, "task '%s' is not allowed on node %s", "x", "ams-1");
    assert_string_equal(
        s, "{\"error\":{\"code\":\"unknown_task\",\"message\":\"task 'x' is not allowed on node ams-1\"}}");
    char code[32], msg[128];
    assert_int_equal(xp_error_parse(s, strlen(s), code, sizeof code, msg, sizeof msg), 1);
    assert_string_equal(code, "unknown_task");
    assert_string_equal(msg, "task 'x' is not allowed on node ams-1");
    assert_int_equal(xp_error_parse("{\"id\":1}", 8, code, sizeof code, msg, sizeof msg), 0);
    assert_int_equal(xp_error_parse("nope", 4, code, sizeof code, msg, sizeof msg), 0);
    free(s);
    for (int i = 0; i < XP_ERR__COUNT; i++)
        assert_non_null(xp_err_name((xp_err)i));
    assert_string_equal(xp_err_name(XP_ERR_PAYLOAD_TOO_LARGE), "payload_too_large");
    assert_string_equal(xp_err_name((xp_err)999), "internal");
}

static void test_tokens(void **state)
{
    assert_true(xp_token_valid("ams-1_x"));
    assert_false(xp_token_valid(""));
    assert_false(xp_token_valid("a.b"));
    assert_false(xp_token_valid("a*"));
    assert_false(xp_token_valid("a b"));
    char big[80];
    memset(big, 'a', sizeof big - 1);
    big[79] = 0;
    assert_false(xp_token_valid(big));
    big[64] = 0;
    assert_true(xp_token_valid(big));
    assert_true(xp_task_name_valid("go:build:native"));
    assert_true(xp_task_name_valid("a.b"));
    assert_false(xp_task_name_valid("-rf"));
    assert_false(xp_task_name_valid(".hidden"));
    assert_false(xp_task_name_valid("a/b"));
    assert_false(xp_task_name_valid("a>"));
    char out[XP_ID_MAX + 1];
    xp_token_sanitize("my.host name*", out, sizeof out);
    assert_string_equal(out, "my-host-name-");
    xp_token_sanitize("", out, sizeof out);
    assert_string_equal(out, "node");
}

typedef struct {
    const char *k[4], *v[4];
} fake_env;

static const char *fake_getenv(const char *name, void *ud)
{
    fake_env *e = ud;
    for (int i = 0; i < 4 && e->k[i]; i++)
        if (strcmp(e->k[i], name) == 0) return e->v[i];
    return NULL;
}

static void test_node_id(void **state)
{
    char out[XP_ID_MAX + 1], err[256];
    fake_env none = {{NULL}, {NULL}};
    fake_env fly = {{"FLY_REGION", "FLY_MACHINE_ID"}, {"ams", "e784079b"}};
    fake_env env = {{"XTASK_NODE_ID", "FLY_REGION", "FLY_MACHINE_ID"}, {"from-env", "ams", "e7"}};
    fake_env region_only = {{"FLY_REGION"}, {"ams"}};
    fake_env bad = {{"XTASK_NODE_ID"}, {"bad.id"}};
    fake_env reserved = {{"XTASK_NODE_ID"}, {"queue"}};

    assert_int_equal(xp_node_id("flag-id", fake_getenv, &env, "host", out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "flag-id");
    assert_int_equal(xp_node_id(NULL, fake_getenv, &env, "host", out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "from-env");
    assert_int_equal(xp_node_id("", fake_getenv, &fly, "host", out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "ams-e784079b");
    assert_int_equal(xp_node_id(NULL, fake_getenv, &region_only, "my.host", out, sizeof out, err, sizeof err),
                     0);
    assert_string_equal(out, "my-host");
    assert_int_equal(xp_node_id(NULL, fake_getenv, &none, "", out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "node");
    assert_int_equal(xp_node_id(NULL, fake_getenv, &bad, "h", out, sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad.id"));
    assert_int_equal(xp_node_id(NULL, fake_getenv, &reserved, "h", out, sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "reserved"));
    assert_int_equal(xp_node_id(NULL, fake_getenv, &none, "results", out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "n-results");
}

static const char *const caps[] = {"task", "which", NULL};
static const char *const tasks[] = {"build", "noop", NULL};

static xp_node_info sample_node(void)
{
    xp_node_info n = {.id = "ams-1",
                      .region = "ams",
                      .capabilities = caps,
                      .os = "linux",
                      .arch = "x86_64",
                      .hostname = "h1",
                      .tasks = tasks,
                      .running = 2,
                      .queued = 1,
                      .load1 = 0.5,
                      .started_ms = 1000,
                      .ts_ms = 2000};
    return n;
}

static void test_node_json(void **state)
{
    xp_node_info n = sample_node();
    char *s = xp_node_json(&n);
    json_t *o = json_loads(s, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "id")), "ams-1");
    assert_string_equal(json_string_value(json_object_get(o, "region")), "ams");
    assert_int_equal(json_array_size(json_object_get(o, "capabilities")), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "platform"), "arch")), "x86_64");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "load"), "running")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "load"), "queued")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "tasks"), 1)), "noop");
    assert_int_equal(json_integer_value(json_object_get(o, "ts_ms")), 2000);
    assert_string_equal(json_string_value(json_object_get(o, "version")), XP_VERSION);
    json_decref(o);
    free(s);
}

static int match(const char *filter)
{
    xp_filter f;
    char err[128];
    xp_node_info n = sample_node();
    assert_int_equal(xp_filter_parse(filter, strlen(filter), &f, err, sizeof err), 0);
    return xp_filter_match(&f, &n);
}

static void test_filter(void **state)
{
    assert_true(match(""));
    assert_true(match("{}"));
    assert_true(match("{\"capability\":\"task\"}"));
    assert_false(match("{\"capability\":\"got\"}"));
    assert_true(match("{\"platform\":\"linux\"}"));
    assert_true(match("{\"platform\":\"linux/x86_64\"}"));
    assert_false(match("{\"platform\":\"linux/arm64\"}"));
    assert_false(match("{\"platform\":\"darwin\"}"));
    assert_false(match("{\"platform\":\"lin/x86_64\"}"));
    assert_true(match("{\"region\":\"ams\",\"capability\":\"which\"}"));
    assert_false(match("{\"region\":\"dfw\"}"));
    assert_true(match("{\"task\":\"build\"}"));
    assert_false(match("{\"task\":\"deploy\"}"));
    assert_true(match("{\"region\":null}"));
    xp_filter f;
    char err[128];
    assert_int_equal(xp_filter_parse("{\"region\":5}", 12, &f, err, sizeof err), -1);
    assert_non_null(strstr(err, "region"));
    assert_int_equal(xp_filter_parse("{bad", 4, &f, err, sizeof err), -1);
    assert_non_null(strstr(err, "malformed JSON"));
    assert_int_equal(xp_filter_parse("[1]", 3, &f, err, sizeof err), -1);
}

static int parse_run(const char *s, xp_run_req *r, xp_err *code, char *err, size_t errlen)
{
    return xp_run_req_parse(s, strlen(s), r, code, err, errlen);
}

static void test_run_req(void **state)
{
    xp_run_req r;
    xp_err code;
    char err[256];
    assert_int_equal(
        parse_run("{\"args\":[\"build\",\"--flag\"],\"project\":\"p1\",\"id\":\"t-0123456789abcdef\","
                  "\"timeout_ms\":500,\"requested_by\":\"alice\",\"via\":\"web\"}",
                  &r, &code, err, sizeof err),
        0);
    assert_int_equal(r.nargs, 2);
    assert_string_equal(r.args[0], "build");
    assert_string_equal(r.args[1], "--flag");
    assert_null(r.args[2]);
    assert_string_equal(r.project, "p1");
    assert_string_equal(r.id, "t-0123456789abcdef");
    assert_string_equal(r.requested_by, "alice");
    assert_string_equal(r.via, "web");
    assert_int_equal(r.timeout_ms, 500);
    char *enc = xp_run_req_json(&r);
    xp_run_req r2;
    assert_int_equal(parse_run(enc, &r2, &code, err, sizeof err), 0);
    assert_string_equal(r2.args[1], "--flag");
    assert_string_equal(r2.id, "t-0123456789abcdef");
    assert_string_equal(r2.requested_by, "alice");
    assert_string_equal(r2.via, "web");
    assert_int_equal(r2.timeout_ms, 500);
    xp_run_req_free(&r2);
    free(enc);
    xp_run_req_free(&r);

    assert_int_equal(parse_run("{\"args\":[\"noop\"]}", &r, &code, err, sizeof err), 0);
    assert_string_equal(r.project, "default");
    assert_string_equal(r.id, "");
    assert_string_equal(r.requested_by, "");
    xp_run_req_free(&r);

    /* ids are the platform's: t- and 16 lower-case hex digits, nothing else */
    assert_true(xp_task_id_valid("t-0123456789abcdef"));
    assert_false(xp_task_id_valid("t-0123456789abcde"));
    assert_false(xp_task_id_valid("t-0123456789abcdef0"));
    assert_false(xp_task_id_valid("t-0123456789ABCDEF"));
    assert_false(xp_task_id_valid("my-id"));
    assert_false(xp_task_id_valid(""));
    char fresh[32];
    xp_new_id(fresh, sizeof fresh);
    assert_true(xp_task_id_valid(fresh));
    assert_true(xp_user_valid("alice"));
    assert_false(xp_user_valid("al\nice"));
    assert_false(xp_user_valid(""));

    static const struct {
        const char *body;
        xp_err code;
        const char *msg;
    } bad[] = {
        {"", XP_ERR_BAD_REQUEST, "empty"},
        {"{", XP_ERR_BAD_REQUEST, "malformed"},
        {"[]", XP_ERR_BAD_REQUEST, "object"},
        {"{}", XP_ERR_BAD_REQUEST, "args"},
        {"{\"args\":[]}", XP_ERR_BAD_REQUEST, "args"},
        {"{\"args\":\"build\"}", XP_ERR_BAD_REQUEST, "args"},
        {"{\"args\":[1]}", XP_ERR_BAD_REQUEST, "args[0]"},
        {"{\"args\":[\"x\",null]}", XP_ERR_BAD_REQUEST, "args[1]"},
        {"{\"args\":[\"-rf\"]}", XP_ERR_UNKNOWN_TASK, "valid task name"},
        {"{\"args\":[\"a b\"]}", XP_ERR_UNKNOWN_TASK, "valid task name"},
        {"{\"args\":[\"x\"],\"project\":\"a.b\"}", XP_ERR_BAD_REQUEST, "project"},
        {"{\"args\":[\"x\"],\"project\":3}", XP_ERR_BAD_REQUEST, "project"},
        {"{\"args\":[\"x\"],\"id\":\"a>b\"}", XP_ERR_BAD_REQUEST, "id"},
        {"{\"args\":[\"x\"],\"id\":\"my-own-id\"}", XP_ERR_BAD_REQUEST, "made by the platform"},
        {"{\"args\":[\"x\"],\"requested_by\":\"a\\nb\"}", XP_ERR_BAD_REQUEST, "requested_by"},
        {"{\"args\":[\"x\"],\"requested_by\":7}", XP_ERR_BAD_REQUEST, "requested_by"},
        {"{\"args\":[\"x\"],\"via\":\"a.b\"}", XP_ERR_BAD_REQUEST, "via"},
        {"{\"args\":[\"x\"],\"timeout_ms\":-1}", XP_ERR_BAD_REQUEST, "timeout_ms"},
        {"{\"args\":[\"x\"],\"timeout_ms\":\"1s\"}", XP_ERR_BAD_REQUEST, "timeout_ms"},
        {"{\"args\":[\"x\"],\"args\":[\"y\"]}", XP_ERR_BAD_REQUEST, "malformed"},
        {"{\"args\":[\"x\\u0000y\"]}", XP_ERR_BAD_REQUEST, "NUL"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_int_equal(parse_run(bad[i].body, &r, &code, err, sizeof err), -1);
        assert_int_equal(code, bad[i].code);
        if (!strstr(err, bad[i].msg))
            fail_msg("body %s: message '%s' lacks '%s'", bad[i].body, err, bad[i].msg);
    }
    /* too many args */
    char many[4096];
    size_t off = (size_t)snprintf(many, sizeof many, "{\"args\":[");
    for (int i = 0; i < XP_ARGS_MAX + 1; i++)
        off += (size_t)snprintf(many + off, sizeof many - off, i ? ",\"a\"" : "\"a\"");
    snprintf(many + off, sizeof many - off, "]}");
    assert_int_equal(parse_run(many, &r, &code, err, sizeof err), -1);
    assert_non_null(strstr(err, "too many"));
}

static void test_result_json(void **state)
{
    const char *tail = "line1\nline2\n";
    char big[10000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    xp_result r = {.id = "t-1",
                   .node = "n1",
                   .task = "build",
                   .project = "p",
                   .exit_code = 3,
                   .signal = 0,
                   .timed_out = 0,
                   .duration_ms = 12,
                   .started_ms = 5,
                   .finished_ms = 17,
                   .tail = tail,
                   .tail_len = strlen(tail),
                   .output = big,
                   .output_len = strlen(big)};
    char *s = xp_result_json(&r, 0, 1 << 20);
    json_t *o = json_loads(s, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "output_tail")), tail);
    assert_int_equal(json_integer_value(json_object_get(o, "exit_code")), 3);
    assert_null(json_object_get(o, "output"));
    assert_false(json_is_true(json_object_get(o, "truncated")));
    json_decref(o);
    free(s);
    /* with output, squeezed under 4 KiB: output cut first, truncated set */
    s = xp_result_json(&r, 1, 4096);
    assert_true(strlen(s) <= 4096);
    o = json_loads(s, 0, NULL);
    assert_true(json_is_true(json_object_get(o, "truncated")));
    assert_true(json_string_length(json_object_get(o, "output")) < strlen(big));
    assert_string_equal(json_string_value(json_object_get(o, "output_tail")), tail);
    assert_int_equal(json_integer_value(json_object_get(o, "finished_ms")), 17);
    json_decref(o);
    free(s);
}

static void test_log_event(void **state)
{
    char *s = xp_log_json("t-1", "build", "stderr", "a\"b\nc", 5);
    json_t *o = json_loads(s, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "line")), "a\"b\nc");
    assert_string_equal(json_string_value(json_object_get(o, "stream")), "stderr");
    json_decref(o);
    free(s);
    s = xp_event_json("task.finished", "t-1", "n1", json_pack("{s:i}", "exit_code", 0), 77);
    o = json_loads(s, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "task.finished");
    assert_string_equal(json_string_value(json_object_get(o, "id")), "t-1");
    assert_int_equal(json_integer_value(json_object_get(o, "exit_code")), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "ts_ms")), 77);
    json_decref(o);
    free(s);
    s = xp_event_json("node.joined", NULL, "n1", NULL, 1);
    assert_null(strstr(s, "\"id\""));
    free(s);
}

static void test_new_id(void **state)
{
    char a[32], b[32];
    xp_new_id(a, sizeof a);
    xp_new_id(b, sizeof b);
    assert_int_equal(strlen(a), 18);
    assert_true(xp_token_valid(a));
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_json),  cmocka_unit_test(test_tokens),    cmocka_unit_test(test_node_id),
        cmocka_unit_test(test_node_json),   cmocka_unit_test(test_filter),    cmocka_unit_test(test_run_req),
        cmocka_unit_test(test_result_json), cmocka_unit_test(test_log_event), cmocka_unit_test(test_new_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
