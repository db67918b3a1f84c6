/*
 * breaker_test.c - the per-model circuit breaker's states.
 */
#include "testutil.h"

#include "llm/breaker.h"

static void test_opens_after_threshold_and_probes(void **state) {
    (void)state;
    ap_breaker_t *b = ap_breaker_new(3, 1000);
    const char *k = "openai/gpt-4o";
    assert_true(ap_breaker_allow(b, k, 0));
    ap_breaker_report(b, k, false, 0);
    ap_breaker_report(b, k, false, 10);
    assert_true(ap_breaker_allow(b, k, 20)); /* two failures: still closed */
    assert_string_equal(ap_breaker_state(b, k, 20), "closed");
    ap_breaker_report(b, k, false, 30);     /* third: open until 1030 */
    assert_string_equal(ap_breaker_state(b, k, 40), "open");
    assert_false(ap_breaker_allow(b, k, 40));
    assert_false(ap_breaker_allow(b, k, 1029));
    assert_true(ap_breaker_allow(b, "openai/other", 40)); /* per model */
    /* half-open: one probe only */
    assert_string_equal(ap_breaker_state(b, k, 1030), "half-open");
    assert_true(ap_breaker_allow(b, k, 1030));
    assert_false(ap_breaker_allow(b, k, 1031));
    ap_breaker_report(b, k, false, 1040); /* the probe failed: open again */
    assert_false(ap_breaker_allow(b, k, 1041));
    assert_true(ap_breaker_allow(b, k, 2040));
    ap_breaker_report(b, k, true, 2050);  /* the probe succeeded: closed */
    assert_string_equal(ap_breaker_state(b, k, 2050), "closed");
    assert_true(ap_breaker_allow(b, k, 2051));
    assert_true(ap_breaker_allow(b, k, 2052));
    ap_breaker_free(b);
}

static void test_success_resets_the_count(void **state) {
    (void)state;
    ap_breaker_t *b = ap_breaker_new(2, 1000);
    ap_breaker_report(b, "m", false, 0);
    ap_breaker_report(b, "m", true, 1);
    ap_breaker_report(b, "m", false, 2);
    assert_true(ap_breaker_allow(b, "m", 3)); /* not two in a row */
    ap_breaker_report(b, "m", false, 4);
    assert_false(ap_breaker_allow(b, "m", 5));
    ap_breaker_free(b);
    ap_breaker_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_after_threshold_and_probes),
        cmocka_unit_test(test_success_resets_the_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
