/*
** json.c — strict JSON on top of jsmn.
**
** jsmn is a tokenizer, not a validator: even in strict mode it accepts
** `{"a" "b"}`, `[1:2]`, `tru` and control characters in strings, and its
** closing-bracket search is quadratic in nesting depth. This file makes it
** safe for untrusted input (sign-in options, CAPTCHA provider responses):
**   - nesting depth is measured first, in one linear pass, and capped;
**   - after jsmn, a walk over the tokens checks that the bytes between them
**     are exactly the whitespace and punctuation JSON allows there;
**   - every primitive must be true, false, null or an RFC 8259 number;
**   - every string must be valid UTF-8, without raw control characters,
**     and its \u escapes must not leave half a surrogate pair;
**   - no object may repeat a key.
*/
#include "anonauth_int.h"

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include <string.h>

#define STACK_TOKENS 64

typedef struct {
  const aa_json *j;
  const jsmntok_t *t;
  const char *why;
  int depth;
} walker;

static int is_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

/* Start and end of a token's raw text (strings: the quotes included). */
static int raw_start(const jsmntok_t *t) { return t->type == JSMN_STRING ? t->start - 1 : t->start; }
static int raw_end(const jsmntok_t *t) { return t->type == JSMN_STRING ? t->end + 1 : t->end; }

/* The bytes in [from, to) must be whitespace around exactly `punct` (or only
** whitespace when punct is 0). */
static int gap_ok(const char *s, int from, int to, char punct) {
  int seen = 0;
  if (from > to) return 0;
  for (int i = from; i < to; i++) {
    if (is_ws(s[i])) continue;
    if (punct && s[i] == punct && !seen) {
      seen = 1;
      continue;
    }
    return 0;
  }
  return punct ? seen : 1;
}

static int number_ok(const char *s, int n) {
  int i = 0;
  if (i < n && s[i] == '-') i++;
  if (i >= n) return 0;
  if (s[i] == '0') {
    i++;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  } else {
    return 0;
  }
  if (i < n && s[i] == '.') {
    i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  }
  return i == n;
}

