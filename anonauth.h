/*
** anonauth.h — for programs that link libanonauth.a (make static).
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

#ifdef __cplusplus
extern "C" {
#endif

int sqlite3_anonauth_init(sqlite3 *db, char **pzErrMsg,
                          const struct sqlite3_api_routines *pApi);

#ifdef __cplusplus
}
#endif

#endif /* ANONAUTH_H */
