/* Splitting a command-line template into words without a shell (contract §1,
 * HVD_AGENT_CMD): words are separated by spaces or tabs; a word may be
 * quoted with '...' (taken as is) or "..." (\" and \\ escaped), so a path
 * with spaces is one word; quotes may join parts of a word (a"b c"d). */
#ifndef HVD_ARGV_H
#define HVD_ARGV_H
#include <stddef.h>

/* A new NULL-terminated vector of *n words (free with hvd_argv_free), or
 * NULL with a one-line reason in err (an unterminated quote). An empty
 * template gives a vector of 0 words. */
char **hvd_argv_split(const char *s, size_t *n, char *err, size_t errlen);
void hvd_argv_free(char **v); /* NULL-safe */

#endif
