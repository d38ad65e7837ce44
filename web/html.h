/* HTML for the dashboard (html.c): escaping, URL encoding, the page layout. */
#ifndef HVD_WEB_HTML_H
#define HVD_WEB_HTML_H
#include "web.h"

/* Appends s HTML-escaped (& < > " ' and control characters). NULL appends nothing. */
void html_esc(HvdBuf *b, const char *s);
/* printf where every %s argument is escaped: only %s, %d, %lld and %% are allowed. */
void html_printf(HvdBuf *b, const char *fmt, ...);
/* s URL-encoded for a query string or a path segment. */
void html_url(HvdBuf *b, const char *s);
/* The layout: <head> with the stylesheet and script, the navigation with nav
 * (jobs, hosts, dead) marked current, and the end. */
void html_begin(WebReq *r, const char *title, const char *nav);
void html_end(WebReq *r);
/* An error page with status and one sentence. */
void html_error(WebReq *r, unsigned status, const char *message);
/* A status word as a coloured badge. */
void html_badge(HvdBuf *b, const char *status);

#endif
