/*
** netaddr.c — client IP addresses: validation, canonical form, limit key.
**
** Addresses arrive as text from the app (opts.ip). They are stored in
** canonical form so that one client is one string, and IPv4-mapped IPv6
** (::ffff:1.2.3.4, what dual-stack sockets report) is written as IPv4:
** otherwise every IPv4 client would share one IPv6 /64 rate-limit bucket.
** An IPv6 address is counted by its /64, except in the ranges that embed an
** IPv4 address or are one client per address (the table in
** docs/guide-captcha.md, "The per-IP limit on anonymous sign-ins").
**
** Also the URLs anonauth sends requests to (captcha.url): which ones the
** configuration accepts, and which name a loopback host.
*/
#include "anonauth_int.h"

#include <arpa/inet.h>
#include <string.h>

/* IPv6 ranges whose addresses stand for one IPv4 client: what a client
** there controls is its IPv4 address, so it is counted as that address.
** `at` is where the 32 bits sit; Teredo stores them inverted. */
static const struct {
  unsigned char prefix[12];
  int prefix_len; /* bytes */
  int at;
  int inverted;
} v4_embedding[] = {
    /* ::ffff:a.b.c.d, IPv4-mapped: what dual-stack sockets report */
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 12, 12, 0},
    /* ::ffff:0:a.b.c.d, IPv4-translated (RFC 2765) */
    {{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0}, 12, 12, 0},
    /* 64:ff9b::a.b.c.d, the NAT64 well-known prefix (RFC 6052): IPv4
    ** clients reaching an IPv6-only server through a translator */
    {{0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0}, 12, 12, 0},
    /* ::a.b.c.d, IPv4-compatible (deprecated by RFC 4291); :: and ::1 are
    ** taken out first */
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 12, 12, 0},
    /* 2002:V4ADDR::/48, 6to4 (RFC 3056): a whole site behind one IPv4
    ** address, with 65536 /64s to choose from */
    {{0x20, 0x02}, 2, 2, 0},
    /* 2001:0::/32, Teredo (RFC 4380): every client of one Teredo server
    ** shares a /64; the client's own IPv4 address is the last 32 bits,
    ** inverted */
    {{0x20, 0x01, 0, 0}, 4, 12, 1},
};

/* The rate-limit key of an IPv6 address that is not IPv4-mapped. */
static int v6_limit_key(unsigned char v6[16], char limit_key[AA_IP_TEXT_MAX + 4]) {
  static const unsigned char zero[15] = {0};
  static const unsigned char nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 1};
  /* :: and ::1 (loopback: a proxy that forgot to pass the client's address)
  ** are keys of their own. */
  if (memcmp(v6, zero, 15) == 0 && v6[15] <= 1)
    return inet_ntop(AF_INET6, v6, limit_key, AA_IP_TEXT_MAX) ? SQLITE_OK : SQLITE_MISMATCH;
  for (size_t i = 0; i < sizeof(v4_embedding) / sizeof(v4_embedding[0]); i++) {
    unsigned char v4[4];
    if (memcmp(v6, v4_embedding[i].prefix, (size_t)v4_embedding[i].prefix_len) != 0) continue;
    memcpy(v4, v6 + v4_embedding[i].at, 4);
    if (v4_embedding[i].inverted)
      for (int b = 0; b < 4; b++) v4[b] = (unsigned char)~v4[b];
    return inet_ntop(AF_INET, v4, limit_key, AA_IP_TEXT_MAX) ? SQLITE_OK : SQLITE_MISMATCH;
  }
  /* 64:ff9b:1::/48, local-use NAT64 (RFC 8215): where the IPv4 address sits
  ** depends on the prefix length the network chose, but the translation is
  ** one to one, so the whole address is one client. */
  if (memcmp(v6, nat64_local, sizeof(nat64_local)) == 0)
    return inet_ntop(AF_INET6, v6, limit_key, AA_IP_TEXT_MAX) ? SQLITE_OK : SQLITE_MISMATCH;
  /* One customer usually holds a whole /64: count it as one client. */
  memset(v6 + 8, 0, 8);
  if (inet_ntop(AF_INET6, v6, limit_key, AA_IP_TEXT_MAX) == NULL) return SQLITE_MISMATCH;
  memcpy(limit_key + strlen(limit_key), "/64", 4); /* the buffer has 4 bytes to spare */
  return SQLITE_OK;
}

