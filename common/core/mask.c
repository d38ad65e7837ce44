/* Masking secrets in text, passwords in URLs and DSNs, secret values in raw bodies. */
#include "mask.h"
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "guestcfg.h"
#include "utf8.h"

/* ---- secrets in text ---- */

typedef struct {
    size_t start, end;
} Span;

typedef struct {
    Span *v;
    size_t n, cap;
} Spans;

static void spans_add(Spans *s, size_t start, size_t end)
{
    if (end <= start) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->v = hvd_xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = (Span){start, end};
}

static int span_cmp(const void *a, const void *b)
{
    const Span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* A character that continues a word: a secret next to one is not a whole token. */
static bool wordish(unsigned char c)
{
    return isalnum(c) || c == '_' || c >= 0x80;
}

/* Whether an occurrence of sec (sl bytes) at s[at] may be masked: always for a
 * long secret; for a short one only when neither side continues a word. */
static bool whole(const char *s, size_t len, size_t at, const char *sec, size_t sl, bool is_short)
{
    if (!is_short) return true;
    bool left = at == 0 || !wordish((unsigned char)s[at - 1]) || !wordish((unsigned char)sec[0]);
    bool right = at + sl >= len || !wordish((unsigned char)s[at + sl]) || !wordish((unsigned char)sec[sl - 1]);
    return left && right;
}

static void find_secret(const char *s, size_t len, const char *sec, unsigned flags, Spans *hits)
{
    size_t sl = strlen(sec);
    bool is_short = hvd_utf8_count(sec, sl, NULL) < HVD_MASK_MIN_ANYWHERE;
    for (size_t at = 0; at + sl <= len;) {
        const char *hit = memmem(s + at, len - at, sec, sl);
        if (!hit) break;
        size_t i = (size_t)(hit - s);
        if (whole(s, len, i, sec, sl, is_short)) spans_add(hits, i, i + sl);
        at = i + 1;
    }
    /* A text cut from a longer one may start (end) with the rest (the start) of a secret. */
    if (flags & HVD_MASK_CUT_START)
        for (size_t k = sl - 1; k > 0; k--)
            if (k <= len && memcmp(s, sec + sl - k, k) == 0 && whole(s, len, 0, sec + sl - k, k, is_short)) {
                spans_add(hits, 0, k);
                break;
            }
    if (flags & HVD_MASK_CUT_END)
        for (size_t k = sl - 1; k > 0; k--)
            if (k <= len && memcmp(s + len - k, sec, k) == 0 && whole(s, len, len - k, sec, k, is_short)) {
                spans_add(hits, len - k, len);
                break;
            }
}

bool hvd_mask_secrets(const char *s, size_t len, const char *const *secrets, size_t n, unsigned flags, HvdBuf *out)
{
    hvd_buf_append(out, "", 0);
    Spans hits = {0};
    for (size_t i = 0; s && i < n; i++)
        if (secrets[i] && *secrets[i]) find_secret(s, len, secrets[i], flags, &hits);
    if (hits.n == 0) {
        hvd_buf_append(out, s, len);
        return false;
    }
    qsort(hits.v, hits.n, sizeof *hits.v, span_cmp);
    size_t pos = 0;
    for (size_t i = 0; i < hits.n;) {
        size_t start = hits.v[i].start, end = hits.v[i].end;
        for (i++; i < hits.n && hits.v[i].start <= end; i++)
            if (hits.v[i].end > end) end = hits.v[i].end;
        hvd_buf_append(out, s + pos, start - pos);
        hvd_buf_puts(out, HVD_MASK);
        pos = end;
    }
    hvd_buf_append(out, s + pos, len - pos);
    free(hits.v);
    return true;
}

char *hvd_mask_secrets_dup(const char *s, const char *const *secrets, size_t n, unsigned flags)
{
    if (!s) return NULL;
    HvdBuf b = {0};
    hvd_mask_secrets(s, strlen(s), secrets, n, flags, &b);
    return hvd_buf_steal(&b);
}

/* ---- URLs and connection strings ---- */

static bool ends_with_password(const char *k, size_t n)
{
    return n >= 8 && strncasecmp(k + n - 8, "password", 8) == 0;
}

/* q[0..n) starts at '?': parameters split on '&', a key ending in password masked. */
static void mask_query(HvdBuf *o, const char *q, size_t n)
{
    hvd_buf_append(o, q, 1);
    const char *p = q + 1, *end = q + n;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t len = amp ? (size_t)(amp - p) : (size_t)(end - p);
        const char *eq = memchr(p, '=', len);
        if (eq && ends_with_password(p, (size_t)(eq - p))) {
            hvd_buf_append(o, p, (size_t)(eq - p) + 1);
            hvd_buf_puts(o, HVD_MASK);
        } else {
            hvd_buf_append(o, p, len);
        }
        if (!amp) break;
        hvd_buf_puts(o, "&");
        p = amp + 1;
    }
}

