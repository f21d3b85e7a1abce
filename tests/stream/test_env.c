/* test_env.c — the one numeric env-knob parser (runtime/base/qn_env.h): unset and empty give the default; decimal
 * and 0x hex parse; malformed values (letters, trailing characters, a minus sign, only spaces) and values outside
 * [lo, hi] give the default (with a warning), never 0; the bounds themselves are accepted. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "qn_env.h"

static int failures;

static void expect(const char *value, uint64_t def, uint64_t lo, uint64_t hi, uint64_t want)
{
    if (value) setenv("QNEXT_TEST_ENV_KNOB", value, 1);
    else unsetenv("QNEXT_TEST_ENV_KNOB");
    uint64_t got = qn_env_u64("QNEXT_TEST_ENV_KNOB", def, lo, hi);
    printf("%-4s '%s' in [%llu, %llu], default %llu: %llu (want %llu)\n", got == want ? "ok" : "FAIL",
           value ? value : "(unset)", (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)def,
           (unsigned long long)got, (unsigned long long)want);
    failures += got != want;
}

int main(void)
{
    expect(NULL, 7, 0, 100, 7);
    expect("", 7, 0, 100, 7);
    expect("42", 7, 0, 100, 42);
    expect("0x20", 7, 0, 100, 32);
    expect("0", 7, 0, 100, 0);          /* 0 is a value where lo is 0 (switches: off) */
    expect("0", 7, 1, 100, 7);          /* ... and out of range where lo is 1 */
    expect("100", 7, 0, 100, 100);
    expect("101", 7, 0, 100, 7);
    expect("12abc", 7, 0, 100, 7);
    expect("abc", 7, 0, 100, 7);
    expect("-1", 7, 0, UINT64_MAX, 7);
    expect("   ", 7, 0, 100, 7);
    expect("18446744073709551616", 7, 0, UINT64_MAX, 7);   /* 2^64: overflows */
    printf("%s env: %d failures\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
