/*
** 4 processes x 500 anonymous sign-ins on one WAL database, each calling
** the documented way (a bare SELECT anon_signin() with a busy timeout):
** every sign-in succeeds, the counts are exact and every token is unique
** and valid. Tokens travel to the parent over pipes, never to output.
*/
#include "harness.h"

#include <sys/wait.h>

#define PROCS 4
#define PER_PROC 500
#define TOKEN_LEN 57

static int child(const char *path, int fd) {
  sqlite3 *db = harness_open(path);
  sqlite3_stmt *st = NULL;
  int failures = 0;
  if (db == NULL) return 2;
  sqlite3_busy_timeout(db, 30000);
  if (sqlite3_prepare_v2(db, "SELECT anon_signin()", -1, &st, NULL) != SQLITE_OK) return 3;
  for (int i = 0; i < PER_PROC; i++) {
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == TOKEN_LEN) {
      if (write(fd, sqlite3_column_text(st, 0), TOKEN_LEN) != TOKEN_LEN) failures++;
    } else {
      fprintf(stderr, "sign-in failed: %s\n", sqlite3_errmsg(db));
      failures++;
    }
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return failures ? 1 : 0;
}

static int cmp_token(const void *a, const void *b) { return memcmp(a, b, TOKEN_LEN); }

int main(void) {
  char path[512];
  int fds[PROCS][2];
  pid_t pids[PROCS];
  static char tokens[PROCS * PER_PROC][TOKEN_LEN];
  int got = 0, children_ok = 1, dupes = 0, valid = 0;
  sqlite3 *db;
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "concurrency");
  harness_remove(path);

  db = harness_open(path);
  REQUIRE(db != NULL, "opens the database");
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  sqlite3_close(db);

  for (int p = 0; p < PROCS; p++) {
    if (pipe(fds[p]) != 0) return 1;
    pids[p] = fork();
    if (pids[p] == 0) {
      close(fds[p][0]);
      _exit(child(path, fds[p][1]));
    }
    close(fds[p][1]);
  }
  for (int p = 0; p < PROCS; p++) {
    ssize_t n;
    while (got < PROCS * PER_PROC &&
           (n = read(fds[p][0], tokens[got], TOKEN_LEN)) == TOKEN_LEN)
      got++;
    close(fds[p][0]);
  }
  for (int p = 0; p < PROCS; p++) {
    int status = 0;
    waitpid(pids[p], &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) children_ok = 0;
  }
  CHECK(children_ok, "every process finished all its sign-ins without an error");
  CHECK(got == PROCS * PER_PROC, "%d tokens received, %d expected", got, PROCS * PER_PROC);

  qsort(tokens, (size_t)got, TOKEN_LEN, cmp_token);
  for (int i = 1; i < got; i++) dupes += memcmp(tokens[i - 1], tokens[i], TOKEN_LEN) == 0;
  CHECK(dupes == 0, "every token is unique");

  db = harness_open(path);
  REQUIRE(db != NULL, "reopens the database");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users") == PROCS * PER_PROC,
        "exactly %d users", PROCS * PER_PROC);
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_sessions") == PROCS * PER_PROC,
        "exactly %d sessions", PROCS * PER_PROC);
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_audit WHERE event = 'anon_signin'") ==
            PROCS * PER_PROC,
        "exactly %d audit rows", PROCS * PER_PROC);
  for (int i = 0; i < got; i++) {
    char t[TOKEN_LEN + 1];
    memcpy(t, tokens[i], TOKEN_LEN);
    t[TOKEN_LEN] = 0;
    valid += harness_valid(db, t) == 1;
  }
  CHECK(valid == got, "every token received validates (%d of %d)", valid, got);
  CHECK(sqlite3_close(db) == SQLITE_OK, "closes");
  harness_remove(path);
  return check_done();
}
