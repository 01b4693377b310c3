/*
** fake_provider.c — a real HTTP server on 127.0.0.1 that answers siteverify
** requests the way Cloudflare Turnstile and hCaptcha document, plus the
** ways a provider or the network can misbehave. The test suites start it
** (tests/fake_provider.sh) and point captcha.url at it; `make fake-provider`
** builds it as a tool for apps' own tests (build/fake-provider; its manual is
** docs/fake-provider.md, and `build/fake-provider --help`).
**
**   fake-provider [--port N] [--tls-port N] [--port-file FILE] [--log FILE]
**                 [--exit-with-parent] [--quiet]
**   fake_provider PORTFILE LOGFILE     (the suites' form: --port-file PORTFILE
**                                       --log LOGFILE --exit-with-parent --quiet)
**
** It runs in the foreground until SIGTERM or SIGINT (then exits 0) or, with
** --exit-with-parent, until its parent goes away (checked every second).
** It binds two ports on 127.0.0.1 (0: a free one), writes "PORT TLSPORT" to
** the port file, and serves HTTP/1.1 with keep-alive, one thread per
** connection: plain HTTP on PORT, and on TLSPORT the same behind TLS with a
** self-signed certificate made at startup, which a client that verifies
** certificates must refuse. Each request appends one line to the log (if
** one is given): the path, the connection's sequence number (to see
** keep-alive reuse), the names of the form fields, the idempotency key,
** remoteip, sitekey and the response's length — never the secret or the
** response itself.
**
** The path picks the behaviour. Leading segments modify, then comes the
** endpoint or a canned answer:
**   /turnstile/v0/siteverify   Turnstile: test secrets 1x…AA (pass),
**                              2x…AA (invalid-input-response), 3x…AA
**                              (timeout-or-duplicate), and the live secret
**                              below; 400 for secret errors
**   /hcaptcha/siteverify       hCaptcha: test secret 0x000… with response
**                              10000000-aaaa-bbbb-cccc-000000000001, and the
**                              live secret; form fields other than secret,
**                              response, remoteip, sitekey are a bad-request
**   modifiers: /flaky (first request per token: HTTP 500), /lost (the first
**   request per token is processed, but its answer is replaced by HTTP 500),
**   /internal (first request per token: internal-error), /always500,
**   /slow-<ms>, /host=<h> and /action=<a> (what a passing answer reports)
**   canned: /garbage /html /huge /huge-chunked /padded /truncated
**   /duplicate-success /escaped-duplicate /success-string /success-number
**   /no-success /codes-not-array /array /empty /redirect /status400-html
**   /status404-success /deep /nul /bad-utf8 /trailing /two-objects /odd-codes
**   /null-fields /long-hostname /hostname-number /action-number
**
** Live secrets (single-use tokens, as the real services): tokens "pass-…"
** pass once, then get timeout-or-duplicate (Turnstile) or
** already-seen-response (hCaptcha) — unless a Turnstile retry carries the
** idempotency key of the first request, which replays its verdict; tokens
** "ip=<addr>;…" pass when remoteip is <addr>; tokens "internal-…" always get
** internal-error; anything else is invalid-input-response.
*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define LIVE_TURNSTILE "0x4AAAAAAAfakeLiveTurnstileSecret"
#define LIVE_HCAPTCHA "0xFAKEliveHCaptchaSecret0000000000000000"
#define LIVE_HCAPTCHA_SITEKEY "fake-live-sitekey"
#define TEST_PASS "1x0000000000000000000000000000000AA"
#define TEST_FAIL "2x0000000000000000000000000000000AA"
#define TEST_DUP "3x0000000000000000000000000000000AA"
#define HC_TEST_SECRET "0x0000000000000000000000000000000000000000"
#define HC_TEST_SITEKEY "10000000-ffff-ffff-ffff-000000000001"
#define HC_TEST_RESPONSE "10000000-aaaa-bbbb-cccc-000000000001"

#define MAX_HEAD 16384
#define MAX_BODY 65536
#define MAX_ENTRIES 8192
#define MAX_FIELDS 16

static int g_port;
static FILE *g_log;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

/* What the server remembers about a response token. */
typedef struct {
  char token[2100];
  int seen;     /* requests that carried it */
  int consumed; /* a live token that passed once */
  char idem[64];
  char verdict[1024]; /* the answer the consuming request produced */
} entry;

static entry *g_entries;
static int g_n_entries;

/* Returns the token's entry (created on first sight) with g_mu held. */
static entry *entry_for(const char *token) {
  for (int i = 0; i < g_n_entries; i++) {
    if (strcmp(g_entries[i].token, token) == 0) return &g_entries[i];
  }
  if (g_n_entries == MAX_ENTRIES) return &g_entries[MAX_ENTRIES - 1];
  entry *e = &g_entries[g_n_entries++];
  memset(e, 0, sizeof(*e));
  snprintf(e->token, sizeof(e->token), "%s", token);
  return e;
}

