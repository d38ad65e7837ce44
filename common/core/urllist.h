/* HVD_AMQP_URL as a list: the nodes of a RabbitMQ cluster, one URL each,
 * separated by whitespace (spaces, tabs or newlines). Whitespace cannot occur
 * inside a URL (RFC 3986: it must be percent-encoded), while ',' and ';' can
 * (in a password), so whitespace is the one separator that never splits a URL.
 *
 * rabbitmq-c's amqp_parse_url accepts "amqp://a,b/vhost" and silently keeps
 * only host "a": hvd_url_host_has_comma finds that form so that the caller
 * can refuse it with a clear error instead. Pure string code. */
#ifndef HVD_URLLIST_H
#define HVD_URLLIST_H
#include <stdbool.h>
#include <stddef.h>

#define HVD_URL_LIST_MAX 16 /* nodes one HVD_AMQP_URL may name */

typedef struct {
    char *v[HVD_URL_LIST_MAX]; /* owned copies, in the order given */
    size_t n;
} HvdUrlList;

/* Splits s on whitespace into out (zeroed first). Returns true with at least
 * one URL; false with why ("no URL", "more than 16 URLs") otherwise, out
 * then empty. */
bool hvd_url_list_split(const char *s, HvdUrlList *out, char *why, size_t whylen);
void hvd_url_list_free(HvdUrlList *l); /* NULL-safe; leaves it empty */

/* True when the host part of url (between "scheme://[userinfo@]" and the
 * first '/', '?' or '#') holds a ',': several hosts in one URL. A ',' in the
 * password does not count. */
bool hvd_url_host_has_comma(const char *url);

#endif
