/*
** libanonauth.a, registered with sqlite3_auto_extension(), gives every new
** connection the functions without loading anything.
*/
#include "harness.h"
#include "anonauth.h"

int main(void) {
  sqlite3 *a = NULL, *b = NULL;
  char path[512], buf[128];
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "static");
  harness_remove(path);

  REQUIRE(sqlite3_auto_extension((void (*)(void))sqlite3_anonauth_init) == SQLITE_OK,
          "sqlite3_auto_extension accepts the entry point");
  REQUIRE(sqlite3_open(path, &a) == SQLITE_OK, "first connection opens");
  REQUIRE(sqlite3_open(path, &b) == SQLITE_OK, "second connection opens");
  CHECK(harness_text(a, "SELECT anonauth_version()", buf, sizeof buf) == SQLITE_OK &&
            strcmp(buf, ANONAUTH_VERSION) == 0,
        "the static build registers anonauth_version()");
  CHECK(harness_text(a, "SELECT anon_signin() IS NOT NULL", buf, sizeof buf) == SQLITE_OK &&
            strcmp(buf, "1") == 0,
        "anon_signin() works without load_extension");
  CHECK(harness_int(b, "SELECT count(*) FROM anonauth_users") == 1,
        "another connection of the same program sees the user");
  CHECK(sqlite3_close(a) == SQLITE_OK && sqlite3_close(b) == SQLITE_OK,
        "both connections close with sqlite3_close()");
  sqlite3_reset_auto_extension();
  harness_remove(path);
  return check_done();
}