/* ---- form fields ------------------------------------------------------------ */

typedef struct {
  char name[64];
  char *value; /* decoded, malloc'd */
  size_t len;
} field;

typedef struct {
  field f[MAX_FIELDS];
  int n;
  int duplicate;
  int malformed;
} form;

static int hexv(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static size_t url_decode(const char *s, size_t n, char *out, int *bad) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '+') {
      out[o++] = ' ';
    } else if (s[i] == '%') {
      int h = i + 2 < n ? hexv(s[i + 1]) : -1, l = i + 2 < n ? hexv(s[i + 2]) : -1;
      if (h < 0 || l < 0) {
        *bad = 1;
        return o;
      }
      out[o++] = (char)(h * 16 + l);
      i += 2;
    } else {
      out[o++] = s[i];
    }
  }
  out[o] = 0;
  return o;
}

static void form_parse(const char *body, size_t len, form *fm) {
  size_t i = 0;
  memset(fm, 0, sizeof(*fm));
  while (i < len) {
    size_t end = i, eq;
    while (end < len && body[end] != '&') end++;
    eq = i;
    while (eq < end && body[eq] != '=') eq++;
    if (eq == end || fm->n == MAX_FIELDS || eq - i >= sizeof(fm->f[0].name)) {
      fm->malformed = 1;
      return;
    }
    field *f = &fm->f[fm->n];
    url_decode(body + i, eq - i, f->name, &fm->malformed);
    f->value = malloc(end - eq);
    f->len = url_decode(body + eq + 1, end - eq - 1, f->value, &fm->malformed);
    for (int k = 0; k < fm->n; k++) {
      if (strcmp(fm->f[k].name, f->name) == 0) fm->duplicate = 1;
    }
    fm->n++;
    i = end + 1;
  }
}

static void form_free(form *fm) {
  for (int i = 0; i < fm->n; i++) free(fm->f[i].value);
}

static const char *form_get(const form *fm, const char *name) {
  for (int i = 0; i < fm->n; i++) {
    if (strcmp(fm->f[i].name, name) == 0) return fm->f[i].value;
  }
  return NULL;
}

static int uuid_ok(const char *s) {
  if (strlen(s) != 36) return 0;
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return 0;
    } else if (hexv(s[i]) < 0) {
      return 0;
    }
  }
  return 1;
}

/* ---- responses ---------------------------------------------------------------- */

/* A client connection: plain, or TLS on the second port. */
typedef struct {
  int sock;
  SSL *ssl;
} io;

