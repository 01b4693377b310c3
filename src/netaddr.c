/*
** netaddr.c — client IP addresses: validation, canonical form, limit key.
**
** Addresses arrive as text from the app (opts.ip). They are stored in
** canonical form so that one client is one string, and IPv4-mapped IPv6
** (::ffff:1.2.3.4, what dual-stack sockets report) is written as IPv4:
** otherwise every IPv4 client would share one IPv6 /64 rate-limit bucket.
*/
#include "anonauth_int.h"

#include <arpa/inet.h>
#include <string.h>

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
    /* One customer usually holds a whole /64: count it as one client. */
    memset(v6 + 8, 0, 8);
    if (inet_ntop(AF_INET6, v6, limit_key, AA_IP_TEXT_MAX) == NULL) return SQLITE_MISMATCH;
    memcpy(limit_key + strlen(limit_key), "/64", 4); /* the buffer has 4 bytes to spare */
    return SQLITE_OK;
  }
  return SQLITE_MISMATCH;
}