static bool mask_uri(HvdBuf *o, const char *url)
{
    const char *sep = strstr(url, "://");
    if (!sep || sep == url) return false;
    for (const char *p = url; p < sep; p++)
        if (!isalnum((unsigned char)*p) && !strchr("+.-", *p)) return false;
    const char *rest = sep + 3;
    const char *q = rest + strcspn(rest, "?#");
    const char *at = NULL; /* userinfo ends at the last '@' before the query */
    for (const char *p = rest; p < q; p++)
        if (*p == '@') at = p;
    const char *colon = at ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
    const char *tail = rest;
    if (colon) {
        hvd_buf_append(o, url, (size_t)(colon + 1 - url));
        hvd_buf_puts(o, HVD_MASK);
        tail = at;
    } else {
        hvd_buf_append(o, url, (size_t)(rest - url));
    }
    hvd_buf_append(o, tail, (size_t)(q - tail));
    if (*q == '?') {
        const char *hash = strchr(q, '#');
        mask_query(o, q, hash ? (size_t)(hash - q) : strlen(q));
        if (hash) hvd_buf_puts(o, hash);
    } else {
        hvd_buf_puts(o, q);
    }
    return true;
}

/* libpq key=value: key [ws] = [ws] value, value bare or 'quoted' with \ escapes. */
static void mask_keyvalues(HvdBuf *o, const char *p)
{
    while (*p) {
        const char *ws = p;
        while (isspace((unsigned char)*p)) p++;
        hvd_buf_append(o, ws, (size_t)(p - ws));
        if (!*p) break;
        const char *k = p;
        while (*p && *p != '=' && !isspace((unsigned char)*p)) p++;
        size_t kl = (size_t)(p - k);
        while (isspace((unsigned char)*p)) p++;
        if (*p != '=' || kl == 0) {
            hvd_buf_puts(o, HVD_MASK); /* not key=value: show nothing of the rest */
            return;
        }
        p++;
        while (isspace((unsigned char)*p)) p++;
        const char *v = p;
        if (*p == '\'') {
            for (p++; *p && *p != '\''; p++)
                if (*p == '\\' && p[1]) p++;
            if (*p == '\'') p++;
        } else {
            for (; *p && !isspace((unsigned char)*p); p++)
                if (*p == '\\' && p[1]) p++;
        }
        hvd_buf_append(o, k, (size_t)(v - k));
        if (ends_with_password(k, kl))
            hvd_buf_puts(o, HVD_MASK);
        else
            hvd_buf_append(o, v, (size_t)(p - v));
    }
}

/* A whitespace-separated list of URLs (HVD_AMQP_URL of a cluster): each masked. */
static bool mask_uri_list(HvdBuf *out, const char *urls)
{
    const char *sep = strstr(urls, "://");
    if (!sep || !strpbrk(urls, " \t\r\n") || (size_t)(strpbrk(urls, " \t\r\n") - urls) < (size_t)(sep - urls))
        return false;
    for (const char *p = urls; *p;) {
        size_t ws = strspn(p, " \t\r\n");
        hvd_buf_append(out, p, ws);
        p += ws;
        size_t n = strcspn(p, " \t\r\n");
        if (n == 0) break;
        char *one = hvd_xstrndup(p, n);
        if (!mask_uri(out, one)) hvd_buf_puts(out, "***");
        free(one);
        p += n;
    }
    return true;
}

void hvd_mask_url_into(HvdBuf *out, const char *url)
{
    hvd_buf_append(out, "", 0);
    if (!url) return;
    if (!mask_uri_list(out, url) && !mask_uri(out, url)) mask_keyvalues(out, url);
}

char *hvd_mask_url_dup(const char *url)
{
    if (!url) return NULL;
    HvdBuf b = {0};
    hvd_mask_url_into(&b, url);
    return hvd_buf_steal(&b);
}

/* ---- secret values in a raw body ---- */

static const unsigned char MP_MASK[] = {0xa3, '*', '*', '*'}; /* msgpack fixstr "***" */

static uint64_t be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* The msgpack string header right before a key of nl bytes at p[at]: true when there is one. */
static bool mp_key_header(const unsigned char *p, size_t at, size_t nl)
{
    if (at >= 1 && p[at - 1] == (0xa0 | nl)) return true;
    if (at >= 2 && p[at - 2] == 0xd9 && p[at - 1] == nl) return true;
    if (at >= 3 && p[at - 3] == 0xda && be(p + at - 2, 2) == nl) return true;
    return at >= 5 && p[at - 5] == 0xdb && be(p + at - 4, 4) == nl;
}

/* Length of the msgpack scalar at p[0..n) that may hold a secret (str, bin,
 * int, float), the whole rest when it runs past the end; 0 for other types. */
