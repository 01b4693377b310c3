# Turns sql/schema.sql into build/schema_sql.h: one C string per
# "-- migrate N" step, and AA_SCHEMA_VERSION, the number of steps.
BEGIN {
  steps = 0
  print "/* Generated from sql/schema.sql by sql/embed-schema.awk. Do not edit. */"
  print "static const char *const aa_schema_steps[] = {"
}
/^-- migrate [0-9]+/ {
  n = $3 + 0
  if (n != steps + 1) {
    printf "sql/schema.sql: step %d follows step %d\n", n, steps > "/dev/stderr"
    exit 1
  }
  if (steps > 0) print "  ,"
  steps = n
  printf "  /* step %d */\n", steps
  next
}
steps > 0 {
  line = $0
  gsub(/\\/, "\\\\", line)
  gsub(/"/, "\\\"", line)
  printf "  \"%s\\n\"\n", line
}
END {
  if (steps == 0) {
    print "sql/schema.sql: no '-- migrate 1' line" > "/dev/stderr"
    exit 1
  }
  print "};"
  printf "#define AA_SCHEMA_VERSION %d\n", steps
}
