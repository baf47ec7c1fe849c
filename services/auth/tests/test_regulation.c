/* auth_regulation: Authelia's regulator with an injected clock (max_retries 3, find_time 2m,
 * ban_time 5m, as in seed 000). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "auth.h"

#define S 1000LL
#define M (60 * S)

static void ban_after_three_failures_within_find_time(void **st)
{
    auth_regulation *r = auth_regulation_new(3, 2 * M, 5 * M, 100);
    int64_t t0 = 1000000000000LL, until = 0;
    (void)st;
    auth_regulation_mark(r, "alice", 0, 0, t0);
    auth_regulation_mark(r, "alice", 0, 0, t0 + 10 * S);
    assert_int_equal(auth_regulation_banned(r, "alice", t0 + 11 * S, &until), 0);
    auth_regulation_mark(r, "alice", 0, 0, t0 + 20 * S);
    assert_int_equal(auth_regulation_banned(r, "alice", t0 + 21 * S, &until), 1);
    assert_int_equal(until, t0 + 20 * S + 5 * M); /* newest failure + ban_time */
    /* still banned just before, free at the end of the ban */
    assert_int_equal(auth_regulation_banned(r, "alice", t0 + 20 * S + 5 * M - 1, &until), 1);
    assert_int_equal(auth_regulation_banned(r, "alice", t0 + 20 * S + 5 * M, &until), 0);
    /* other users are not affected */
    assert_int_equal(auth_regulation_banned(r, "bob", t0 + 21 * S, &until), 0);
    auth_regulation_free(r);
}

static void failures_spread_over_more_than_find_time(void **st)
{
    auth_regulation *r = auth_regulation_new(3, 2 * M, 5 * M, 100);
    int64_t t0 = 1000000000000LL;
    (void)st;
    auth_regulation_mark(r, "alice", 0, 0, t0);
    auth_regulation_mark(r, "alice", 0, 0, t0 + 1 * M);
    auth_regulation_mark(r, "alice", 0, 0, t0 + 2 * M); /* newest - oldest == find_time: not < */
    assert_int_equal(auth_regulation_banned(r, "alice", t0 + 2 * M + 1, NULL), 0);
    auth_regulation_mark(r, "alice", 0, 0, t0 + 2 * M + 30 * S); /* last three within 90 s */
    assert_int_equal(auth_regulation_banned(r, "alice", t0 + 2 * M + 31 * S, NULL), 1);
    auth_regulation_free(r);
}

static void success_resets_the_count(void **st)
{
    auth_regulation *r = auth_regulation_new(3, 2 * M, 5 * M, 100);
    int64_t t0 = 1000000000000LL;
    (void)st;
    auth_regulation_mark(r, "alice", 0, 0, t0);
    auth_regulation_mark(r, "alice", 0, 0, t0 + 1 * S);
    auth_regulation_mark(r, "alice", 1, 0, t0 + 2 * S);
    auth_regulation_mark(r, "alice", 0, 0, t0 + 3 * S);
    auth_regulation_mark(r, "alice", 0, 0, t0 + 4 * S);
    assert_int_equal(auth_regulation_banned(r, "alice", t0 + 5 * S, NULL), 0);
    auth_regulation_mark(r, "alice", 0, 0, t0 + 6 * S);
    assert_int_equal(auth_regulation_banned(r, "alice", t0 + 7 * S, NULL), 1);
    auth_regulation_free(r);
}

static void attempts_while_banned_do_not_extend_the_ban(void **st)
{
    auth_regulation *r = auth_regulation_new(3, 2 * M, 5 * M, 100);
    int64_t t0 = 1000000000000LL, until = 0;
    int i;
    (void)st;
    for (i = 0; i < 3; i++)
        auth_regulation_mark(r, "alice", 0, 0, t0 + i * S);
    assert_int_equal(auth_regulation_banned(r, "alice", t0 + 3 * S, &until), 1);
    for (i = 0; i < 10; i++) /* the server marks them banned=1: not counted */
        auth_regulation_mark(r, "alice", 0, 1, t0 + (10 + i) * S);
    assert_int_equal(auth_regulation_banned(r, "alice", t0 + 2 * S + 5 * M, &until), 0);
    auth_regulation_free(r);
}