static void send_all(io *fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = fd->ssl ? SSL_write(fd->ssl, p, (int)n) : send(fd->sock, p, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

static ssize_t io_recv(io *fd, char *p, size_t n) {
  if (fd->ssl) return SSL_read(fd->ssl, p, (int)n);
  return recv(fd->sock, p, n, 0);
}

static void respond(io *fd, int status, const char *ctype, const char *body, size_t len,
                    const char *extra) {
  char head[512];
  const char *reason = status == 200 ? "OK" : status == 302 ? "Found" : status == 400 ? "Bad Request"
                       : status == 404 ? "Not Found" : status == 405 ? "Method Not Allowed"
                                                     : "Internal Server Error";
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                   "Connection: keep-alive\r\n\r\n",
                   status, reason, ctype, len, extra ? extra : "");
  send_all(fd, head, (size_t)n);
  send_all(fd, body, len);
}

static void respond_json(io *fd, int status, const char *json) {
  respond(fd, status, "application/json", json, strlen(json), NULL);
}

static void verdict_fail(char *out, size_t cap, const char *code) {
  snprintf(out, cap, "{\"success\":false,\"error-codes\":[\"%s\"],\"messages\":[]}", code);
}

static void verdict_pass(char *out, size_t cap, int turnstile, const char *host,
                         const char *action) {
  if (turnstile)
    snprintf(out, cap,
             "{\"success\":true,\"challenge_ts\":\"2024-05-01T12:00:00.000Z\",\"hostname\":\"%s\","
             "\"error-codes\":[],\"action\":\"%s\",\"cdata\":\"\",\"metadata\":"
             "{\"ephemeral_id\":\"x:0123\"}}",
             host ? host : "example.com", action ? action : "");
  else
    snprintf(out, cap,
             "{\"success\":true,\"challenge_ts\":\"2024-05-01T12:00:00Z\",\"hostname\":\"%s\","
             "\"credit\":false}",
             host ? host : "dummy-key-pass");
}

/* ---- the two providers ------------------------------------------------------- */

typedef struct {
  int flaky, lost, internal;
  const char *host, *action;
} mods;

/* Computes the answer for a form post. Returns the HTTP status. */
static int provider_answer(int turnstile, const form *fm, const mods *m, char *out, size_t cap) {
  static const char *const t_fields[] = {"secret", "response", "remoteip", "idempotency_key", NULL};
  static const char *const h_fields[] = {"secret", "response", "remoteip", "sitekey", NULL};
  const char *const *allowed = turnstile ? t_fields : h_fields;
  const char *secret = form_get(fm, "secret");
  const char *response = form_get(fm, "response");
  const char *remoteip = form_get(fm, "remoteip");
  const char *idem = form_get(fm, "idempotency_key");
  const char *sitekey = form_get(fm, "sitekey");
  int live;

  if (fm->malformed || fm->duplicate) {
    verdict_fail(out, cap, "bad-request");
    return 400;
  }
  for (int i = 0; i < fm->n; i++) {
    int ok = 0;
    for (int k = 0; allowed[k]; k++) ok |= strcmp(fm->f[i].name, allowed[k]) == 0;
    if (!ok) {
      verdict_fail(out, cap, "bad-request");
      return 400;
    }
  }
  if (secret == NULL || secret[0] == 0) {
    verdict_fail(out, cap, "missing-input-secret");
    return turnstile ? 400 : 200;
  }
  if (turnstile) {
    live = strcmp(secret, LIVE_TURNSTILE) == 0;
    if (!live && strcmp(secret, TEST_PASS) && strcmp(secret, TEST_FAIL) && strcmp(secret, TEST_DUP)) {
      verdict_fail(out, cap, "invalid-input-secret");
      return 400;
    }
    if (idem && !uuid_ok(idem)) {
      verdict_fail(out, cap, "bad-request");
      return 400;
    }
  } else {
    live = strcmp(secret, LIVE_HCAPTCHA) == 0;
    if (!live && strcmp(secret, HC_TEST_SECRET)) {
      verdict_fail(out, cap, "invalid-input-secret");
      return 200;
    }
    if (sitekey && strcmp(sitekey, live ? LIVE_HCAPTCHA_SITEKEY : HC_TEST_SITEKEY)) {
      verdict_fail(out, cap, "sitekey-secret-mismatch");
      return 200;
    }
  }
  if (response == NULL || response[0] == 0) {
    verdict_fail(out, cap, "missing-input-response");
    return 200;
  }
  if (strlen(response) > 2048) {
    verdict_fail(out, cap, "invalid-input-response");
    return 200;
  }

  pthread_mutex_lock(&g_mu);
  entry *e = entry_for(response);
  int first = e->seen++ == 0;
  int status = 200;
  if (m->flaky && first) {
    snprintf(out, cap, "upstream trouble");
    pthread_mutex_unlock(&g_mu);
    return 500;
  }
  if (m->internal && first) {
    verdict_fail(out, cap, "internal-error");
    pthread_mutex_unlock(&g_mu);
    return 200;
  }
  if (!live) {
    if (!turnstile) {
      if (strcmp(response, HC_TEST_RESPONSE) == 0)
        verdict_pass(out, cap, 0, m->host, NULL);
      else
        verdict_fail(out, cap, "invalid-input-response");
    } else if (strcmp(secret, TEST_PASS) == 0)
      verdict_pass(out, cap, 1, m->host, m->action);
    else
      verdict_fail(out, cap, strcmp(secret, TEST_FAIL) == 0 ? "invalid-input-response"
                                                            : "timeout-or-duplicate");
  } else if (strncmp(response, "pass-", 5) == 0) {
    if (!e->consumed) {
      e->consumed = 1;
      snprintf(e->idem, sizeof e->idem, "%s", idem ? idem : "");
      verdict_pass(out, cap, turnstile, m->host, m->action);
      snprintf(e->verdict, sizeof e->verdict, "%s", out);
    } else if (turnstile && idem && e->idem[0] && strcmp(idem, e->idem) == 0) {
      snprintf(out, cap, "%s", e->verdict); /* an idempotent retry */
    } else {
      verdict_fail(out, cap, turnstile ? "timeout-or-duplicate" : "already-seen-response");
    }
  } else if (strncmp(response, "ip=", 3) == 0) {
    const char *semi = strchr(response, ';');
    size_t n = semi ? (size_t)(semi - response - 3) : strlen(response + 3);
    if (remoteip && strlen(remoteip) == n && strncmp(remoteip, response + 3, n) == 0)
      verdict_pass(out, cap, turnstile, m->host, m->action);
    else
      verdict_fail(out, cap, "invalid-input-response");
  } else if (strncmp(response, "internal-", 9) == 0) {
    verdict_fail(out, cap, "internal-error");
  } else {
    verdict_fail(out, cap, "invalid-input-response");
  }
  if (m->lost && first) {
    snprintf(out, cap, "gateway lost the answer");
    status = 500;
  }
  pthread_mutex_unlock(&g_mu);
  return status;
}

/* ---- canned answers ------------------------------------------------------------ */

static void big_json(io *fd, size_t pad, int chunked) {
  const char *head = "{\"success\":true,\"error-codes\":[],\"pad\":\"";
  const char *tail = "\"}";
  size_t total = strlen(head) + pad + strlen(tail);
  char *buf = malloc(total + 1);
  memcpy(buf, head, strlen(head));
  memset(buf + strlen(head), 'a', pad);
  memcpy(buf + strlen(head) + pad, tail, strlen(tail) + 1);
  if (!chunked) {
    respond(fd, 200, "application/json", buf, total, NULL);
  } else {
    char line[64];
    const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n";
    send_all(fd, h, strlen(h));
    for (size_t off = 0; off < total; off += 8192) {
      size_t n = total - off < 8192 ? total - off : 8192;
      int k = snprintf(line, sizeof line, "%zx\r\n", n);
      send_all(fd, line, (size_t)k);
      send_all(fd, buf + off, n);
      send_all(fd, "\r\n", 2);
    }
    send_all(fd, "0\r\n\r\n", 5);
  }
  free(buf);
}

static int canned(io *fd, const char *name) {
  if (strcmp(name, "garbage") == 0) {
    static const char g[] = "\x01\xff\xfe<<definitely not json>>\x7f";
    respond(fd, 200, "application/json", g, sizeof(g) - 1, NULL);
  } else if (strcmp(name, "html") == 0) {
    respond(fd, 200, "text/html", "<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", 58,
            NULL);
  } else if (strcmp(name, "huge") == 0) {
    big_json(fd, 1 << 20, 0);
  } else if (strcmp(name, "huge-chunked") == 0) {
    big_json(fd, 1 << 20, 1);
  } else if (strcmp(name, "padded") == 0) {
    big_json(fd, 60000, 1); /* under the 64 KiB cap: a valid yes */
  } else if (strcmp(name, "truncated") == 0) {
    respond_json(fd, 200, "{\"success\":true,\"error-codes\":[");
  } else if (strcmp(name, "duplicate-success") == 0) {
    respond_json(fd, 200, "{\"success\":false,\"error-codes\":[\"invalid-input-response\"],\"success\":true}");
  } else if (strcmp(name, "escaped-duplicate") == 0) {
    respond_json(fd, 200, "{\"success\":false,\"succes\\u0073\":true}");
  } else if (strcmp(name, "success-string") == 0) {
    respond_json(fd, 200, "{\"success\":\"true\",\"error-codes\":[]}");
  } else if (strcmp(name, "success-number") == 0) {
    respond_json(fd, 200, "{\"success\":1,\"error-codes\":[]}");
  } else if (strcmp(name, "no-success") == 0) {
    respond_json(fd, 200, "{\"error-codes\":[],\"hostname\":\"example.com\"}");
  } else if (strcmp(name, "codes-not-array") == 0) {
    respond_json(fd, 200, "{\"success\":false,\"error-codes\":\"invalid-input-response\"}");
  } else if (strcmp(name, "array") == 0) {
    respond_json(fd, 200, "[{\"success\":true}]");
  } else if (strcmp(name, "empty") == 0) {
    respond_json(fd, 200, "");
  } else if (strcmp(name, "redirect") == 0) {
    char loc[128];
    snprintf(loc, sizeof loc, "Location: http://127.0.0.1:%d/turnstile/v0/siteverify\r\n", g_port);
    respond(fd, 302, "application/json", "{\"success\":true}", 16, loc);
  } else if (strcmp(name, "status400-html") == 0) {
    respond(fd, 400, "text/html", "<html>bad</html>", 16, NULL);
  } else if (strcmp(name, "status404-success") == 0) {
    respond_json(fd, 404, "{\"success\":true,\"error-codes\":[]}");
  } else if (strcmp(name, "deep") == 0) {
    char d[512];
    int n = snprintf(d, sizeof d, "{\"success\":true,\"x\":");
    for (int i = 0; i < 100; i++) d[n++] = '[';
    for (int i = 0; i < 100; i++) d[n++] = ']';
    d[n++] = '}';
    respond(fd, 200, "application/json", d, (size_t)n, NULL);
  } else if (strcmp(name, "nul") == 0) {
    static const char z[] = "{\"success\":true}\0{\"success\":false}";
    respond(fd, 200, "application/json", z, sizeof(z) - 1, NULL);
  } else if (strcmp(name, "bad-utf8") == 0) {
    respond_json(fd, 200, "{\"success\":true,\"hostname\":\"ex\xff\xfe.com\"}");
  } else if (strcmp(name, "trailing") == 0) {
    respond_json(fd, 200, "{\"success\":true} x");
  } else if (strcmp(name, "two-objects") == 0) {
    respond_json(fd, 200, "{\"success\":false}{\"success\":true}");
  } else if (strcmp(name, "odd-codes") == 0) {
    char d[1024];
    int n = snprintf(d, sizeof d, "{\"success\":false,\"error-codes\":[\"bad code!\",\"");
    for (int i = 0; i < 300; i++) d[n++] = 'x'; /* longer than a code may be */
    snprintf(d + n, sizeof d - (size_t)n,
             "\",\"c1\",\"c2\",\"c3\",\"c4\",\"c5\",\"c6\",\"c7\",\"c8\",\"c9\"]}");
    respond_json(fd, 200, d);
  } else if (strcmp(name, "null-fields") == 0) {
    respond_json(fd, 200, "{\"success\":true,\"error-codes\":[],\"hostname\":null,\"action\":null}");
  } else if (strcmp(name, "long-hostname") == 0) {
    char d[512];
    int n = snprintf(d, sizeof d, "{\"success\":true,\"hostname\":\"");
    for (int i = 0; i < 300; i++) d[n++] = 'h';
    snprintf(d + n, sizeof d - (size_t)n, ".example.com\"}");
    respond_json(fd, 200, d);
  } else if (strcmp(name, "hostname-number") == 0) {
    respond_json(fd, 200, "{\"success\":true,\"hostname\":5}");
  } else if (strcmp(name, "action-number") == 0) {
    respond_json(fd, 200, "{\"success\":true,\"action\":5}");
  } else {
    return 0;
  }
  return 1;
}

/* ---- one connection ------------------------------------------------------------ */

static void log_request(int conn_id, const char *method, const char *path, const form *fm) {
  const char *idem = form_get(fm, "idempotency_key");
  const char *ip = form_get(fm, "remoteip");
  const char *sk = form_get(fm, "sitekey");
  const char *resp = form_get(fm, "response");
  char names[256] = "";
  for (int i = 0; i < fm->n; i++) {
    if (i) strncat(names, ",", sizeof names - strlen(names) - 1);
    strncat(names, fm->f[i].name, sizeof names - strlen(names) - 1);
  }
  if (g_log == NULL) return;
  pthread_mutex_lock(&g_mu);
  fprintf(g_log, "%s %s conn=%d fields=%s idem=%s remoteip=%s sitekey=%s response_len=%zu\n",
          method, path, conn_id, names[0] ? names : "-", idem ? idem : "-", ip ? ip : "-",
          sk ? sk : "-", resp ? strlen(resp) : (size_t)0);
  fflush(g_log);
  pthread_mutex_unlock(&g_mu);
}

static void handle(io *fd, int conn_id, const char *method, char *path, const char *ctype, const char *body,
                   size_t body_len) {
  form fm;
  mods m = {0, 0, 0, NULL, NULL};
  char out[1024];
  char *seg, *save = NULL;
  int kind = 0, always500 = 0;
  long slow = 0;
  const char *special = NULL;

  form_parse(body, body_len, &fm);
  log_request(conn_id, method, path, &fm);
  for (seg = strtok_r(path, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
    if (strcmp(seg, "flaky") == 0) m.flaky = 1;
    else if (strcmp(seg, "lost") == 0) m.lost = 1;
    else if (strcmp(seg, "internal") == 0) m.internal = 1;
    else if (strcmp(seg, "always500") == 0) always500 = 1;
    else if (strncmp(seg, "slow-", 5) == 0) slow = atol(seg + 5);
    else if (strncmp(seg, "host=", 5) == 0) m.host = seg + 5;
    else if (strncmp(seg, "action=", 7) == 0) m.action = seg + 7;
    else if (strcmp(seg, "turnstile") == 0) { kind = 1; break; }
    else if (strcmp(seg, "hcaptcha") == 0) { kind = 2; break; }
    else { special = seg; break; }
  }
  if (slow > 0) {
    struct timespec ts = {slow / 1000, (slow % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  if (always500) {
    respond(fd, 500, "text/plain", "upstream down", 13, NULL);
  } else if (special && canned(fd, special)) {
    /* answered */
  } else if (kind == 0) {
    respond(fd, 404, "text/plain", "no such endpoint", 16, NULL);
  } else if (strcmp(method, "POST") != 0) {
    respond(fd, 405, "text/plain", "POST only", 9, "Allow: POST\r\n");
  } else if (ctype == NULL || strncmp(ctype, "application/x-www-form-urlencoded", 33) != 0) {
    verdict_fail(out, sizeof out, "bad-request");
    respond_json(fd, 400, out);
  } else {
    int status = provider_answer(kind == 1, &fm, &m, out, sizeof out);
    respond(fd, status, status == 500 ? "text/plain" : "application/json", out, strlen(out), NULL);
  }
  form_free(&fm);
}

static const char *header(char *head, const char *name) {
  size_t n = strlen(name);
  for (char *line = strstr(head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
    char *p = line + 2;
    if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
      p += n + 1;
      while (*p == ' ') p++;
      return p;
    }
  }
  return NULL;
}

static int g_conn_seq;
static SSL_CTX *g_tls;

/* A throwaway self-signed certificate for 127.0.0.1: no client trusts it,
** which is the point of the TLS port (verification must refuse it). */
static SSL_CTX *make_tls(void) {
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  X509_NAME *name;
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (key == NULL || x == NULL || ctx == NULL) return NULL;
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, key);
  name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1,
                             -1, 0);
  X509_set_issuer_name(x, name);
  if (!X509_sign(x, key, EVP_sha256()) || SSL_CTX_use_certificate(ctx, x) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, key) != 1)
    return NULL;
  X509_free(x);
  EVP_PKEY_free(key);
  return ctx;
}

typedef struct {
  int sock;
  int tls;
} accepted;

/* The open client connections, so that a stop can end them (a keep-alive
** client would otherwise hold its thread in recv) and wait for their threads. */
#define MAX_CONNS 1024
static int g_conns[MAX_CONNS];
static int g_n_conns;
static pthread_cond_t g_conns_done = PTHREAD_COND_INITIALIZER;

static int conn_track(int sock) {
  int ok;
  pthread_mutex_lock(&g_mu);
  ok = g_n_conns < MAX_CONNS;
  if (ok) g_conns[g_n_conns++] = sock;
  pthread_mutex_unlock(&g_mu);
  return ok;
}

static void conn_forget(int sock) {
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < g_n_conns; i++) {
    if (g_conns[i] == sock) {
      g_conns[i] = g_conns[--g_n_conns];
      break;
    }
  }
  if (g_n_conns == 0) pthread_cond_broadcast(&g_conns_done);
  pthread_mutex_unlock(&g_mu);
}

/* Ends every client connection and waits (at most 2 s: a /slow-<ms> answer
** may be sleeping) until their threads have let go of them. */
static void conns_close_all(void) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 2;
  pthread_mutex_lock(&g_mu);
  for (int i = 0; i < g_n_conns; i++) shutdown(g_conns[i], SHUT_RDWR);
  while (g_n_conns > 0 && pthread_cond_timedwait(&g_conns_done, &g_mu, &until) == 0) {
  }
  pthread_mutex_unlock(&g_mu);
}

