/*
** Two processes race to link the same new account to two different
** anonymous users, round after round. With link.on_conflict = 'error'
** exactly one of them owns the account afterwards and the other gets
** account_exists with its own session untouched; with 'merge' and the same
** secret the loser is folded into the winner. Never two owners.
**
** In half of the rounds the parent holds the write lock while the children
** start, so both read "no such account" and hash their secret before either
** can write: the loser must notice under the lock that the account appeared
** in the meantime. In the other half they race freely. Tokens travel over
** pipes and never reach the output.
*/
#include "harness.h"

#include <sys/wait.h>

#define ROUNDS 24
#define TOKEN_LEN 57

enum { RES_LINKED = 'L', RES_EXISTS = 'E', RES_OTHER = 'X' };

static char anon_tokens[2][ROUNDS * 2][TOKEN_LEN + 1];

/* One child: waits for "go", links, reports a result byte and the new token. */
static int child(const char *path, int me, int go_fd, int res_fd) {
  sqlite3 *db = harness_open(path);
  sqlite3_stmt *st = NULL;
  char go;
  if (db == NULL) return 2;
  sqlite3_busy_timeout(db, 30000);
  if (sqlite3_prepare_v2(db, "SELECT link_account(?1, 'password', ?2, ?3)", -1, &st, NULL) !=
      SQLITE_OK)
    return 3;
  for (int r = 0; r < ROUNDS * 2; r++) {
    char account[64], secret[32], out[1 + TOKEN_LEN];
    if (read(go_fd, &go, 1) != 1) return 4;
    snprintf(account, sizeof account, "race-%d@example.com", r);
    /* 'error' rounds: different secrets; 'merge' rounds: the same one. */
    snprintf(secret, sizeof secret, "secret-%d", r < ROUNDS ? me : 0);
    sqlite3_bind_text(st, 1, anon_tokens[me][r], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, account, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, secret, -1, SQLITE_TRANSIENT);
    memset(out, 0, sizeof out);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == TOKEN_LEN) {
      out[0] = RES_LINKED;
      memcpy(out + 1, sqlite3_column_text(st, 0), TOKEN_LEN);
    } else if (strstr(sqlite3_errmsg(db), "anonauth: account_exists:") != NULL) {
      out[0] = RES_EXISTS;
    } else {
      fprintf(stderr, "child %d round %d: %s\n", me, r, sqlite3_errmsg(db));
      out[0] = RES_OTHER;
    }
    sqlite3_reset(st);
    if (write(res_fd, out, sizeof out) != (ssize_t)sizeof out) return 5;
  }
  sqlite3_finalize(st);
  /* This connection ran merges: their prepared statements must not keep
  ** sqlite3_close() (not _v2) from closing it. */
  return sqlite3_close(db) == SQLITE_OK ? 0 : 6;
}

