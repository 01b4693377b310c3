/*
** clock.c — the time every validity rule is measured against.
**
** anonauth_set_clock() overrides it for one connection so that tests can
** move through expiry, idle timeouts and rate-limit refills without sleeping.
** The override is never stored: other connections keep the system clock.
*/
#include "anonauth_int.h"

#include <time.h>

/* 9999-12-31T23:59:59Z: beyond it a time is a bug, not a date. */
#define AA_CLOCK_MAX INT64_C(253402300799)

int64_t aa_now(aa_conn *c) {
  if (c->clock_overridden) return c->clock_value;
  return (int64_t)time(NULL);
}

void aa_fn_set_clock(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  (void)argc;
  aa_err_clear(c);
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
    c->clock_overridden = 0;
  } else {
    int64_t t;
    if (!aa_value_int64(argv[0], &t)) {
      aa_result_error(ctx, c,
                      aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                             "clock must be an integer unix time or NULL"));
      return;
    }
    if (t < 0 || t > AA_CLOCK_MAX) {
      aa_result_error(ctx, c,
                      aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                             "clock must be a unix time between 0 and %lld",
                             (long long)AA_CLOCK_MAX));
      return;
    }
    c->clock_overridden = 1;
    c->clock_value = t;
  }
  sqlite3_result_int64(ctx, aa_now(c));
}
