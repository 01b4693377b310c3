/*
** libFuzzer harness for the strict base64url decoder of JWT parts
** (aa_b64url_decode in src/jws.c): it must accept exactly the canonical
** unpadded URL-safe encodings, so that decoding then encoding again gives
** back the input byte for byte; refuse any byte outside the alphabet; agree
** with libsodium's decoder (constant-time, independent) on everything else;
** and never write past the capacity it is given. (libsodium 1.0.18's
** decoder itself accepts some bytes above 0x7f, e.g. "Q\xc6I": one reason
** the token parts are not decoded with it.)
*/
#include "anonauth_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  unsigned char out[768], ref[768];
  size_t n = 0, ref_n = 0, cap;
  const char *end = NULL;
  int ok, ref_ok;
  if (!ready) {
    if (sodium_init() < 0) abort();
    ready = 1;
  }
  if (size > 1000) return 0;
  /* the first byte picks a capacity, so short buffers are tried too */
  cap = size > 0 ? data[0] % sizeof(out) : sizeof(out);
  if (size > 0) {
    data++;
    size--;
  }
  ok = aa_b64url_decode((const char *)data, size, out, cap, &n) == SQLITE_OK;
  for (size_t i = 0; i < size; i++) {
    unsigned char ch = data[i];
    int in = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
             ch == '-' || ch == '_';
    if (!in) {
      if (ok) abort();
      return 0;
    }
  }
  ref_ok = size % 4 != 1 &&
           sodium_base642bin(ref, cap, (const char *)data, size, NULL, &ref_n, &end,
                             sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
           end == (const char *)data + size;
  if (ok != ref_ok) abort();
  if (!ok) return 0;
  if (n > cap || n != ref_n || memcmp(out, ref, n) != 0) abort();
  {
    char again[1100];
    sodium_bin2base64(again, sizeof(again), out, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (strlen(again) != size || memcmp(again, data, size) != 0) abort();
  }
  return 0;
}
