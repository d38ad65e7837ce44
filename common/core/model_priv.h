/* Private to job validation (model.c and its field readers, model_read.c):
 * the state of one validation and the readers the section checks use. */
#ifndef HVD_MODEL_PRIV_H
#define HVD_MODEL_PRIV_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "model.h"
#include "node.h"

/* One validation: where errors go, and the caller's options. */
typedef struct {
    HvdErrors *errs;
    const HvdValidateOpts *opts;
} Val;
typedef enum {
    F_ABSENT, /* key missing (a "missing" error was added when required) */
    F_NIL,    /* nil, and the field allows it */
    F_OK,     /* the value has the right type and passed the field's checks */
    F_BAD,    /* an error was added */
} FieldState;

/* Readers of one key of map; prefix is the dotted loc of map ("request.vm_spec"). */
/* A str field: type, UTF-8, no NUL. min/max in code points (0 = no limit). */
FieldState mv_read_str(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required, bool nullable,
                       size_t min, size_t max, const char **out);
FieldState mv_read_int(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required, bool nullable,
                       int64_t lo, int64_t hi, int64_t *out);
FieldState mv_read_bool(Val *v, const HvdNode *map, const char *prefix, const char *key, bool *out);
FieldState mv_read_map(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required, bool nullable,
                       const HvdNode **out);
/* "Input should be 'a'", "'a' or 'b'", "'a', 'b' or 'c'". */
void mv_literal_err(Val *v, const char *prefix, const char *key, const char *const *allowed);
bool mv_in_list(const char *s, const char *const *allowed);
/* A str field restricted to a few values (string_type for a non-string). */
FieldState mv_read_choice(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required, bool nullable,
                          const char *const *allowed, const char **out);
/* A name (vm_name, image_name): lengths, then the §3 hardening rules. */
FieldState mv_read_name(Val *v, const HvdNode *map, const char *prefix, const char *key, bool required, bool nullable,
                        size_t max, const char **out);
/* vm_id on input: ignored, but when given it must be 36 characters. */
void mv_check_vm_id(Val *v, const HvdNode *map, const char *prefix);
/* An optional dotted-quad field; empty counts as absent. Stores a copy or NULL. */
void mv_read_ipv4(Val *v, const HvdNode *map, const char *prefix, const char *key, char **dst);
/* An optional str whose empty value counts as absent (guest config). */
void mv_read_opt_str(Val *v, const HvdNode *map, const char *prefix, const char *key, char **dst);
/* Given for the all-or-none rule: present, not nil, not an empty string. A
 * value of the wrong type counts as given (its own error says what is wrong). */
bool mv_given(const HvdNode *map, const char *key);
void mv_all_or_none(Val *v, const HvdNode *map, const char *loc, const char *what, const char *const *keys);

#endif