static void *serve(void *arg) {
  accepted a = *(accepted *)arg;
  io conn = {a.sock, NULL};
  io *fd = &conn;
  int conn_id;
  char *buf = malloc(MAX_HEAD + MAX_BODY + 1);
  size_t have = 0;
  free(arg);
  pthread_mutex_lock(&g_mu);
  conn_id = ++g_conn_seq;
  pthread_mutex_unlock(&g_mu);
  if (a.tls) {
    conn.ssl = SSL_new(g_tls);
    SSL_set_fd(conn.ssl, a.sock);
    if (SSL_accept(conn.ssl) != 1) goto out; /* the client refused the certificate */
  }
  for (;;) {
    char *end;
    while ((end = memmem(buf, have, "\r\n\r\n", 4)) == NULL) {
      ssize_t r;
      if (have >= MAX_HEAD) goto out;
      r = io_recv(fd, buf + have, MAX_HEAD + MAX_BODY - have);
      if (r <= 0) goto out;
      have += (size_t)r;
    }
    size_t head_len = (size_t)(end - buf) + 4;
    char head[MAX_HEAD + 1];
    memcpy(head, buf, head_len);
    head[head_len] = 0;
    const char *cl = header(head, "Content-Length");
    const char *ct = header(head, "Content-Type");
    const char *conn_hdr = header(head, "Connection");
    size_t body_len = cl ? (size_t)strtoul(cl, NULL, 10) : 0;
    int close_after = conn_hdr && strncasecmp(conn_hdr, "close", 5) == 0;
    char ctype[128] = "";
    if (ct) {
      size_t k = strcspn(ct, "\r\n");
      snprintf(ctype, sizeof ctype, "%.*s", (int)(k < sizeof ctype ? k : sizeof ctype - 1), ct);
    }
    if (body_len > MAX_BODY) goto out;
    while (have < head_len + body_len) {
      ssize_t r = io_recv(fd, buf + have, MAX_HEAD + MAX_BODY - have);
      if (r <= 0) goto out;
      have += (size_t)r;
    }
    char method[16] = "", path[1024] = "";
    if (sscanf(head, "%15s %1023s", method, path) != 2) goto out;
    handle(fd, conn_id, method, path, ct ? ctype : NULL, buf + head_len, body_len);
    memmove(buf, buf + head_len + body_len, have - head_len - body_len);
    have -= head_len + body_len;
    if (close_after) break;
  }
out:
  if (conn.ssl) SSL_free(conn.ssl);
  free(buf);
  conn_forget(a.sock);
  close(a.sock);
  return NULL;
}

