/* auth_session: random ids, lookup, expiry, inactivity, remember-me, sweep, bounded table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "auth.h"

static void lifecycle(void **st)
{
    auth_sessions *t = auth_sessions_new(8);
    int64_t now = 1000000;
    auth_session *a, *b;
    uint8_t ida[AUTH_SID_BYTES], zero[AUTH_SID_BYTES] = {0};
    (void)st;
    a = auth_sessions_create(t, now);
    b = auth_sessions_create(t, now);
    assert_non_null(a);
    assert_non_null(b);
    assert_memory_not_equal(a->id, b->id, AUTH_SID_BYTES);
    assert_memory_not_equal(a->id, zero, AUTH_SID_BYTES);
    memcpy(ida, a->id, sizeof(ida));
    a->expires_ms = now + 10000;
    b->expires_ms = now + 10000;
    b->remember = 1;
    assert_ptr_equal(auth_sessions_find(t, ida), a);
    assert_int_equal(auth_sessions_count(t), 2);
    /* inactivity 2 s: a (not remembered) dies, b (remember me) lives until expiry */
    assert_true(auth_session_alive(a, now + 1999, 2000));
    assert_false(auth_session_alive(a, now + 2000, 2000));
    assert_true(auth_session_alive(b, now + 9999, 2000));
    assert_false(auth_session_alive(b, now + 10000, 2000));
    /* activity moves the inactivity deadline, not the expiry */
    a->last_ms = now + 1500;
    assert_true(auth_session_alive(a, now + 3000, 2000));
    assert_false(auth_session_alive(a, now + 10000, 0));
    assert_int_equal(auth_sessions_sweep(t, now + 3600, 2000), 1);
    assert_null(auth_sessions_find(t, ida));
    assert_int_equal(auth_sessions_count(t), 1);
    auth_sessions_remove(t, b);
    assert_int_equal(auth_sessions_count(t), 0);
    auth_sessions_free(t);
}

static void bounded(void **st)
{
    auth_sessions *t = auth_sessions_new(4);
    auth_session *s[6];
    uint8_t first[AUTH_SID_BYTES];
    int i;
    (void)st;
    for (i = 0; i < 6; i++) {
        s[i] = auth_sessions_create(t, 1000);
        assert_non_null(s[i]);
        s[i]->expires_ms = 5000 + i; /* the first created expires first */
        if (i == 0) memcpy(first, s[i]->id, AUTH_SID_BYTES);
    }
    assert_int_equal(auth_sessions_count(t), 4);
    assert_null(auth_sessions_find(t, first)); /* evicted: the closest to expiry */
    assert_ptr_equal(auth_sessions_find(t, s[5]->id), s[5]);
    auth_sessions_free(t);
}

static void put_replaces(void **st)
{
    auth_sessions *t = auth_sessions_new(4);
    auth_session in, *s;
    (void)st;
    memset(&in, 0, sizeof(in));
    memset(in.id, 7, sizeof(in.id));
    snprintf(in.user, sizeof(in.user), "%s", "alice");
    in.level = AUTH_LEVEL_ONE;
    in.expires_ms = 9000;
    s = auth_sessions_put(t, &in);
    assert_string_equal(s->user, "alice");
    in.level = AUTH_LEVEL_TWO;
    s = auth_sessions_put(t, &in);
    assert_int_equal(s->level, AUTH_LEVEL_TWO);
    assert_int_equal(auth_sessions_count(t), 1);
    assert_ptr_equal(auth_sessions_find(t, in.id), s);
    auth_sessions_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(lifecycle), cmocka_unit_test(bounded),
                                       cmocka_unit_test(put_replaces)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
