/*
** anonauth-node.c — one node of a replicated anonauth cluster: a dqlite node
** whose every SQLite connection has anonauth registered.
**
**   anonauth-node --id N --address HOST:PORT --dir DATA_DIR [--latency-ms MS]
**
** The node with id 1 bootstraps a new cluster when its data directory is
** empty; the others join when a client sends the leader an "add" request for
** them (cluster/dqlite_client.py join ID ADDRESS). Clients speak dqlite's wire
** protocol to any node and are sent to the leader, which runs every statement.
**
** Why the static build: dqlite opens its connections through its own
** in-memory VFS, which cannot load extensions (xDlOpen always fails), so
** anonauth is linked in (libanonauth.a, -DSQLITE_CORE) and registered with
** sqlite3_auto_extension(). Order matters: sqlite3_auto_extension() runs
** sqlite3_initialize(), after which sqlite3_config() fails with
** SQLITE_MISUSE, so every sqlite3_config() of the process comes first.
** libdqlite 1.11 itself calls no sqlite3_config() (it only registers its VFS
** and opens connections from dqlite_node_start() on), so the sequence is:
** sqlite3_config() -> sqlite3_auto_extension() -> dqlite_node_create/start.
**
** Replicated mode: dqlite replicates only what a client's exec request
** commits, so a write that an anonauth function commits by itself inside a
** query (a bare `SELECT anon_signin()`) would stay on the leader and be lost
** (src/replicated.c). The node therefore calls anonauth_set_replicated(1):
** writing calls then need the client's BEGIN ... COMMIT and fail with
** `transaction_required` otherwise. --unguarded leaves the mode off; it
** exists only so that the tests can show what the mode prevents.
**
** Prints "anonauth-node <id> ready <address>" on stdout once it listens, and
** stops cleanly on SIGINT or SIGTERM (exit 0).
*/
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dqlite.h>
#include <sqlite3.h>

#include "anonauth.h"

static int verbose;
static int unguarded;
static unsigned long long node_id;

static void usage(void) {
  fprintf(stderr,
          "usage: anonauth-node --id N --address HOST:PORT --dir DATA_DIR "
          "[--latency-ms MS] [--verbose] [--unguarded]\n");
  exit(2);
}

/* SQLite's error log, with the node id, when --verbose is given. */
static void sqlite_log(void *arg, int code, const char *msg) {
  (void)arg;
  if (verbose) fprintf(stderr, "node %llu: sqlite (%d): %s\n", node_id, code, msg);
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out) {
  char *end;
  unsigned long long v;
  if (s == NULL || *s < '0' || *s > '9') return -1;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v == 0 || v > max) return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  const char *address = NULL, *dir = NULL;
  unsigned long long latency_ms = 0;
  dqlite_node *node = NULL;
  sigset_t stop_signals;
  struct stat dir_stat;
  int rc, sig;

  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(arg, "--verbose") == 0 || strcmp(arg, "-v") == 0) {
      verbose = 1;
      continue;
    }
    if (strcmp(arg, "--unguarded") == 0) {
      unguarded = 1;
      continue;
    }
    if (val == NULL) usage();
    i++;
    if (strcmp(arg, "--id") == 0) {
      if (parse_uint(val, 1000000, &node_id) != 0) usage();
    } else if (strcmp(arg, "--address") == 0) {
      address = val;
    } else if (strcmp(arg, "--dir") == 0) {
      dir = val;
    } else if (strcmp(arg, "--latency-ms") == 0) {
      if (parse_uint(val, 3600000, &latency_ms) != 0) usage();
    } else {
      usage();
    }
  }
  if (node_id == 0 || address == NULL || dir == NULL) usage();

  /* 1. Process-wide SQLite configuration: before anything initializes SQLite. */
  rc = sqlite3_config(SQLITE_CONFIG_LOG, sqlite_log, NULL);
  if (rc != SQLITE_OK) {
    fprintf(stderr, "node %llu: sqlite3_config: %s\n", node_id, sqlite3_errstr(rc));
    return 1;
  }
  /* 2. anonauth on every connection opened from now on, dqlite's included,
  ** in replicated mode. */
  anonauth_set_replicated(!unguarded);
  rc = sqlite3_auto_extension((void (*)(void))sqlite3_anonauth_init);
  if (rc != SQLITE_OK) {
    fprintf(stderr, "node %llu: sqlite3_auto_extension: %s\n", node_id, sqlite3_errstr(rc));
    return 1;
  }

  /* Signals are taken synchronously by this thread; dqlite's own thread
  ** (created below, inheriting the mask) never sees them. */
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
  signal(SIGPIPE, SIG_IGN); /* a client that hangs up must not kill the node */

  /* 3. The node. dqlite_node_create() fails without saying why (and without
  ** a node to ask) when the data directory is unusable, so check it first. */
  if (stat(dir, &dir_stat) != 0 || !S_ISDIR(dir_stat.st_mode) || access(dir, W_OK) != 0) {
    fprintf(stderr, "node %llu: data directory %s: %s\n", node_id, dir,
            errno ? strerror(errno) : "not a directory");
    return 1;
  }
  rc = dqlite_node_create(node_id, address, dir, &node);
  if (rc != 0 || node == NULL) {
    fprintf(stderr, "node %llu: create (address %s): %s\n", node_id, address,
            node ? dqlite_node_errmsg(node) : "failed");
    if (node) dqlite_node_destroy(node);
    return 1;
  }
  if (dqlite_node_set_bind_address(node, address) != 0) {
    fprintf(stderr, "node %llu: cannot listen on %s (want HOST:PORT, free): %s\n", node_id,
            address, dqlite_node_errmsg(node));
    dqlite_node_destroy(node);
    return 1;
  }
  if (latency_ms > 0 && dqlite_node_set_network_latency_ms(node, (unsigned)latency_ms) != 0) {
    fprintf(stderr, "node %llu: --latency-ms %llu refused\n", node_id, latency_ms);
    dqlite_node_destroy(node);
    return 1;
  }
  if (dqlite_node_start(node) != 0) {
    fprintf(stderr, "node %llu: start on %s (data in %s): %s\n", node_id, address, dir,
            dqlite_node_errmsg(node));
    dqlite_node_destroy(node);
    return 1;
  }
  printf("anonauth-node %llu ready %s\n", node_id, dqlite_node_get_bind_address(node));
  fflush(stdout);

  do {
    sig = 0;
    if (sigwait(&stop_signals, &sig) != 0) sig = SIGTERM;
  } while (sig != SIGINT && sig != SIGTERM);

  rc = dqlite_node_stop(node);
  dqlite_node_destroy(node);
  sqlite3_reset_auto_extension();
  if (rc != 0) {
    fprintf(stderr, "node %llu: stop: error %d\n", node_id, rc);
    return 1;
  }
  if (verbose) fprintf(stderr, "node %llu: stopped\n", node_id);
  return 0;
}
