/*
** The per-IP limit on anonymous sign-ins is one bucket in the database,
** shared by every process: two processes signing in from one address at
** the same time get exactly ratelimit.anon_per_hour sign-ins between them,
** and the rest are rate_limited with nothing written but the bucket and an
** audit row. Then the bucket refills on the clock (anonauth_set_clock).
*/
#include "harness.h"

#include <sys/wait.h>

#define PROCS 2
#define PER_PROC 15
#define LIMIT 20
#define T0 1700000000LL

typedef struct {
  int ok, limited, other;
} tally;

static int signin(sqlite3 *db, const char *ip) {
  char sql[128];
  sqlite3_stmt *st = NULL;
  int rc;
  snprintf(sql, sizeof sql, "SELECT anon_signin('{\"ip\":\"%s\"}') IS NOT NULL", ip);
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) rc = 1;
  else if (strstr(sqlite3_errmsg(db), "anonauth: rate_limited: ") == sqlite3_errmsg(db)) rc = 0;
  else rc = -1;
  sqlite3_finalize(st);
  return rc;
}

static int child(const char *path, int go_fd, int out_fd) {
  sqlite3 *db = harness_open(path);
  tally t = {0, 0, 0};
  char go;
  if (db == NULL) return 2;
  sqlite3_busy_timeout(db, 30000);
  sqlite3_exec(db, "SELECT anonauth_set_clock(1700000000)", NULL, NULL, NULL);
  if (read(go_fd, &go, 1) != 1) return 3; /* both start together */
  for (int i = 0; i < PER_PROC; i++) {
    int r = signin(db, "198.51.100.7");
    if (r == 1) t.ok++;
    else if (r == 0) t.limited++;
    else t.other++;
  }
  sqlite3_close(db);
  return write(out_fd, &t, sizeof t) == (ssize_t)sizeof t ? 0 : 4;
}

int main(void) {
  char path[512], sql[160];
  int go[2], out[PROCS][2];
  pid_t pids[PROCS];
  tally total = {0, 0, 0};
  int children_ok = 1;
  sqlite3 *db;
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "ratelimit_ip");
  harness_remove(path);

  db = harness_open(path);
  REQUIRE(db != NULL, "opens the database");
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  snprintf(sql, sizeof sql, "SELECT anonauth_config('ratelimit.anon_per_hour', %d)", LIMIT);
  REQUIRE(harness_int(db, sql) == LIMIT, "ratelimit.anon_per_hour set to %d", LIMIT);
  sqlite3_close(db);

  if (pipe(go) != 0) return 1;
  for (int p = 0; p < PROCS; p++) {
    if (pipe(out[p]) != 0) return 1;
    pids[p] = fork();
    if (pids[p] == 0) {
      close(go[1]);
      close(out[p][0]);
      _exit(child(path, go[0], out[p][1]));
    }
    close(out[p][1]);
  }
  close(go[0]);
  if (write(go[1], "gg", PROCS) != PROCS) return 1;
  close(go[1]);
  for (int p = 0; p < PROCS; p++) {
    tally t;
    int status = 0;
    if (read(out[p][0], &t, sizeof t) == (ssize_t)sizeof t) {
      total.ok += t.ok;
      total.limited += t.limited;
      total.other += t.other;
    } else {
      children_ok = 0;
    }
    close(out[p][0]);
    waitpid(pids[p], &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) children_ok = 0;
  }
  CHECK(children_ok, "both processes ran to the end");
  CHECK(total.ok == LIMIT, "%d sign-ins succeeded across both processes, %d expected", total.ok,
        LIMIT);
  CHECK(total.limited == PROCS * PER_PROC - LIMIT, "%d were rate_limited, %d expected",
        total.limited, PROCS * PER_PROC - LIMIT);
  CHECK(total.other == 0, "no other error (%d)", total.other);

  db = harness_open(path);
  REQUIRE(db != NULL, "reopens the database");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users") == LIMIT, "%d users", LIMIT);
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_sessions") == LIMIT, "%d sessions", LIMIT);
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_audit WHERE event = 'anon_signin'") ==
            LIMIT,
        "one anon_signin audit row per sign-in");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_audit WHERE event = 'rate_limited' "
                        "AND ip = '198.51.100.7' AND user_id IS NULL") ==
            PROCS * PER_PROC - LIMIT,
        "one rate_limited audit row per refusal, with the address and no user");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_rate_limits WHERE kind = 'anon_signin_ip' "
                        "AND subject = '198.51.100.7' AND tokens < 0.000001") == 1,
        "one bucket, empty");

  /* 20 per hour: one token every 180 seconds. */
  harness_int(db, "SELECT anonauth_set_clock(1700000179)");
  CHECK(signin(db, "198.51.100.7") == 0, "179 s later: still rate_limited");
  harness_int(db, "SELECT anonauth_set_clock(1700000359)");
  CHECK(signin(db, "198.51.100.7") == 1, "359 s later (two refills of 179 s and 180 s): one sign-in allowed");
  CHECK(signin(db, "198.51.100.7") == 0, "and only one");
  CHECK(signin(db, "198.51.100.8") == 1, "another address has its own bucket");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users") == LIMIT + 2, "%d users now",
        LIMIT + 2);
  sqlite3_close(db);
  harness_remove(path);
  return check_done();
}
