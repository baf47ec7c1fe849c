/* Unit tests: bounded output capture (tail ring, full buffer) and the line splitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "xo_output.h"

static char *tail_of(xo_output *o)
{
    size_t n;
    return xo_output_tail(o, &n);
}

static void test_ring(void **state)
{
    xo_output o;
    assert_int_equal(xo_output_init(&o, 8, 12), 0);
    char *t = tail_of(&o);
    assert_string_equal(t, "");
    free(t);
    xo_output_add(&o, "abc", 3);
    t = tail_of(&o);
    assert_string_equal(t, "abc");
    free(t);
    xo_output_add(&o, "defgh", 5); /* exactly full */
    t = tail_of(&o);
    assert_string_equal(t, "abcdefgh");
    free(t);
    xo_output_add(&o, "ij", 2); /* wraps */
    t = tail_of(&o);
    assert_string_equal(t, "cdefghij");
    free(t);
    xo_output_add(&o, "klmnopqrstuvwxyz", 16); /* longer than the ring */
    t = tail_of(&o);
    assert_string_equal(t, "stuvwxyz");
    free(t);
    assert_int_equal(o.total, 26);
    assert_int_equal(o.full_len, 12);
    assert_memory_equal(o.full, "abcdefghijkl", 12);
    assert_int_equal(o.dropped, 14);
    xo_output_free(&o);
}

static void test_ring_bytewise(void **state)
{
    /* byte-at-a-time must equal the last N bytes of the stream */
    xo_output o;
    const char *s = "The quick brown fox jumps over the lazy dog";
    assert_int_equal(xo_output_init(&o, 7, 0), 0);
    for (size_t i = 0; s[i]; i++) {
        xo_output_add(&o, s + i, 1);
        char *t = tail_of(&o);
        size_t want = i + 1 < 7 ? i + 1 : 7;
        assert_int_equal(strlen(t), want);
        assert_memory_equal(t, s + i + 1 - want, want);
        free(t);
    }
    assert_null(o.full);
    xo_output_free(&o);
    xo_output_free(&o); /* twice is fine */
}

typedef struct {
    char lines[16][64];
    int n;
} lines_t;

static void collect(const char *line, size_t len, void *ud)
{
    lines_t *l = ud;
    if (l->n < 16) {
        memcpy(l->lines[l->n], line, len < 63 ? len : 63);
        l->lines[l->n][len < 63 ? len : 63] = 0;
        l->n++;
    }
}

static void test_lines(void **state)
{
    xo_lines s;
    lines_t got = {0};
    memset(&s, 0, sizeof s);
    xo_lines_feed(&s, "one\ntw", 6, collect, &got);
    assert_int_equal(got.n, 1);
    xo_lines_feed(&s, "o\r\n\nthree", 9, collect, &got);
    assert_int_equal(got.n, 3);
    xo_lines_flush(&s, collect, &got);
    assert_int_equal(got.n, 4);
    assert_string_equal(got.lines[0], "one");
    assert_string_equal(got.lines[1], "two");
    assert_string_equal(got.lines[2], "");
    assert_string_equal(got.lines[3], "three");
    xo_lines_flush(&s, collect, &got);
    assert_int_equal(got.n, 4);
}

static void count(const char *line, size_t len, void *ud)
{
    size_t *total = ud;
    assert_true(len <= XO_LINE_MAX);
    *total += len;
}

static void test_long_line(void **state)
{
    xo_lines s;
    size_t total = 0;
    char *big = malloc(3 * XO_LINE_MAX + 10);
    memset(big, 'a', 3 * XO_LINE_MAX + 10);
    memset(&s, 0, sizeof s);
    xo_lines_feed(&s, big, 3 * XO_LINE_MAX + 10, count, &total);
    xo_lines_flush(&s, count, &total);
    assert_int_equal(total, 3 * XO_LINE_MAX + 10);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ring), cmocka_unit_test(test_ring_bytewise),
                                       cmocka_unit_test(test_lines), cmocka_unit_test(test_long_line)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