static long long user_of(sqlite3 *db, const char *token) {
  sqlite3_stmt *st = NULL;
  long long uid = -1;
  if (sqlite3_prepare_v2(db, "SELECT session_user(?1)", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, token, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER)
      uid = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  return uid;
}

static long long owner_of(sqlite3 *db, int round) {
  char sql[160];
  snprintf(sql, sizeof sql,
           "SELECT CASE count(*) WHEN 1 THEN max(user_id) ELSE -count(*) END "
           "FROM anonauth_accounts WHERE account_id = 'race-%d@example.com'",
           round);
  return harness_int(db, sql);
}

int main(void) {
  char path[512];
  int go[2][2], res[2][2];
  pid_t pids[2];
  sqlite3 *db;
  long long anon_user[2][ROUNDS * 2];
  int one_winner = 0, loser_ok = 0, winner_ok = 0, merged_ok = 0, others = 0;
  int children_ok = 1;

  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "accounts_race");
  harness_remove(path);

  db = harness_open(path);
  REQUIRE(db != NULL, "opens the database");
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  /* Cheap enough for sanitizers, slow enough (about a millisecond) that
  ** the free-running rounds overlap. */
  REQUIRE(sqlite3_exec(db,
                       "SELECT anonauth_config('password.opslimit', 1),"
                       "       anonauth_config('password.memlimit', 1048576)",
                       NULL, NULL, NULL) == SQLITE_OK,
          "sets a low password cost");
  {
    int signed_in = 0;
    for (int me = 0; me < 2; me++) {
      for (int r = 0; r < ROUNDS * 2; r++) {
        signed_in += harness_text(db, "SELECT anon_signin()", anon_tokens[me][r],
                                  TOKEN_LEN + 1) == SQLITE_OK;
        anon_user[me][r] = user_of(db, anon_tokens[me][r]);
      }
    }
    REQUIRE(signed_in == ROUNDS * 4, "%d anonymous visitors", ROUNDS * 4);
  }

  for (int me = 0; me < 2; me++) {
    if (pipe(go[me]) != 0 || pipe(res[me]) != 0) return 1;
    pids[me] = fork();
    if (pids[me] == 0) {
      close(go[me][1]);
      close(res[me][0]);
      sqlite3_close(db);
      _exit(child(path, me, go[me][0], res[me][1]));
    }
    close(go[me][0]);
    close(res[me][1]);
  }

  for (int r = 0; r < ROUNDS * 2; r++) {
    char out[2][1 + TOKEN_LEN + 1];
    int hold = r % 2 == 0;
    if (r == ROUNDS)
      sqlite3_exec(db,
                   "SELECT anonauth_config('link.on_conflict', 'merge'),"
                   "       anonauth_config('link.merge_without_sql', 'drop')",
                   NULL, NULL, NULL);
    if (hold) sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (int me = 0; me < 2; me++) {
      if (write(go[me][1], "g", 1) != 1) return 1;
    }
    if (hold) {
      usleep(50 * 1000); /* both children read and hash, then wait for the lock */
      sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    for (int me = 0; me < 2; me++) {
      memset(out[me], 0, sizeof out[me]);
      if (read(res[me][0], out[me], 1 + TOKEN_LEN) != 1 + TOKEN_LEN) out[me][0] = RES_OTHER;
    }
    others += (out[0][0] == RES_OTHER) + (out[1][0] == RES_OTHER);

    if (r < ROUNDS) {
      int winner = out[0][0] == RES_LINKED ? 0 : 1, loser = 1 - winner;
      long long owner = owner_of(db, r);
      if (out[winner][0] == RES_LINKED && out[loser][0] == RES_EXISTS) one_winner++;
      /* same user id as before, converted; the loser's session untouched */
      if (owner == anon_user[winner][r] && user_of(db, out[winner] + 1) == owner &&
          harness_valid(db, anon_tokens[winner][r]) == 0)
        winner_ok++;
      if (harness_valid(db, anon_tokens[loser][r]) == 1 &&
          user_of(db, anon_tokens[loser][r]) == anon_user[loser][r])
        loser_ok++;
    } else {
      long long owner = owner_of(db, r);
      if (out[0][0] == RES_LINKED && out[1][0] == RES_LINKED && owner > 0 &&
          user_of(db, out[0] + 1) == owner && user_of(db, out[1] + 1) == owner &&
          (owner == anon_user[0][r] || owner == anon_user[1][r]))
        merged_ok++;
    }
  }
  for (int me = 0; me < 2; me++) {
    int status = 0;
    close(go[me][1]);
    close(res[me][0]);
    waitpid(pids[me], &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) children_ok = 0;
  }

  CHECK(children_ok, "both processes ran every round");
  CHECK(others == 0, "no call failed with another error (%d did)", others);
  CHECK(one_winner == ROUNDS, "on_conflict 'error': exactly one link and one account_exists "
        "in %d of %d rounds", one_winner, ROUNDS);
  CHECK(winner_ok == ROUNDS, "the winner owns the account under its own user id, its old "
        "token dead (%d of %d)", winner_ok, ROUNDS);
  CHECK(loser_ok == ROUNDS, "the loser's anonymous session is untouched (%d of %d)", loser_ok,
        ROUNDS);
  CHECK(merged_ok == ROUNDS, "on_conflict 'merge': both calls end as the one owner (%d of %d)",
        merged_ok, ROUNDS);
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_accounts") == ROUNDS * 2,
        "one account per round");
  CHECK(harness_int(db, "SELECT count(*) FROM (SELECT provider, account_id FROM "
                        "anonauth_accounts GROUP BY 1, 2 HAVING count(DISTINCT user_id) > 1)") ==
            0,
        "never two owners");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users") == ROUNDS * 4 - ROUNDS,
        "each merge deleted exactly one anonymous user");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users u WHERE is_anonymous = 0 AND "
                        "NOT EXISTS (SELECT 1 FROM anonauth_accounts a WHERE a.user_id = u.id)") ==
            0,
        "every converted user holds an account");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_audit WHERE event = 'merge'") == ROUNDS,
        "one merge audited per merge round");
  CHECK(sqlite3_close(db) == SQLITE_OK, "closes");
  harness_remove(path);
  return check_done();
}
