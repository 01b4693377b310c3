/*
** anon_purge() on 100,000 stale anonymous users, in batches of purge.batch,
** while another process keeps signing users in:
**   - every stale user goes, with its sessions and (through purge.user_sql)
**     its app rows; calling until 0 takes ceil(100000 / batch) + 1 calls;
**   - every live user stays intact: anonymous users seen recently (created
**     long ago, interleaved with the stale ones), fresh ones, anonymous
**     users with an account, normal users, and everyone the other process
**     signed in meanwhile, with their sessions and app rows;
**   - the other process never fails a sign-in, and no call holds the write
**     lock for long (the slowest call and the slowest sign-in are printed).
** Users are generated with plain SQL inserts for speed.
*/
#include "harness.h"

#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#define STALE 100000
#define LIVE_OLD_ACTIVE 2000 /* anonymous, created 40 days ago, seen yesterday */
#define LIVE_FRESH 1000      /* anonymous, created yesterday */
#define LIVE_LINKED 1000     /* anonymous flag set but holding an account */
#define LIVE_NORMAL 1000     /* normal users, created 40 days ago */
#define SIGNINS 400          /* by the other process, during the purge */
#define DAY 86400

static double now_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return tv.tv_sec * 1000.0 + tv.tv_usec / 1000.0;
}

static int exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK) fprintf(stderr, "%s\n  in: %.120s\n", err ? err : "?", sql);
  sqlite3_free(err);
  return rc;
}