int aa_ip_parse(const char *in, int n, char canon[AA_IP_TEXT_MAX],
                char limit_key[AA_IP_TEXT_MAX + 4]) {
  char buf[AA_IP_TEXT_MAX];
  unsigned char v4[4];
  unsigned char v6[16];
  static const unsigned char mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

  if (n <= 0 || n >= (int)sizeof(buf)) return SQLITE_MISMATCH;
  memcpy(buf, in, (size_t)n);
  buf[n] = 0;
  if (memchr(buf, 0, (size_t)n)) return SQLITE_MISMATCH;

  if (inet_pton(AF_INET, buf, v4) == 1) {
    if (inet_ntop(AF_INET, v4, canon, AA_IP_TEXT_MAX) == NULL) return SQLITE_MISMATCH;
    memcpy(limit_key, canon, strlen(canon) + 1);
    return SQLITE_OK;
  }
  if (inet_pton(AF_INET6, buf, v6) == 1) {
    if (memcmp(v6, mapped_prefix, sizeof(mapped_prefix)) == 0) {
      if (inet_ntop(AF_INET, v6 + 12, canon, AA_IP_TEXT_MAX) == NULL) return SQLITE_MISMATCH;
      memcpy(limit_key, canon, strlen(canon) + 1);
      return SQLITE_OK;
    }
    if (inet_ntop(AF_INET6, v6, canon, AA_IP_TEXT_MAX) == NULL) return SQLITE_MISMATCH;
    return v6_limit_key(v6, limit_key);
  }
  return SQLITE_MISMATCH;
}

/* ---- URLs ---------------------------------------------------------------- */

static int is_loopback_host(const char *h, int n) {
  if (n == 9 && memcmp(h, "localhost", 9) == 0) return 1;
  if (n == 5 && memcmp(h, "[::1]", 5) == 0) return 1;
  if (n >= 9 && memcmp(h, "127.", 4) == 0) {
    char buf[AA_IP_TEXT_MAX], key[AA_IP_TEXT_MAX + 4];
    return n < AA_IP_TEXT_MAX && aa_ip_parse(h, n, buf, key) == SQLITE_OK;
  }
  return 0;
}

/* Where the host that starts at host ends (before limit), or NULL for an
** unclosed IPv6 bracket. */
static const char *host_end(const char *host, const char *limit) {
  const char *end = host;
  if (end < limit && *end == '[') {
    while (end < limit && *end != ']') end++;
    return end == limit ? NULL : end + 1;
  }
  while (end < limit && *end != '/' && *end != ':' && *end != '?' && *end != '#' && *end != '@')
    end++;
  return end;
}

int aa_url_is_loopback(const char *url) {
  size_t n = strlen(url);
  const char *host, *end;
  if (n > 8 && memcmp(url, "https://", 8) == 0)
    host = url + 8;
  else if (n > 7 && memcmp(url, "http://", 7) == 0)
    host = url + 7;
  else
    return 0;
  end = host_end(host, url + n);
  return end != NULL && is_loopback_host(host, (int)(end - host));
}

/* https:// anywhere, or http:// to a loopback address (tests, local proxies).
** No credentials in the URL: they would end up in logs. */
const char *aa_url_problem(const char *s, int n) {
  const char *host, *end;
  int https;
  if (n < 1 || n > AA_URL_MAX || !aa_printable_ascii(s, n)) return "must be printable ASCII";
  if (memchr(s, ' ', (size_t)n)) return "must not contain spaces";
  if (n > 8 && memcmp(s, "https://", 8) == 0) {
    https = 1;
    host = s + 8;
  } else if (n > 7 && memcmp(s, "http://", 7) == 0) {
    https = 0;
    host = s + 7;
  } else {
    return "must be an https:// URL, or http:// to a loopback address";
  }
  end = host_end(host, s + n);
  if (end == NULL) return "has a malformed host";
  if (end == host) return "has no host";
  if (memchr(s, '@', (size_t)n)) return "must not carry credentials";
  if (!https && !is_loopback_host(host, (int)(end - host)))
    return "may use http:// only for a loopback address";
  return NULL;
}
