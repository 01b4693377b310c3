/*
** http.c — the HTTPS transport of CAPTCHA verification, on libcurl.
**
** Only one kind of request exists: a form-encoded POST to a siteverify
** endpoint, whose answer is a small JSON document. Everything here follows
** from running inside somebody else's process, on a database connection:
**   - libcurl's global state is initialised once (pthread_once), because
**     curl_global_init() is not safe to race and the host program may have
**     several connections on several threads;
**   - each connection keeps one easy handle (c->http, freed with the
**     connection through c->http_release), so that consecutive verifications
**     reuse the TLS connection to the provider; SQLite never runs two calls
**     on one connection at once, so the handle needs no lock;
**   - CURLOPT_NOSIGNAL, because the host owns the process's signals;
**   - no redirects, only http and https, TLS peer and host verification
**     always on: the URL was checked when it was configured, and nothing the
**     server answers may take the secret somewhere else;
**   - the answer is capped at AA_HTTP_BODY_MAX (the write callback aborts
**     past it), so a hostile or broken endpoint cannot make us buffer
**     without limit;
**   - curl's own error buffer is never passed on: only the fixed text of
**     curl_easy_strerror() leaves this file.
** The form body lives in a fixed buffer (aa_form) handed to curl without a
** copy (CURLOPT_POSTFIELDS), so the caller can wipe the secret afterwards.
*/
#include "anonauth_int.h"

#include "../anonauth.h" /* ANONAUTH_VERSION, for the User-Agent */

#include <curl/curl.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>

/* ---- form encoding ------------------------------------------------------- */

static void form_put(aa_form *f, const char *p, size_t n) {
  if (f->overflow) return;
  if (n >= sizeof(f->buf) - f->len) {
    f->overflow = 1;
    return;
  }
  memcpy(f->buf + f->len, p, n);
  f->len += n;
  f->buf[f->len] = 0;
}

/* application/x-www-form-urlencoded: unreserved characters as they are,
** everything else as %XX (also spaces, which '+' would encode too). */
static void form_put_encoded(aa_form *f, const char *p, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n && !f->overflow; i++) {
    unsigned char ch = (unsigned char)p[i];
    if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
        ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      form_put(f, (const char *)&ch, 1);
    } else {
      char esc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
      form_put(f, esc, 3);
    }
  }
}

void aa_form_add(aa_form *f, const char *name, const char *value, size_t value_len) {
  if (f->len > 0) form_put(f, "&", 1);
  form_put_encoded(f, name, strlen(name));
  form_put(f, "=", 1);
  form_put_encoded(f, value, value_len);
}

void aa_form_wipe(aa_form *f) {
  sodium_memzero(f->buf, sizeof(f->buf));
  f->len = 0;
  f->overflow = 0;
}

/* ---- the per-connection transport --------------------------------------- */

typedef struct {
  CURL *curl;
  struct curl_slist *headers;
  char body[AA_HTTP_BODY_MAX + 1];
  int body_len;
  int too_large;
} transport;

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static void transport_free(void *p) {
  transport *t = p;
  if (t == NULL) return;
  if (t->curl) curl_easy_cleanup(t->curl);
  curl_slist_free_all(t->headers);
  sqlite3_free(t);
}

