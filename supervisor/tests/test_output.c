/* Unit tests: output line splitting, the ring of last lines, bounded buffers (output.c, buf.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sv.h"

typedef struct {
    char lines[16][SV_LINE_MAX + 1];
    size_t lens[16];
    int cut[16];
    int n;
} got_t;

static void collect(void *ud, const char *line, size_t len, int cut)
{
    got_t *g = ud;
    if (g->n >= 16) return;
    memcpy(g->lines[g->n], line, len);
    g->lines[g->n][len] = '\0';
    g->lens[g->n] = len;
    g->cut[g->n] = cut;
    g->n++;
}

static void test_lines_split_across_chunks(void **state)
{
    (void)state;
    static sv_linebuf lb;
    static char lbuf[SV_LINE_MAX];
    static got_t g;
    memset(&lb, 0, sizeof(lb));
    lb.buf = lbuf;
    memset(&g, 0, sizeof(g));
    linebuf_feed(&lb, "hel", 3, collect, &g);
    assert_int_equal(g.n, 0);
    linebuf_feed(&lb, "lo\nwor", 6, collect, &g);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.lines[0], "hello");
    linebuf_feed(&lb, "ld\r\n\n", 5, collect, &g);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.lines[1], "world"); /* CRLF loses its CR */
    assert_string_equal(g.lines[2], "");      /* empty lines are lines */
    linebuf_feed(&lb, "tail", 4, collect, &g);
    linebuf_flush(&lb, collect, &g);
    assert_int_equal(g.n, 4);
    assert_string_equal(g.lines[3], "tail");
    linebuf_flush(&lb, collect, &g);
    assert_int_equal(g.n, 4);
}

static void test_long_line_is_cut_once(void **state)
{
    (void)state;
    static sv_linebuf lb;
    static char lbuf[SV_LINE_MAX];
    static got_t g;
    memset(&lb, 0, sizeof(lb));
    lb.buf = lbuf;
    memset(&g, 0, sizeof(g));
    size_t big = SV_LINE_MAX * 2 + 100;
    char *p = malloc(big);
    memset(p, 'y', big);
    /* fed in two pieces, then the newline and a normal line */
    linebuf_feed(&lb, p, SV_LINE_MAX - 10, collect, &g);
    linebuf_feed(&lb, p, big - (SV_LINE_MAX - 10), collect, &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.lens[0], SV_LINE_MAX);
    assert_true(g.cut[0]);
    linebuf_feed(&lb, "yyy\nnext\n", 9, collect, &g);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.lines[1], "next");
    assert_false(g.cut[1]);
    /* exactly SV_LINE_MAX bytes fit without a cut */
    memset(&g, 0, sizeof(g));
    linebuf_feed(&lb, p, SV_LINE_MAX, collect, &g);
    linebuf_feed(&lb, "\n", 1, collect, &g);
    assert_int_equal(g.n, 1);
    assert_false(g.cut[0]);
    assert_int_equal(g.lens[0], SV_LINE_MAX);
    free(p);
}

static void test_ring_keeps_last_lines(void **state)
{
    (void)state;
    sv_ring r;
    memset(&r, 0, sizeof(r));
    char line[32];
    for (int i = 0; i < SV_RING_LINES + 50; i++) {
        int n = snprintf(line, sizeof(line), "line %d", i);
        ring_push(&r, line, (size_t)n, 0, (uint64_t)i + 1);
    }
    assert_int_equal(r.count, SV_RING_LINES);
    assert_string_equal(ring_get(&r, 0), "line 50");
    snprintf(line, sizeof(line), "line %d", SV_RING_LINES + 49);
    assert_string_equal(ring_get(&r, SV_RING_LINES - 1), line);
    assert_null(ring_get(&r, SV_RING_LINES));
    /* seqs 51..250 kept: the first after a seq, by binary search */
    assert_int_equal(ring_after(&r, 0), 0);
    assert_int_equal(ring_after(&r, 51), 1);
    assert_int_equal(ring_after(&r, 100), 50);
    assert_int_equal(ring_after(&r, SV_RING_LINES + 50), SV_RING_LINES);
    assert_int_equal(ring_line(&r, 1)->seq, 52);
    ring_free(&r);
    assert_int_equal(r.count, 0);
    assert_int_equal(r.bytes, 0);
}

static void test_ring_bounded_in_bytes(void **state)
{
    (void)state;
    sv_ring r;
    memset(&r, 0, sizeof(r));
    char *big = malloc(SV_LINE_MAX);
    memset(big, 'z', SV_LINE_MAX);
    for (int i = 0; i < 100; i++)
        ring_push(&r, big, SV_LINE_MAX, 0, 1);
    assert_true(r.bytes <= SV_RING_BYTES);
    assert_int_equal(r.count, SV_RING_BYTES / SV_LINE_MAX);
    ring_push(&r, "small", 5, 0, 2);
    assert_string_equal(ring_get(&r, r.count - 1), "small");
    ring_free(&r);
    free(big);
}

static void test_buf_bounded_and_json(void **state)
{
    (void)state;
    sv_buf b;
    sv_buf_init(&b, 16);
    assert_int_equal(sv_buf_puts(&b, "0123456789"), 0);
    assert_int_equal(sv_buf_puts(&b, "0123456789"), -1); /* all or nothing */
    assert_int_equal(b.len, 10);
    assert_int_equal(b.dropped, 1);
    sv_buf_consume(&b, 4);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "456789", 6);
    sv_buf_free(&b);
    sv_buf_init(&b, 1024);
    sv_buf_json_str(&b, "a\"b\\c\nd\x01", 8);
    sv_buf_append(&b, "", 1);
    assert_string_equal(b.data, "a\\\"b\\\\c\\nd\\u0001");
    sv_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_split_across_chunks), cmocka_unit_test(test_long_line_is_cut_once),
        cmocka_unit_test(test_ring_keeps_last_lines),     cmocka_unit_test(test_ring_bounded_in_bytes),
        cmocka_unit_test(test_buf_bounded_and_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
