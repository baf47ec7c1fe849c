/* Unit tests: the supervisor's pure decisions (policy.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sv.h"

static void test_backoff_doubles_and_caps(void **state)
{
    (void)state;
    assert_int_equal(backoff_delay(100, 30000, 0), 100);
    assert_int_equal(backoff_delay(100, 30000, 1), 200);
    assert_int_equal(backoff_delay(100, 30000, 2), 400);
    assert_int_equal(backoff_delay(100, 30000, 8), 25600);
    assert_int_equal(backoff_delay(100, 30000, 9), 30000);
    assert_int_equal(backoff_delay(100, 30000, 1000000), 30000);
    /* huge values never overflow */
    assert_int_equal(backoff_delay(INT64_MAX / 2, INT64_MAX, 70), INT64_MAX);
    /* odd inputs: negative attempt, max below initial, zero initial */
    assert_int_equal(backoff_delay(100, 30000, -3), 100);
    assert_int_equal(backoff_delay(500, 100, 4), 500);
    assert_int_equal(backoff_delay(0, 1000, 5), 0);
}

static void test_backoff_reset_after_stable_run(void **state)
{
    (void)state;
    assert_int_equal(backoff_attempt_after_run(5, 59999, 60000), 5);
    assert_int_equal(backoff_attempt_after_run(5, 60000, 60000), 0);
    assert_int_equal(backoff_attempt_after_run(0, 10, 60000), 0);
}

static void test_restart_limit_window(void **state)
{
    (void)state;
    int64_t t[SV_RESTART_RING] = {0};
    int n = 0;
    assert_false(restart_limit_hit(t, n, 3, 10000, 0));
    restart_record(t, &n, 1000);
    restart_record(t, &n, 2000);
    assert_false(restart_limit_hit(t, n, 3, 10000, 2500));
    restart_record(t, &n, 3000);
    assert_true(restart_limit_hit(t, n, 3, 10000, 3500));
    /* the first restart leaves the window */
    assert_false(restart_limit_hit(t, n, 3, 10000, 11001));
    /* count 0 = no limit */
    assert_false(restart_limit_hit(t, n, 0, 10000, 3500));
    /* the ring keeps the newest SV_RESTART_RING entries */
    for (int i = 0; i < SV_RESTART_RING + 10; i++)
        restart_record(t, &n, 100000 + i);
    assert_int_equal(n, SV_RESTART_RING);
    assert_true(restart_limit_hit(t, n, SV_RESTART_RING, 1000, 100000 + SV_RESTART_RING + 9));
    for (int i = 0; i < n; i++)
        assert_true(t[i] >= 100010);
}

static void test_transitions(void **state)
{
    (void)state;
    /* the normal life of a service */
    assert_true(svc_transition_ok(SVC_STOPPED, SVC_WAITING));
    assert_true(svc_transition_ok(SVC_WAITING, SVC_STARTING));
    assert_true(svc_transition_ok(SVC_STARTING, SVC_READY));
    assert_true(svc_transition_ok(SVC_READY, SVC_STOPPING));
    assert_true(svc_transition_ok(SVC_STOPPING, SVC_STOPPED));
    /* crash, backoff, restart, give up */
    assert_true(svc_transition_ok(SVC_READY, SVC_BACKOFF));
    assert_true(svc_transition_ok(SVC_BACKOFF, SVC_STARTING));
    assert_true(svc_transition_ok(SVC_STARTING, SVC_FAILED));
    assert_true(svc_transition_ok(SVC_STOPPING, SVC_BACKOFF)); /* liveness restart */
    assert_true(svc_transition_ok(SVC_STARTING, SVC_EXITED));  /* oneshot done */
    assert_true(svc_transition_ok(SVC_FAILED, SVC_STARTING));  /* manual start */
    /* impossible ones */
    assert_false(svc_transition_ok(SVC_STOPPED, SVC_READY));
    assert_false(svc_transition_ok(SVC_WAITING, SVC_READY));
    assert_false(svc_transition_ok(SVC_BACKOFF, SVC_READY));
    assert_false(svc_transition_ok(SVC_FAILED, SVC_READY));
    assert_false(svc_transition_ok(SVC_EXITED, SVC_STOPPING));
    assert_false(svc_transition_ok(SVC_STOPPED, SVC_STOPPING));
    assert_false(svc_transition_ok(SVC_READY, SVC_STARTING));
    assert_false(svc_transition_ok(SVC_READY, SVC_WAITING));
    assert_false(svc_transition_ok((svc_state)42, SVC_READY));
    /* a state never transitions to itself through the table */
    for (int s = 0; s < SVC_NSTATES; s++)
        if (s != SVC_BACKOFF) assert_false(svc_transition_ok((svc_state)s, (svc_state)s));
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(svc_state_name(SVC_STOPPED), "STOPPED");
    assert_string_equal(svc_state_name(SVC_WAITING), "WAITING");
    assert_string_equal(svc_state_name(SVC_READY), "READY");
    assert_string_equal(svc_state_name(SVC_FAILED), "FAILED");
    assert_string_equal(svc_state_name((svc_state)99), "?");
    assert_true(svc_state_running(SVC_STARTING));
    assert_true(svc_state_running(SVC_STOPPING));
    assert_false(svc_state_running(SVC_BACKOFF));
}

static void test_dep_conditions(void **state)
{
    (void)state;
    assert_true(dep_cond_holds(DEP_STARTED, SVC_STARTING, 0));
    assert_true(dep_cond_holds(DEP_STARTED, SVC_READY, 0));
    assert_false(dep_cond_holds(DEP_STARTED, SVC_WAITING, 0));
    assert_false(dep_cond_holds(DEP_STARTED, SVC_BACKOFF, 0));
    assert_false(dep_cond_holds(DEP_STARTED, SVC_STOPPING, 0));
    assert_true(dep_cond_holds(DEP_READY, SVC_READY, 0));
    assert_false(dep_cond_holds(DEP_READY, SVC_STARTING, 0));
    assert_false(dep_cond_holds(DEP_READY, SVC_STOPPING, 0)); /* a restart makes dependents wait */
    assert_false(dep_cond_holds(DEP_READY, SVC_FAILED, 0));
    assert_true(dep_cond_holds(DEP_READY, SVC_EXITED, 1)); /* a completed oneshot is ready */
    assert_true(dep_cond_holds(DEP_COMPLETED, SVC_EXITED, 1));
    assert_false(dep_cond_holds(DEP_COMPLETED, SVC_EXITED, 0));
    assert_false(dep_cond_holds(DEP_COMPLETED, SVC_READY, 0));
    assert_false(dep_cond_holds(DEP_COMPLETED, SVC_STARTING, 0));
}

static void test_restart_policies(void **state)
{
    (void)state;
    assert_true(restart_wanted(RESTART_ALWAYS, 0));
    assert_true(restart_wanted(RESTART_ALWAYS, 1));
    assert_false(restart_wanted(RESTART_ON_FAILURE, 0));
    assert_true(restart_wanted(RESTART_ON_FAILURE, 1));
    assert_false(restart_wanted(RESTART_NEVER, 0));
    assert_false(restart_wanted(RESTART_NEVER, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_doubles_and_caps),
        cmocka_unit_test(test_backoff_reset_after_stable_run),
        cmocka_unit_test(test_restart_limit_window),
        cmocka_unit_test(test_transitions),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_dep_conditions),
        cmocka_unit_test(test_restart_policies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
