/*
** text.c — byte-level text rules: UTF-8 validity and JSON string quoting.
**
** SQLite stores whatever bytes it is given as TEXT, so every string that
** crosses into anonauth's tables (user agents, account ids, profile JSON) is
** checked here first: a stored value must never be invalid UTF-8 or hold a
** NUL that truncates it in other languages' drivers.
**
** It also holds the one look at SQL text anonauth makes without SQLite's
** parser: whether the app's stored SQL starts a PRAGMA, which must be known
** before the text is prepared (see aa_sql_next_is_pragma).
*/
#include "anonauth_int.h"

#include <string.h>

int aa_utf8_valid(const unsigned char *p, int n) {
  int i = 0;
  while (i < n) {
    unsigned c = p[i];
    int extra;
    unsigned cp;
    if (c == 0) return 0;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (i + extra >= n) return 0; /* truncated sequence */
    for (int k = 1; k <= extra; k++) {
      unsigned cc = p[i + k];
      if ((cc & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (cc & 0x3F);
    }
    /* overlong forms, UTF-16 surrogates, beyond U+10FFFF */
    if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
      return 0;
    i += extra + 1;
  }
  return 1;
}

void aa_str_append_json_string(sqlite3_str *s, const char *p, int n) {
  static const char hex[] = "0123456789abcdef";
  sqlite3_str_appendchar(s, 1, '"');
  for (int i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)p[i];
    switch (ch) {
      case '"': sqlite3_str_appendall(s, "\\\""); break;
      case '\\': sqlite3_str_appendall(s, "\\\\"); break;
      case '\n': sqlite3_str_appendall(s, "\\n"); break;
      case '\r': sqlite3_str_appendall(s, "\\r"); break;
      case '\t': sqlite3_str_appendall(s, "\\t"); break;
      default:
        if (ch < 0x20) {
          char esc[7] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15], 0};
          sqlite3_str_appendall(s, esc);
        } else {
          sqlite3_str_appendchar(s, 1, (char)ch);
        }
    }
  }
  sqlite3_str_appendchar(s, 1, '"');
}

static int is_space(unsigned char ch) {
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\f' || ch == '\r' || ch == '\v';
}

static int is_ident_char(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '_' || ch == '$' || ch >= 0x80;
}

static int keyword_at(const char *p, const char *end, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(end - p) < n || sqlite3_strnicmp(p, word, (int)n) != 0) return 0;
  return p + n == end || !is_ident_char((unsigned char)p[n]);
}

/*
** SQLite applies a flag pragma (trusted_schema, foreign_keys,
** ignore_check_constraints, writable_schema, query_only ...) while it
** *prepares* the statement, not when it runs it: even preparing
** `EXPLAIN PRAGMA trusted_schema = ON` switches the flag on. So SQL that
** anonauth prepares on the app's connection without trusting it (link.merge_sql,
** purge.user_sql) is refused when its next statement, after blanks, comments
** and empty statements, begins with PRAGMA or EXPLAIN (which may wrap one).
** No other statement changes anything before it runs.
*/
int aa_sql_next_is_pragma(const char *sql, int n) {
  const char *p = sql, *end = sql + n;
  while (p < end) {
    if (is_space((unsigned char)*p) || *p == ';') {
      p++;
    } else if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
      while (p < end && *p != '\n') p++;
    } else if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
      p += 2;
      while (p < end && !(end - p >= 2 && p[0] == '*' && p[1] == '/')) p++;
      p = p < end ? p + 2 : end;
    } else {
      break;
    }
  }
  return keyword_at(p, end, "PRAGMA") || keyword_at(p, end, "EXPLAIN");
}

int aa_printable_ascii(const char *s, int n) {
  for (int i = 0; i < n; i++) {
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) return 0;
  }
  return 1;
}