static size_t mp_value_len(const unsigned char *p, size_t n)
{
    if (n == 0) return 0;
    unsigned char t = p[0];
    uint64_t body;
    size_t head;
    if (t >= 0xa0 && t <= 0xbf) {
        head = 1;
        body = t & 31;
    } else if (t <= 0x7f || t >= 0xe0) {
        return 1; /* fixint */
    } else if (t == 0xd9 || t == 0xc4 || t == 0xda || t == 0xc5 || t == 0xdb || t == 0xc6) {
        size_t w = (t == 0xd9 || t == 0xc4) ? 1 : (t == 0xda || t == 0xc5) ? 2 : 4;
        if (n < 1 + w) return n;
        head = 1 + w;
        body = be(p + 1, w);
    } else if (t >= 0xca && t <= 0xd3) {
        static const unsigned char widths[] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8}; /* ca..d3 */
        head = 1;
        body = widths[t - 0xca];
    } else {
        return 0;
    }
    return body > n - head ? n : head + (size_t)body;
}

/* End of a string opened by the quote q at p[at]: the index after its closing
 * quote (*closed) or n when it does not close. Backslash escapes are skipped. */
static size_t quoted_end(const unsigned char *p, size_t n, size_t at, unsigned char q, bool *closed)
{
    for (size_t i = at + 1; i < n; i++) {
        if (p[i] == '\\')
            i++;
        else if (p[i] == q) {
            *closed = true;
            return i + 1;
        }
    }
    *closed = false;
    return n;
}

/* End of the value starting at p[at] that is not a string: a bracketed one
 * up to its matching bracket, else up to a delimiter. */
static size_t other_value_end(const unsigned char *p, size_t n, size_t at)
{
    if (at < n && (p[at] == '{' || p[at] == '[')) {
        int depth = 0;
        bool closed;
        for (size_t i = at; i < n; i++) {
            if (p[i] == '"') {
                i = quoted_end(p, n, i, '"', &closed) - 1;
                continue;
            }
            if (p[i] == '{' || p[i] == '[') depth++;
            if ((p[i] == '}' || p[i] == ']') && --depth == 0) return i + 1;
        }
        return n;
    }
    size_t i = at;
    while (i < n && !memchr(",;&}]\r\n", p[i], 7)) i++;
    return i;
}

static size_t skip_blanks(const unsigned char *p, size_t n, size_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
    return i;
}

/* Masks the value after a secret name that ends at p[at] (the name itself is
 * already in out). Returns where the copy resumes. */
static size_t mask_value(const unsigned char *p, size_t n, size_t at, bool msgpack_key, HvdBuf *out)
{
    if (msgpack_key) {
        size_t vl = mp_value_len(p + at, n - at);
        if (vl) hvd_buf_append(out, MP_MASK, sizeof MP_MASK);
        return at + vl;
    }
    /* JSON ("name": value), JSON inside a JSON string (\"name\": \"value\"), or text (name=value) */
    size_t i = at;
    bool escaped = i + 1 < n && p[i] == '\\' && p[i + 1] == '"';
    if (escaped)
        i += 2;
    else if (i < n && (p[i] == '"' || p[i] == '\''))
        i++;
    i = skip_blanks(p, n, i);
    if (i < n && (p[i] == ':' || p[i] == '=')) i = skip_blanks(p, n, i + 1);
    hvd_buf_append(out, p + at, i - at);
    if (escaped && i + 1 < n && p[i] == '\\' && p[i + 1] == '"') {
        size_t j = i + 2;
        while (j + 1 < n && !(p[j] == '\\' && p[j + 1] == '"')) j += p[j] == '\\' ? 2 : 1;
        bool closed = j + 1 < n;
        hvd_buf_puts(out, closed ? "\\\"" HVD_MASK "\\\"" : "\\\"" HVD_MASK);
        return closed ? j + 2 : n;
    }
    if (i < n && (p[i] == '"' || p[i] == '\'')) {
        bool closed;
        size_t end = quoted_end(p, n, i, p[i], &closed);
        hvd_buf_append(out, p + i, 1);
        hvd_buf_puts(out, HVD_MASK);
        if (closed) hvd_buf_append(out, p + i, 1);
        return end;
    }
    size_t end = other_value_end(p, n, i);
    if (end > i) hvd_buf_puts(out, HVD_MASK);
    return end;
}

size_t hvd_mask_raw_secrets(const void *body, size_t len, HvdBuf *out)
{
    const unsigned char *p = body;
    size_t masked = 0, pos = 0;
    hvd_buf_append(out, "", 0);
    for (size_t i = 0; p && i < len; i++) {
        for (size_t f = 0; HVD_SECRET_FIELDS[f]; f++) {
            const char *name = HVD_SECRET_FIELDS[f];
            size_t nl = strlen(name);
            if (nl > len - i || strncasecmp((const char *)p + i, name, nl) != 0) continue;
            size_t after = i + nl;
            hvd_buf_append(out, p + pos, after - pos);
            pos = mask_value(p, len, after, mp_key_header(p, i, nl), out);
            masked++;
            i = pos - 1;
            break;
        }
    }
    hvd_buf_append(out, p + pos, len - pos);
    return masked;
}