static int primitive_ok(const char *s, int n) {
  if (n == 4 && memcmp(s, "true", 4) == 0) return 1;
  if (n == 5 && memcmp(s, "false", 5) == 0) return 1;
  if (n == 4 && memcmp(s, "null", 4) == 0) return 1;
  return number_ok(s, n);
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static int read_u16(const char *s, int n, int i, unsigned *out) {
  unsigned v = 0;
  if (i + 4 > n) return 0;
  for (int k = 0; k < 4; k++) {
    int h = hexval(s[i + k]);
    if (h < 0) return 0;
    v = (v << 4) | (unsigned)h;
  }
  *out = v;
  return 1;
}

/*
** Decodes string content s[0..n) (no quotes). With out == NULL it only
** validates. Returns the decoded length, -1 when invalid, -2 when it does
** not fit in cap bytes (plus a terminating NUL).
*/
static int decode_string(const char *s, int n, char *out, int cap) {
  int o = 0;
  int i = 0;
  while (i < n) {
    unsigned char ch = (unsigned char)s[i];
    unsigned cp;
    if (ch < 0x20) return -1;
    if (ch != '\\') {
      /* copy one whole UTF-8 sequence after validating it */
      int len = ch < 0x80 ? 1 : ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : 2;
      if (i + len > n || !aa_utf8_valid((const unsigned char *)s + i, len)) return -1;
      if (out) {
        if (o + len >= cap) return -2;
        memcpy(out + o, s + i, (size_t)len);
      }
      o += len;
      i += len;
      continue;
    }
    if (i + 1 >= n) return -1;
    switch (s[i + 1]) {
      case '"': cp = '"'; break;
      case '\\': cp = '\\'; break;
      case '/': cp = '/'; break;
      case 'b': cp = '\b'; break;
      case 'f': cp = '\f'; break;
      case 'n': cp = '\n'; break;
      case 'r': cp = '\r'; break;
      case 't': cp = '\t'; break;
      case 'u': {
        unsigned lo;
        if (!read_u16(s, n, i + 2, &cp)) return -1;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return -1;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (i + 12 > n || s[i + 6] != '\\' || s[i + 7] != 'u' ||
              !read_u16(s, n, i + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
            return -1;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          i += 6;
        }
        if (cp == 0) return -1; /* a NUL would truncate the value */
        i += 4;
        break;
      }
      default:
        return -1;
    }
    i += 2;
    {
      char buf[4];
      int len;
      if (cp < 0x80) {
        buf[0] = (char)cp;
        len = 1;
      } else if (cp < 0x800) {
        buf[0] = (char)(0xC0 | (cp >> 6));
        buf[1] = (char)(0x80 | (cp & 0x3F));
        len = 2;
      } else if (cp < 0x10000) {
        buf[0] = (char)(0xE0 | (cp >> 12));
        buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        buf[2] = (char)(0x80 | (cp & 0x3F));
        len = 3;
      } else {
        buf[0] = (char)(0xF0 | (cp >> 18));
        buf[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        buf[3] = (char)(0x80 | (cp & 0x3F));
        len = 4;
      }
      if (out) {
        if (o + len >= cap) return -2;
        memcpy(out + o, buf, (size_t)len);
      }
      o += len;
    }
  }
  if (out) out[o] = 0;
  return o;
}

/* Validates the value at token *i and advances *i past it. */
static int walk_value(walker *w, int *i); /* NOLINT(misc-no-recursion) */

#define MAX_MEMBERS 1024

/* Compares two key tokens after unescaping ("a" equals "\u0061"). */
static int keys_equal(const aa_json *j, const jsmntok_t *a, const jsmntok_t *b) {
  const char *pa = j->text + a->start, *pb = j->text + b->start;
  int na = a->end - a->start, nb = b->end - b->start;
  char *da, *db;
  int la, lb, eq;
  if (!memchr(pa, '\\', (size_t)na) && !memchr(pb, '\\', (size_t)nb))
    return na == nb && memcmp(pa, pb, (size_t)na) == 0;
  da = sqlite3_malloc(na + 1);
  db = sqlite3_malloc(nb + 1);
  if (da == NULL || db == NULL) {
    sqlite3_free(da);
    sqlite3_free(db);
    return 1; /* out of memory: refuse rather than accept unchecked */
  }
  la = decode_string(pa, na, da, na + 1);
  lb = decode_string(pb, nb, db, nb + 1);
  eq = la >= 0 && la == lb && memcmp(da, db, (size_t)la) == 0;
  sqlite3_free(da);
  sqlite3_free(db);
  return eq;
}

/* Recursion is bounded: the depth was measured (and capped) before jsmn ran,
** and walk_container refuses to go deeper than AA_JSON_MAX_DEPTH. */
static int walk_container(walker *w, int *i) { /* NOLINT(misc-no-recursion) */
  const jsmntok_t *t = w->t;
  int self = *i;
  int is_object = t[self].type == JSMN_OBJECT;
  int prev_end = t[self].start + 1; /* just past the bracket */
  int n = t[self].size;
  int *key_index = NULL;
  int ok = 0;
  if (++w->depth > AA_JSON_MAX_DEPTH) {
    w->why = "nested too deeply";
    return 0;
  }
  if (is_object && n > MAX_MEMBERS) {
    w->why = "object has too many members";
    return 0;
  }
  if (is_object && n > 0) {
    key_index = sqlite3_malloc64(sizeof(int) * (sqlite3_uint64)n);
    if (key_index == NULL) {
      w->why = "out of memory";
      return 0;
    }
  }
  (*i)++;
  for (int k = 0; k < n; k++) {
    int value;
    if (*i >= w->j->n_toks) {
      w->why = "truncated";
      goto done;
    }
    if (!gap_ok(w->j->text, prev_end, raw_start(&t[*i]), k ? ',' : 0)) {
      w->why = "malformed";
      goto done;
    }
    if (is_object) {
      int key = *i;
      if (t[key].type != JSMN_STRING || t[key].size != 1) {
        w->why = "object keys must be strings";
        goto done;
      }
      if (decode_string(w->j->text + t[key].start, t[key].end - t[key].start, NULL, 0) < 0) {
        w->why = "invalid string";
        goto done;
      }
      for (int m = 0; m < k; m++) {
        if (keys_equal(w->j, &t[key_index[m]], &t[key])) {
          w->why = "duplicate key";
          goto done;
        }
      }
      key_index[k] = key;
      (*i)++;
      if (*i >= w->j->n_toks ||
          !gap_ok(w->j->text, raw_end(&t[key]), raw_start(&t[*i]), ':')) {
        w->why = "malformed";
        goto done;
      }
    }
    value = *i;
    if (!walk_value(w, i)) goto done;
    prev_end = raw_end(&t[value]);
  }
  if (t[self].end < 1 || !gap_ok(w->j->text, prev_end, t[self].end - 1, 0)) {
    w->why = "malformed";
    goto done;
  }
  w->depth--;
  ok = 1;
done:
  sqlite3_free(key_index);
  return ok;
}

static int walk_value(walker *w, int *i) { /* NOLINT(misc-no-recursion) */
  const jsmntok_t *t = &w->t[*i];
  switch (t->type) {
    case JSMN_OBJECT:
    case JSMN_ARRAY:
      return walk_container(w, i);
    case JSMN_STRING:
      if (t->size != 0) {
        w->why = "malformed";
        return 0;
      }
      if (decode_string(w->j->text + t->start, t->end - t->start, NULL, 0) < 0) {
        w->why = "invalid string";
        return 0;
      }
      (*i)++;
      return 1;
    case JSMN_PRIMITIVE:
      if (t->size != 0 || !primitive_ok(w->j->text + t->start, t->end - t->start)) {
        w->why = "invalid literal or number";
        return 0;
      }
      (*i)++;
      return 1;
    default:
      w->why = "malformed";
      return 0;
  }
}

/* One linear pass: the deepest bracket nesting outside strings. */
static int max_depth(const char *s, int n) {
  int depth = 0, deepest = 0, in_string = 0;
  for (int i = 0; i < n; i++) {
    char ch = s[i];
    if (in_string) {
      if (ch == '\\') i++;
      else if (ch == '"') in_string = 0;
    } else if (ch == '"') {
      in_string = 1;
    } else if (ch == '{' || ch == '[') {
      if (++depth > deepest) deepest = depth;
    } else if (ch == '}' || ch == ']') {
      depth--;
    }
  }
  return deepest;
}

int aa_json_parse(aa_json *j, const char *text, int len, const char **why) {
  jsmn_parser p;
  jsmntok_t stack_toks[STACK_TOKENS];
  jsmntok_t *toks = stack_toks;
  int n, i = 0;
  walker w;

  memset(j, 0, sizeof(*j));
  *why = "malformed";
  if (text == NULL || len <= 0) {
    *why = "empty";
    return SQLITE_MISMATCH;
  }
  if (memchr(text, 0, (size_t)len)) {
    *why = "contains a NUL byte";
    return SQLITE_MISMATCH;
  }
  if (max_depth(text, len) > AA_JSON_MAX_DEPTH) {
    *why = "nested too deeply";
    return SQLITE_MISMATCH;
  }
  /* A bare top-level literal: jsmn's strict mode wants a delimiter after
  ** it, so it is checked here (one token, no structure to walk). */
  {
    int a = 0, b = len;
    while (a < b && is_ws(text[a])) a++;
    while (b > a && is_ws(text[b - 1])) b--;
    if (a < b && text[a] != '{' && text[a] != '[' && text[a] != '"') {
      jsmntok_t *one;
      if (!primitive_ok(text + a, b - a)) {
        *why = "invalid literal or number";
        return SQLITE_MISMATCH;
      }
      one = sqlite3_malloc(sizeof(jsmntok_t));
      if (one == NULL) return SQLITE_NOMEM;
      memset(one, 0, sizeof(*one));
      one->type = JSMN_PRIMITIVE;
      one->start = a;
      one->end = b;
      one->parent = -1;
      j->heap = one;
      j->toks = one;
      j->n_toks = 1;
      j->text = text;
      j->len = len;
      *why = NULL;
      return SQLITE_OK;
    }
  }
  /* Count first, then tokenize into a buffer of exactly that size. */
  jsmn_init(&p);
  n = jsmn_parse(&p, text, (size_t)len, NULL, 0);
  if (n <= 0) return SQLITE_MISMATCH;
  if (n > STACK_TOKENS) {
    j->heap = sqlite3_malloc64(sizeof(jsmntok_t) * (sqlite3_uint64)n);
    if (j->heap == NULL) return SQLITE_NOMEM;
    toks = j->heap;
  }
  jsmn_init(&p);
  n = jsmn_parse(&p, text, (size_t)len, toks, (unsigned)n);
  if (n <= 0) {
    aa_json_free(j);
    return SQLITE_MISMATCH;
  }
  j->text = text;
  j->len = len;
  j->toks = toks;
  j->n_toks = n;

  w.j = j;
  w.t = toks;
  w.why = NULL;
  w.depth = 0;
  if (!gap_ok(text, 0, raw_start(&toks[0]), 0) || !walk_value(&w, &i) || i != n ||
      !gap_ok(text, raw_end(&toks[0]), len, 0)) {
    *why = w.why ? w.why : "malformed";
    aa_json_free(j);
    return SQLITE_MISMATCH;
  }
  if (toks == stack_toks) {
    /* keep the tokens past this frame */
    j->heap = sqlite3_malloc64(sizeof(jsmntok_t) * (sqlite3_uint64)n);
    if (j->heap == NULL) {
      memset(j, 0, sizeof(*j));
      return SQLITE_NOMEM;
    }
    memcpy(j->heap, toks, sizeof(jsmntok_t) * (size_t)n);
    j->toks = j->heap;
  }
  *why = NULL;
  return SQLITE_OK;
}

void aa_json_free(aa_json *j) {
  sqlite3_free(j->heap);
  memset(j, 0, sizeof(*j));
}

static const jsmntok_t *tok(const aa_json *j, int i) { return &((const jsmntok_t *)j->toks)[i]; }

int aa_json_type(const aa_json *j, int i) {
  switch (tok(j, i)->type) {
    case JSMN_OBJECT: return AA_JSON_OBJECT;
    case JSMN_ARRAY: return AA_JSON_ARRAY;
    case JSMN_STRING: return AA_JSON_STRING;
    default: return AA_JSON_PRIMITIVE;
  }
}

int aa_json_object_size(const aa_json *j, int i) { return tok(j, i)->size; }

/* Index of the token after the subtree rooted at i. */
static int skip(const aa_json *j, int i) {
  int stop = tok(j, i)->end;
  int next = i + 1;
  while (next < j->n_toks && tok(j, next)->start < stop) next++;
  return next;
}

int aa_json_member(const aa_json *j, int obj, int idx, int *key_tok, int *val_tok) {
  int k = obj + 1;
  if (idx < 0 || idx >= tok(j, obj)->size) return 0;
  for (int m = 0; m < idx; m++) k = skip(j, k + 1);
  *key_tok = k;
  *val_tok = k + 1;
  return 1;
}

void aa_json_span(const aa_json *j, int i, const char **p, int *n) {
  const jsmntok_t *t = tok(j, i);
  *p = j->text + raw_start(t);
  *n = raw_end(t) - raw_start(t);
}

int aa_json_string_eq(const aa_json *j, int i, const char *s) {
  char buf[256];
  const jsmntok_t *t = tok(j, i);
  int n;
  if (t->type != JSMN_STRING) return 0;
  n = decode_string(j->text + t->start, t->end - t->start, buf, (int)sizeof(buf));
  return n >= 0 && (size_t)n == strlen(s) && memcmp(buf, s, (size_t)n) == 0;
}

int aa_json_string(const aa_json *j, int i, char *out, int cap, int *out_len) {
  const jsmntok_t *t = tok(j, i);
  int n;
  if (t->type != JSMN_STRING) return SQLITE_MISMATCH;
  n = decode_string(j->text + t->start, t->end - t->start, out, cap);
  if (n == -2) return SQLITE_TOOBIG;
  if (n < 0) return SQLITE_MISMATCH;
  if (out_len) *out_len = n;
  return SQLITE_OK;
}

int aa_json_is_true(const aa_json *j, int i) {
  const jsmntok_t *t = tok(j, i);
  return t->type == JSMN_PRIMITIVE && t->end - t->start == 4 &&
         memcmp(j->text + t->start, "true", 4) == 0;
}

int aa_json_is_null(const aa_json *j, int i) {
  const jsmntok_t *t = tok(j, i);
  return t->type == JSMN_PRIMITIVE && t->end - t->start == 4 &&
         memcmp(j->text + t->start, "null", 4) == 0;
}