/* Listens on 127.0.0.1:*port (0: a free port, chosen by the kernel, written
** back to *port). Returns the socket, or -1 with the reason on stderr. */
static int listen_loopback(int *port, const char *what) {
  struct sockaddr_in addr;
  socklen_t alen = sizeof addr;
  int one = 1;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) {
    perror("fake-provider: socket");
    return -1;
  }
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons((unsigned short)*port);
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 64) != 0 ||
      getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) {
    fprintf(stderr, "fake-provider: cannot listen on 127.0.0.1:%d (%s): %s\n", *port, what,
            strerror(errno));
    close(lfd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return lfd;
}

static void usage(FILE *to) {
  fprintf(to,
          "usage: fake-provider [--port N] [--tls-port N] [--port-file FILE] [--log FILE]\n"
          "                     [--exit-with-parent] [--quiet]\n"
          "\n"
          "A stand-in for Cloudflare Turnstile's and hCaptcha's siteverify endpoints on\n"
          "127.0.0.1, for tests. Runs in the foreground; SIGTERM or SIGINT stops it (exit 0).\n"
          "\n"
          "  --port N            plain HTTP port (default 0: any free port)\n"
          "  --tls-port N        HTTPS port, self-signed certificate that clients must\n"
          "                      refuse (default 0: any free port)\n"
          "  --port-file FILE    write \"PORT TLSPORT\" to FILE once listening\n"
          "  --log FILE          append one line per request (never secrets or tokens);\n"
          "                      '-' is stderr\n"
          "  --exit-with-parent  also exit (0) when the parent process goes away\n"
          "  --quiet             do not print the endpoints on stdout\n"
          "  --help              this text\n"
          "\n"
          "Endpoints: /turnstile/v0/siteverify, /hcaptcha/siteverify (form POSTs).\n"
          "Turnstile's test secrets 1x0000000000000000000000000000000AA (passes),\n"
          "2x…AA (fails), 3x…AA (timeout-or-duplicate); hCaptcha's test secret\n"
          "0x0000000000000000000000000000000000000000 with the response\n"
          "10000000-aaaa-bbbb-cccc-000000000001. Secrets, tokens, path modifiers and\n"
          "canned answers: docs/fake-provider.md.\n"
          "\n"
          "Point anonauth at it:\n"
          "  SELECT anonauth_config('captcha.url', 'http://127.0.0.1:PORT/turnstile/v0/siteverify');\n");
}

/* A port number from the command line: 0 to 65535, digits only. */
static int parse_port(const char *arg, int *port) {
  char *end;
  long v;
  if (arg == NULL || arg[0] < '0' || arg[0] > '9') return 0;
  errno = 0;
  v = strtol(arg, &end, 10);
  if (errno != 0 || *end != 0 || v < 0 || v > 65535) return 0;
  *port = (int)v;
  return 1;
}

static volatile sig_atomic_t g_stop;

static void on_stop(int sig) {
  (void)sig;
  g_stop = 1;
}

int main(int argc, char **argv) {
  const char *port_file = NULL, *log_file = NULL;
  int lfd[2], tls_port = 0, exit_with_parent = 0, quiet = 0;
  pid_t parent = getppid();
  sigset_t stop_signals, wait_mask;
  struct sigaction sa;

  if (argc == 3 && argv[1][0] != '-' && argv[2][0] != '-') {
    /* The suites' form: fake_provider PORTFILE LOGFILE. */
    port_file = argv[1];
    log_file = argv[2];
    exit_with_parent = quiet = 1;
  } else {
    for (int i = 1; i < argc; i++) {
      const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
      if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
        usage(stdout);
        return 0;
      } else if (strcmp(a, "--port") == 0 && parse_port(v, &g_port)) {
        i++;
      } else if (strcmp(a, "--tls-port") == 0 && parse_port(v, &tls_port)) {
        i++;
      } else if (strcmp(a, "--port-file") == 0 && v != NULL) {
        port_file = argv[++i];
      } else if (strcmp(a, "--log") == 0 && v != NULL) {
        log_file = argv[++i];
      } else if (strcmp(a, "--exit-with-parent") == 0) {
        exit_with_parent = 1;
      } else if (strcmp(a, "--quiet") == 0) {
        quiet = 1;
      } else {
        int takes_value = strcmp(a, "--port") == 0 || strcmp(a, "--tls-port") == 0 ||
                          strcmp(a, "--port-file") == 0 || strcmp(a, "--log") == 0;
        if (takes_value)
          fprintf(stderr, "fake-provider: %s needs a value%s\n", a,
                  strstr(a, "port") && strstr(a, "file") == NULL ? ", a port from 0 to 65535" : "");
        else
          fprintf(stderr, "fake-provider: unknown argument '%s'\n", a);
        usage(stderr);
        return 2;
      }
    }
  }

  /* SIGTERM and SIGINT are blocked everywhere but in the main thread's
  ** ppoll, so the stop is seen there and nowhere else (the connection
  ** threads inherit the blocked mask). */
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, &wait_mask);
  sigdelset(&wait_mask, SIGTERM);
  sigdelset(&wait_mask, SIGINT);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  g_entries = calloc(MAX_ENTRIES, sizeof(entry));
  if (log_file != NULL) {
    g_log = strcmp(log_file, "-") == 0 ? stderr : fopen(log_file, "a");
    if (g_log == NULL) {
      fprintf(stderr, "fake-provider: cannot open the log %s: %s\n", log_file, strerror(errno));
      return 1;
    }
  }
  g_tls = make_tls();
  if (g_entries == NULL || g_tls == NULL) {
    fprintf(stderr, "fake-provider: out of memory, or OpenSSL could not make a certificate\n");
    return 1;
  }
  lfd[0] = listen_loopback(&g_port, "--port");
  if (lfd[0] < 0) return 1;
  lfd[1] = listen_loopback(&tls_port, "--tls-port");
  if (lfd[1] < 0) return 1;
  if (port_file != NULL) {
    char tmp[4096];
    FILE *pf;
    snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
    pf = fopen(tmp, "w");
    if (pf == NULL || fprintf(pf, "%d %d\n", g_port, tls_port) < 0 || fclose(pf) != 0 ||
        rename(tmp, port_file) != 0) {
      fprintf(stderr, "fake-provider: cannot write the port file %s: %s\n", port_file,
              strerror(errno));
      return 1;
    }
  }
  if (!quiet) {
    printf("fake-provider: listening on 127.0.0.1 (SIGTERM or Ctrl-C stops it)\n"
           "  turnstile  http://127.0.0.1:%d/turnstile/v0/siteverify\n"
           "  hcaptcha   http://127.0.0.1:%d/hcaptcha/siteverify\n"
           "  TLS, a certificate no client trusts: https://127.0.0.1:%d/...\n",
           g_port, g_port, tls_port);
    fflush(stdout);
  }

  while (!g_stop) {
    struct pollfd p[2] = {{lfd[0], POLLIN, 0}, {lfd[1], POLLIN, 0}};
    struct timespec second = {1, 0};
    int r = ppoll(p, 2, exit_with_parent ? &second : NULL, &wait_mask);
    if (exit_with_parent && getppid() != parent) break; /* the suite is gone */
    if (r <= 0) continue;
    for (int k = 0; k < 2; k++) {
      if (!(p[k].revents & POLLIN)) continue;
      int sock = accept4(lfd[k], NULL, NULL, SOCK_CLOEXEC);
      if (sock < 0) continue;
      /* Head and body go out in two writes: without this, Nagle holds the
      ** body until the client's delayed ACK, 40 ms per request. */
      int nodelay = 1;
      setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
      accepted *a = malloc(sizeof *a);
      pthread_t th;
      if (a == NULL || !conn_track(sock)) {
        free(a);
        close(sock);
        continue;
      }
      a->sock = sock;
      a->tls = k == 1;
      if (pthread_create(&th, NULL, serve, a) != 0) {
        free(a);
        conn_forget(sock);
        close(sock);
        continue;
      }
      pthread_detach(th);
    }
  }

  /* A clean stop: no new connections, the open ones ended, the log flushed.
  ** _exit, not return: a connection thread still inside OpenSSL (a slow
  ** answer) must not race OpenSSL's atexit cleanup. */
  close(lfd[0]);
  close(lfd[1]);
  conns_close_all();
  pthread_mutex_lock(&g_mu);
  if (g_log != NULL) fflush(g_log);
  pthread_mutex_unlock(&g_mu);
  if (!quiet) printf("fake-provider: stopped\n");
  fflush(stdout);
  _exit(0);
}
