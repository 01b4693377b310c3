/*
** args.c — strict readers for SQL function arguments.
**
** SQLite passes values of any type to any function. anonauth does not guess:
** a user id is an INTEGER, not the text '5' or the real 5.0, so that a
** mistake in the caller shows up as an error instead of a silent miss.
*/
#include "anonauth_int.h"

int aa_arg_user_id(aa_conn *c, sqlite3_value *v, const char *what, int64_t *out) {
  if (sqlite3_value_type(v) != SQLITE_INTEGER)
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "%s must be an integer user id",
                  what);
  *out = sqlite3_value_int64(v);
  return SQLITE_OK;
}