static int transport_get(aa_conn *c, transport **out) {
  transport *t = c->http;
  struct curl_slist *h;
  if (t != NULL) {
    *out = t;
    return SQLITE_OK;
  }
  pthread_once(&global_once, global_init);
  if (global_rc != CURLE_OK)
    return aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_UNAVAILABLE, "libcurl failed to initialise (%s)",
                  curl_easy_strerror(global_rc));
  t = sqlite3_malloc(sizeof(*t));
  if (t == NULL) return aa_err_nomem(c);
  memset(t, 0, sizeof(*t));
  t->curl = curl_easy_init();
  /* "Expect:" turns off 100-continue, which would stall bodies over 1 KiB
  ** (long tokens) for a second on servers that do not answer it. */
  t->headers = curl_slist_append(NULL, "Expect:");
  h = t->headers ? curl_slist_append(t->headers, "Accept: application/json") : NULL;
  if (t->curl == NULL || h == NULL) {
    transport_free(t);
    return aa_err_nomem(c);
  }
  c->http = t;
  c->http_release = transport_free;
  *out = t;
  return SQLITE_OK;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg) {
  transport *t = arg;
  size_t n = size * nmemb;
  if (n > (size_t)(AA_HTTP_BODY_MAX - t->body_len)) {
    t->too_large = 1;
    return 0; /* CURLE_WRITE_ERROR: stop reading */
  }
  memcpy(t->body + t->body_len, data, n);
  t->body_len += (int)n;
  return n;
}

#define SET(opt, val)                                                        \
  do {                                                                       \
    if (rc == CURLE_OK) rc = curl_easy_setopt(t->curl, opt, val);            \
  } while (0)

int aa_http_post_form(aa_conn *c, const char *url, const aa_form *form, long timeout_ms,
                      aa_http_reply *r) {
  transport *t = NULL;
  CURLcode rc = CURLE_OK, done;
  int err = transport_get(c, &t);
  memset(r, 0, sizeof(*r));
  if (err != SQLITE_OK || t == NULL) return err != SQLITE_OK ? err : aa_err_nomem(c);
  if (form->overflow)
    return aa_err(c, SQLITE_ERROR, AA_E_INTERNAL, "siteverify request does not fit");
  if (timeout_ms < 1) timeout_ms = 1;

  /* A reset keeps the handle's open connections, DNS and TLS session cache. */
  curl_easy_reset(t->curl);
  t->body_len = 0;
  t->too_large = 0;
  t->body[0] = 0;
  SET(CURLOPT_URL, url);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
  SET(CURLOPT_FOLLOWLOCATION, 0L);
  SET(CURLOPT_MAXREDIRS, 0L);
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  SET(CURLOPT_TIMEOUT_MS, timeout_ms);
  SET(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)AA_HTTP_BODY_MAX);
  SET(CURLOPT_USERAGENT, "anonauth/" ANONAUTH_VERSION);
  SET(CURLOPT_HTTPHEADER, t->headers);
  SET(CURLOPT_POST, 1L);
  SET(CURLOPT_POSTFIELDS, form->buf); /* not copied: the caller wipes it */
  SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)form->len);
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_WRITEDATA, t);
  /* http:// is only allowed to a loopback address (aa_url_problem in netaddr.c): never send
  ** that through a proxy from the environment. */
  if (strncmp(url, "http://", 7) == 0) SET(CURLOPT_NOPROXY, "*");
  if (rc != CURLE_OK) {
    curl_easy_reset(t->curl);
    if (rc == CURLE_OUT_OF_MEMORY) return aa_err_nomem(c);
    return aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_UNAVAILABLE,
                  "this libcurl cannot make the request (%s)", curl_easy_strerror(rc));
  }

  done = curl_easy_perform(t->curl);
  /* Drop curl's pointer to the caller's buffer before it is wiped. */
  curl_easy_setopt(t->curl, CURLOPT_POSTFIELDS, NULL);
  t->body[t->body_len] = 0;

  if (done == CURLE_OK) {
    r->outcome = AA_HTTP_ANSWERED;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &r->status);
    r->body = t->body;
    r->body_len = t->body_len;
    return SQLITE_OK;
  }
  r->error = curl_easy_strerror(done);
  if (done == CURLE_OUT_OF_MEMORY) return aa_err_nomem(c);
  if (t->too_large || done == CURLE_FILESIZE_EXCEEDED) {
    r->outcome = AA_HTTP_TOO_LARGE;
  } else if (done == CURLE_OPERATION_TIMEDOUT) {
    r->outcome = AA_HTTP_TIMED_OUT;
  } else {
    r->outcome = AA_HTTP_UNREACHABLE;
  }
  return SQLITE_OK;
}
