/*
** libFuzzer harness for the siteverify answer parser (src/siteverify.c on
** src/json.c): whatever bytes a provider, a proxy or an attacker in the
** middle sends, the parser must not crash, must not read out of bounds, and
** must only ever say yes when `success` is the literal true.
**
** Built by tests/fuzz/run.sh with -DSQLITE_CORE against the system SQLite.
*/
#include "anonauth_int.h"

#include <stdlib.h>
#include <string.h>

/* The yes must come from a member spelled `success` (possibly escaped) whose
** value is the literal true: the text must at least contain "true". */
static int has_true(const uint8_t *data, size_t size) {
  for (size_t i = 0; i + 4 <= size; i++) {
    if (memcmp(data + i, "true", 4) == 0) return 1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  aa_verdict v;
  const char *why = NULL;
  char *copy;
  int rc;
  if (size > AA_HTTP_BODY_MAX + 16) return 0;
  /* An exact-size heap copy, so ASan sees any read past the end. */
  copy = malloc(size ? size : 1);
  if (copy == NULL) return 0;
  if (size) memcpy(copy, data, size);

  rc = aa_siteverify_parse(copy, (int)size, NULL, NULL, &v, &why);
  if (rc == SQLITE_OK) {
    if (v.success && (!v.provider_success || !has_true(data, size))) abort();
    if (v.n_codes < 0 || v.n_codes > AA_VERDICT_MAX_CODES) abort();
    for (int i = 0; i < v.n_codes; i++) {
      size_t n = strnlen(v.codes[i], sizeof(v.codes[i]));
      if (n == 0 || n > AA_VERDICT_CODE_MAX) abort();
      for (size_t k = 0; k < n; k++) {
        char ch = v.codes[i][k];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
          abort(); /* codes reach messages and audit rows: only their shape */
      }
    }
  } else if (rc == SQLITE_MISMATCH) {
    if (why == NULL) abort();
  } else if (rc != SQLITE_NOMEM) {
    abort();
  }

  /* With configured checks a yes also needs them to match. */
  rc = aa_siteverify_parse(copy, (int)size, "example.com", "login", &v, &why);
  if (rc == SQLITE_OK && v.success && !v.provider_success) abort();
  free(copy);
  return 0;
}
