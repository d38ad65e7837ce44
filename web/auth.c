/* Authentication of actions and CSRF tokens.
 *
 * The password file holds one crypto_pwhash_str hash (argon2id; made by
 * `hvdeploy-web --hash-password`). An action's request must carry HTTP Basic
 * credentials whose password matches (any user name; it is logged). One
 * check runs at a time (argon2 takes 64 MiB and a noticeable fraction of a
 * second); the last credentials that passed are remembered as a keyed digest
 * so that an operator's next clicks cost nothing.
 *
 * CSRF: every browser gets a random cookie hvd_csrf (HttpOnly,
 * SameSite=Strict); each form carries HMAC(process key, cookie) and a POST
 * passes only when both are present and agree and no foreign Origin sent it. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "log.h"
#include "auth.h"
#include "html.h"
#include "request.h"

bool auth_load_password(Web *w, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "--password-file %s: cannot read it", path);
        return false;
    }
    char line[crypto_pwhash_STRBYTES + 8];
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (ok) line[strcspn(line, "\r\n")] = '\0';
    if (!ok || strncmp(line, "$argon2", 7) != 0) {
        snprintf(err, errlen,
                 "--password-file %s: the first line must be a password hash made by "
                 "`hvdeploy-web --hash-password` (it starts with $argon2)",
                 path);
        return false;
    }
    w->password_hash = strdup(line);
    return true;
}

int auth_hash_password_main(void)
{
    if (sodium_init() < 0) return 2;
    char pw[1024];
    if (isatty(STDIN_FILENO)) fprintf(stderr, "password (one line): ");
    if (!fgets(pw, sizeof pw, stdin)) {
        fprintf(stderr, "hvdeploy-web --hash-password: no password on stdin\n");
        return 2;
    }
    pw[strcspn(pw, "\r\n")] = '\0';
    if (strlen(pw) < 8) {
        fprintf(stderr, "hvdeploy-web --hash-password: use at least 8 characters\n");
        sodium_memzero(pw, sizeof pw);
        return 2;
    }
    char hash[crypto_pwhash_STRBYTES];
    int rc =
        crypto_pwhash_str(hash, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE);
    sodium_memzero(pw, sizeof pw);
    if (rc != 0) {
        fprintf(stderr, "hvdeploy-web --hash-password: out of memory\n");
        return 2;
    }
    printf("%s\n", hash);
    return 0;
}

bool auth_check(WebReq *r)
{
    Web *w = r->web;
    if (!w->password_hash) return false;
    char *pass = NULL;
    char *user = MHD_basic_auth_get_username_password(r->conn, &pass);
    bool ok = false;
    if (user && pass) {
        /* digest of user:password under the CSRF key (a per-process secret) */
        unsigned char d[32];
        crypto_generichash_state st;
        crypto_generichash_init(&st, w->csrf_key, sizeof w->csrf_key, sizeof d);
        crypto_generichash_update(&st, (const unsigned char *)user, strlen(user));
        crypto_generichash_update(&st, (const unsigned char *)"\n", 1);
        crypto_generichash_update(&st, (const unsigned char *)pass, strlen(pass));
        crypto_generichash_final(&st, d, sizeof d);
        pthread_mutex_lock(&w->auth_mu);
        if (w->has_good_auth && sodium_memcmp(d, w->good_auth, sizeof d) == 0) {
            ok = true;
        } else if (crypto_pwhash_str_verify(w->password_hash, pass, strlen(pass)) == 0) {
            ok = true;
            memcpy(w->good_auth, d, sizeof d);
            w->has_good_auth = true;
        }
        pthread_mutex_unlock(&w->auth_mu);
        sodium_memzero(d, sizeof d);
    }
    if (user && !ok) hvd_log_kv(HVD_LOG_WARN, NULL, "web: wrong password for an action", "user", user, NULL);
    if (pass) {
        sodium_memzero(pass, strlen(pass));
        MHD_free(pass);
    }
    if (user) MHD_free(user);
    return ok;
}

static bool hex64(const char *s)
{
    if (!s || strlen(s) != 64) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
    return true;
}

void auth_csrf_prepare(WebReq *r)
{
    const char *c = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, "hvd_csrf");
    if (hex64(c)) {
        snprintf(r->csrf_cookie, sizeof r->csrf_cookie, "%s", c);
        return;
    }
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(r->csrf_cookie, sizeof r->csrf_cookie, raw, sizeof raw);
    r->set_cookie = true;
}

void auth_csrf_token(const WebReq *r, char out[65])
{
    unsigned char mac[32];
    crypto_generichash(mac, sizeof mac, (const unsigned char *)r->csrf_cookie, strlen(r->csrf_cookie), r->web->csrf_key,
                       sizeof r->web->csrf_key);
    sodium_bin2hex(out, 65, mac, sizeof mac);
}

void auth_csrf_field(WebReq *r)
{
    if (!r->web->allow_actions) return;
    char tok[65];
    auth_csrf_token(r, tok);
    html_printf(&r->body, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">", tok);
}

/* An Origin header, when the browser sent one, names this very server; a
 * browser that sent none (or "null") says through Sec-Fetch-Site whether the
 * request came from one of our pages. */
static bool origin_ok(const WebReq *r)
{
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    if (!origin || strcmp(origin, "null") == 0) {
        const char *site = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Sec-Fetch-Site");
        return !site || strcmp(site, "same-origin") == 0;
    }
    const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Host");
    if (!host) return false;
    const char *p = strstr(origin, "://");
    return p && strcmp(p + 3, host) == 0;
}

bool auth_csrf_ok(const WebReq *r)
{
    if (r->set_cookie) return false; /* the browser sent no cookie */
    char *given = web_form_value(r, "csrf");
    char want[65];
    auth_csrf_token(r, want);
    bool ok = given && strlen(given) == 64 && sodium_memcmp(given, want, 64) == 0 && origin_ok(r);
    free(given);
    return ok;
}