static void old_attempts_age_out(void **st)
{
    auth_regulation *r = auth_regulation_new(3, 2 * M, 5 * M, 100);
    int64_t t0 = 1000000000000LL;
    (void)st;
    auth_regulation_mark(r, "alice", 0, 0, t0);
    auth_regulation_mark(r, "alice", 0, 0, t0 + 1 * S);
    /* 10 minutes later: the two old failures are beyond ban_time and not loaded */
    auth_regulation_mark(r, "alice", 0, 0, t0 + 10 * M);
    assert_int_equal(auth_regulation_banned(r, "alice", t0 + 10 * M + 1, NULL), 0);
    auth_regulation_free(r);
}

static void disabled_and_bounded(void **st)
{
    auth_regulation *r = auth_regulation_new(0, 2 * M, 5 * M, 100);
    int64_t t0 = 1000000000000LL;
    int i;
    char name[32];
    (void)st;
    for (i = 0; i < 10; i++)
        auth_regulation_mark(r, "alice", 0, 0, t0 + i);
    assert_int_equal(auth_regulation_banned(r, "alice", t0 + 20, NULL), 0);
    auth_regulation_free(r);

    /* capacity 4: a flood of names forgets the coldest, never grows */
    r = auth_regulation_new(3, 2 * M, 5 * M, 4);
    for (i = 0; i < 3; i++)
        auth_regulation_mark(r, "alice", 0, 0, t0 + i);
    for (i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "u%d", i);
        auth_regulation_mark(r, name, 0, 0, t0 + 100 + i);
    }
    assert_int_equal(auth_regulation_banned(r, "alice", t0 + 300, NULL), 0); /* evicted */
    for (i = 0; i < 2; i++)
        auth_regulation_mark(r, "u99", 0, 0, t0 + 250 + i);
    assert_int_equal(auth_regulation_banned(r, "u99", t0 + 300, NULL), 1);
    /* long names are cut to the bound, consistently */
    auth_regulation_free(r);
}

/* auth_regulation_begin counts an attempt before its check: concurrent guesses are each counted,
 * the (max_retries+1)-th is refused while the first ones are still being checked. */
static void attempts_in_flight_are_counted(void **st)
{
    auth_regulation *r = auth_regulation_new(3, 2 * M, 5 * M, 100);
    int64_t t0 = 1000000000000LL, until = 0;
    uint64_t t[4];
    (void)st;
    for (int i = 0; i < 3; i++)
        assert_int_equal(auth_regulation_begin(r, "alice", t0 + i, &until, &t[i]), 0);
    assert_int_equal(auth_regulation_begin(r, "alice", t0 + 3, &until, &t[3]), 1);
    assert_int_equal(t[3], 0);
    auth_regulation_free(r);
}

static void a_ticket_turns_into_a_success(void **st)
{
    auth_regulation *r = auth_regulation_new(3, 2 * M, 5 * M, 100);
    int64_t t0 = 1000000000000LL, until = 0;
    uint64_t a, b, c, d;
    (void)st;
    assert_int_equal(auth_regulation_begin(r, "alice", t0, &until, &a), 0);
    assert_int_equal(auth_regulation_begin(r, "alice", t0 + 1, &until, &b), 0);
    assert_int_equal(auth_regulation_begin(r, "alice", t0 + 2, &until, &c), 0);
    auth_regulation_succeed(r, "alice", c); /* the third was right: the count starts again */
    assert_int_equal(auth_regulation_banned(r, "alice", t0 + 3, &until), 0);
    assert_int_equal(auth_regulation_begin(r, "alice", t0 + 4, &until, &d), 0);
    auth_regulation_succeed(r, "bob", d); /* another name's ticket changes nothing */
    assert_int_equal(auth_regulation_begin(r, "alice", t0 + 5, &until, &d), 0);
    assert_int_equal(auth_regulation_begin(r, "alice", t0 + 6, &until, &d), 0);
    assert_int_equal(auth_regulation_banned(r, "alice", t0 + 7, &until), 1);
    auth_regulation_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ban_after_three_failures_within_find_time),
        cmocka_unit_test(attempts_in_flight_are_counted),
        cmocka_unit_test(a_ticket_turns_into_a_success),
        cmocka_unit_test(failures_spread_over_more_than_find_time),
        cmocka_unit_test(success_resets_the_count),
        cmocka_unit_test(attempts_while_banned_do_not_extend_the_ban),
        cmocka_unit_test(old_attempts_age_out),
        cmocka_unit_test(disabled_and_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
