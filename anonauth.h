/*
** anonauth.h — for programs that link libanonauth.a (make static; after
** make install, `pkg-config --static --cflags --libs anonauth`).
**
** anonauth's interface is SQL; C programs only need to register it:
**
**   sqlite3_auto_extension((void (*)(void))sqlite3_anonauth_init);
**
** after which every connection the program opens has the functions. Call it
** after any sqlite3_config() the program (or its database engine) makes.
*/
#ifndef ANONAUTH_H
#define ANONAUTH_H

#include <sqlite3.h>

/* The release, as anonauth_version() reports it in SQL, and as a number
** (major * 1000000 + minor * 1000 + patch) for comparisons in C. The
** Makefile reads ANONAUTH_VERSION from here for anonauth.pc. */
#define ANONAUTH_VERSION        "0.2.0"
#define ANONAUTH_VERSION_NUMBER 2000

#ifdef __cplusplus
extern "C" {
#endif

int sqlite3_anonauth_init(sqlite3 *db, char **pzErrMsg,
                          const struct sqlite3_api_routines *pApi);

/*
** For programs that run anonauth under a replicating engine (dqlite): call
** with 1 before opening connections, and every connection opened afterwards
** refuses writes outside an explicit transaction (transaction_required),
** because the engine replicates only what the client's own COMMIT commits.
** See README, "Running on a cluster".
*/
void anonauth_set_replicated(int on);

#ifdef __cplusplus
}
#endif

#endif /* ANONAUTH_H */
