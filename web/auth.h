/* Authentication of the dashboard's actions and CSRF tokens (auth.c). */
#ifndef HVD_WEB_AUTH_H
#define HVD_WEB_AUTH_H
#include <stdbool.h>
#include <stddef.h>
#include "web.h"

/* Loads the password file (one crypto_pwhash_str line). False with err set. */
bool auth_load_password(Web *w, const char *path, char *err, size_t errlen);
/* Prints the hash of the password read from stdin (one line) for a password file. */
int auth_hash_password_main(void);
/* The request's Basic credentials match the password file. */
bool auth_check(WebReq *r);
/* The CSRF cookie of the browser (made when missing) and the token of forms. */
void auth_csrf_prepare(WebReq *r);
void auth_csrf_token(const WebReq *r, char out[65]);
/* A hidden CSRF field for forms (empty when actions are off). */
void auth_csrf_field(WebReq *r);
/* The POST carries the CSRF cookie and a form token that matches it, and no
 * foreign Origin. */
bool auth_csrf_ok(const WebReq *r);

#endif