/* Signs in SIGNINS times; reports failures and the slowest sign-in (in
** microseconds) through the pipe. */
static int signer(const char *path, int fd) {
  sqlite3 *db = harness_open(path);
  sqlite3_stmt *st = NULL;
  long report[2] = {0, 0};
  if (db == NULL) return 2;
  sqlite3_busy_timeout(db, 30000);
  if (sqlite3_prepare_v2(db, "SELECT anon_signin()", -1, &st, NULL) != SQLITE_OK) return 3;
  for (int i = 0; i < SIGNINS; i++) {
    double t0 = now_ms();
    if (sqlite3_step(st) != SQLITE_ROW) {
      fprintf(stderr, "sign-in failed: %s\n", sqlite3_errmsg(db));
      report[0]++;
    }
    sqlite3_reset(st);
    double us = (now_ms() - t0) * 1000.0;
    if (us > report[1]) report[1] = (long)us;
    usleep(2000);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (write(fd, report, sizeof report) != (ssize_t)sizeof report) return 4;
  return report[0] ? 1 : 0;
}

int main(void) {
  char path[512], sql[2048];
  sqlite3 *db;
  long long now = (long long)time(NULL);
  long long total = 0, calls = 0, expected_live;
  double t_start, slowest = 0;
  int fds[2], status = 0;
  long report[2] = {-1, -1};
  pid_t pid;
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "purge");
  harness_remove(path);

  db = harness_open(path);
  REQUIRE(db != NULL, "opens the database");
  sqlite3_busy_timeout(db, 30000);
  REQUIRE(exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                   "CREATE TABLE app_rows(user_id INTEGER NOT NULL, what TEXT);"
                   "CREATE INDEX app_rows_by_user ON app_rows(user_id);"
                   "CREATE TABLE expect(user_id INTEGER PRIMARY KEY, live INTEGER NOT NULL);"
                   "SELECT anonauth_config('purge.user_sql', "
                   "  'DELETE FROM app_rows WHERE user_id = :user_id');") == SQLITE_OK,
          "creates the app's table and sets purge.user_sql");

  /* Stale and old-but-active users interleaved in creation order; the other
  ** kinds after them. kind: 0 stale, 1 old active, 2 fresh, 3 linked, 4 normal. */
  sqlite3_snprintf(sizeof sql, sql,
                   "BEGIN;"
                   "CREATE TEMP TABLE gen(i INTEGER PRIMARY KEY, kind INTEGER, created INTEGER);"
                   "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
                   "INSERT INTO gen SELECT i, CASE WHEN i %% 51 = 0 THEN 1 ELSE 0 END, "
                   "  %lld - 40 * %d - (%d - i) FROM n;"
                   "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
                   "INSERT INTO gen(kind, created) SELECT CASE WHEN i <= %d THEN 2 "
                   "  WHEN i <= %d THEN 3 ELSE 4 END, "
                   "  CASE WHEN i <= %d THEN %lld - %d ELSE %lld - 40 * %d END FROM n;"
                   "INSERT INTO anonauth_users(id, is_anonymous, created_at) "
                   "  SELECT i, kind <> 4, created FROM gen;"
                   "INSERT INTO expect SELECT i, kind <> 0 FROM gen;"
                   /* sessions: half the stale users have one, last seen 35 days ago */
                   "INSERT INTO anonauth_sessions(token_hash, user_id, created_at, last_seen_at, "
                   "  expires_at) SELECT randomblob(32), i, created, %lld - 35 * %d, "
                   "  created + 2592000 FROM gen WHERE kind = 0 AND i %% 2 = 0;"
                   "INSERT INTO anonauth_sessions(token_hash, user_id, created_at, last_seen_at, "
                   "  expires_at) SELECT randomblob(32), i, %lld - 2 * %d, %lld - %d, "
                   "  %lld + 28 * %d FROM gen WHERE kind <> 0;"
                   "INSERT INTO anonauth_accounts(user_id, provider, account_id, created_at) "
                   "  SELECT i, 'password', 'user' || i || '@example.com', created FROM gen "
                   "  WHERE kind IN (3, 4);"
                   "INSERT INTO app_rows SELECT i, 'cart' FROM gen;"
                   "INSERT INTO app_rows SELECT i, 'note' FROM gen WHERE i %% 3 = 0;"
                   "DROP TABLE gen;"
                   "COMMIT;",
                   STALE + LIVE_OLD_ACTIVE, now, DAY, STALE + LIVE_OLD_ACTIVE,
                   LIVE_FRESH + LIVE_LINKED + LIVE_NORMAL, LIVE_FRESH, LIVE_FRESH + LIVE_LINKED,
                   LIVE_FRESH, now, DAY, now, DAY, now, DAY, now, DAY, now, DAY, now, DAY);
  t_start = now_ms();
  REQUIRE(exec(db, sql) == SQLITE_OK, "generates the users with plain SQL");
  {
    long long stale = harness_int(db, "SELECT count(*) FROM expect WHERE live = 0");
    expected_live = harness_int(db, "SELECT count(*) FROM expect WHERE live = 1");
    CHECK(stale >= STALE * 49 / 51 && expected_live > 4000,
          "%lld stale and %lld live users generated in %.0f ms", stale, expected_live,
          now_ms() - t_start);
    total = 0;
  }

  if (pipe(fds) != 0) return 1;
  pid = fork();
  if (pid == 0) {
    close(fds[0]);
    _exit(signer(path, fds[1]));
  }
  close(fds[1]);

  t_start = now_ms();
  for (;;) {
    sqlite3_stmt *st = NULL;
    double t0 = now_ms(), took;
    long long n = -1;
    if (sqlite3_prepare_v2(db, "SELECT anon_purge()", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      n = sqlite3_column_int64(st, 0);
    else
      fprintf(stderr, "anon_purge: %s\n", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    took = now_ms() - t0;
    if (took > slowest) slowest = took;
    calls++;
    if (n <= 0 || calls > 1000) break;
    total += n;
    /* As the README recommends: a pause between batches lets waiting
    ** writers in (SQLite's busy handler backs off and is not fair; with 1 ms
    ** a sign-in here waited up to 0.7 s, with 10 ms under 0.1 s). */
    usleep(10000);
  }
  {
    double elapsed = now_ms() - t_start;
    long long stale = harness_int(db, "SELECT count(*) FROM expect WHERE live = 0");
    CHECK(total == stale, "anon_purge() deleted %lld users in total, %lld expected", total,
          stale);
    CHECK(calls == (stale + 999) / 1000 + 1,
          "%lld calls: one per purge.batch (1000) users, then one returning 0", calls);
    /* Times are reported, not asserted (make bench measures speed); the
    ** bound only says no call hung past the other process's busy timeout. */
    CHECK(slowest < 30000, "purged %lld users in %lld calls, %.0f ms in all, slowest call %.0f ms",
          total, calls, elapsed, slowest);
  }

  while (read(fds[0], report, sizeof report) < 0) {
  }
  close(fds[0]);
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0 && report[0] == 0,
        "the other process signed in %d times during the purge without a failure", SIGNINS);
  CHECK(report[1] >= 0 && report[1] < 30000000,
        "its slowest sign-in took %.1f ms (reported; bounded only by its 30 s busy timeout)",
        report[1] / 1000.0);

  CHECK(harness_int(db, "SELECT count(*) FROM expect AS e LEFT JOIN anonauth_users AS u "
                        "ON u.id = e.user_id WHERE e.live = 1 AND u.id IS NULL") == 0,
        "every live user is still there");
  CHECK(harness_int(db, "SELECT count(*) FROM expect AS e JOIN anonauth_users AS u "
                        "ON u.id = e.user_id WHERE e.live = 0") == 0,
        "no stale user is left");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users") == expected_live + SIGNINS,
        "%lld users remain: the live ones and the %d signed in meanwhile",
        expected_live + SIGNINS, SIGNINS);
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_sessions AS s JOIN expect AS e "
                        "ON e.user_id = s.user_id WHERE e.live = 1") == expected_live,
        "every live user keeps its session");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_sessions WHERE user_id NOT IN "
                        "(SELECT id FROM anonauth_users)") == 0,
        "no session is left without its user");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_accounts") ==
            LIVE_LINKED + LIVE_NORMAL,
        "every account is still there");
  CHECK(harness_int(db, "SELECT count(*) FROM app_rows AS a JOIN expect AS e "
                        "ON e.user_id = a.user_id WHERE e.live = 0") == 0,
        "purge.user_sql removed every stale user's app rows");
  CHECK(harness_int(db, "SELECT count(*) FROM app_rows AS a JOIN expect AS e "
                        "ON e.user_id = a.user_id WHERE e.live = 1") ==
            harness_int(db, "SELECT count(*) + sum(user_id % 3 = 0) FROM expect WHERE live = 1"),
        "every live user's app rows are intact");
  CHECK(harness_int(db, "SELECT sum(json_extract(detail, '$.users')) FROM anonauth_audit "
                        "WHERE event = 'purge'") == total,
        "the purge audit rows add up to %lld users", total);
  CHECK(sqlite3_close(db) == SQLITE_OK, "closes");
  harness_remove(path);
  return check_done();
}
