/*
** check.h — the assertion helpers of anonauth's C tests.
**
** CHECK(cond, "what") counts a pass or prints the failure with its line;
** every test program ends with check_done(), which prints the suite's
** closing line ("N passed, N failed") and returns the exit status.
*/
#ifndef ANONAUTH_CHECK_H
#define ANONAUTH_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed, check_failed;
static const char *check_label = "c";

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    if (cond) {                                                            \
      check_passed++;                                                      \
      printf("ok - %s: ", check_label);                                    \
    } else {                                                               \
      check_failed++;                                                      \
      printf("FAIL - %s: %s:%d: ", check_label, __FILE__, __LINE__);       \
    }                                                                      \
    printf(__VA_ARGS__);                                                   \
    printf("\n");                                                          \
    fflush(stdout);                                                        \
  } while (0)

/* Stops the program when a precondition of the remaining checks fails. */
#define REQUIRE(cond, ...)                                                 \
  do {                                                                     \
    int require_ok_ = (cond) ? 1 : 0; /* evaluated once */                 \
    CHECK(require_ok_, __VA_ARGS__);                                       \
    if (!require_ok_) return check_done();                                 \
  } while (0)

static inline int check_done(void) {
  printf("%d passed, %d failed\n", check_passed, check_failed);
  fflush(stdout); /* sanitizers exit without flushing stdio */
  return check_failed ? 1 : 0;
}

#endif
