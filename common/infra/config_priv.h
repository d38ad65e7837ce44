/* Private to the config files (config.c, config_table.c, config_parse.c,
 * config_assign.c, config_file.c, config_print.c): the shape of a settings
 * row and the pieces loading is assembled from. Who calls whom, without a
 * circle: config.c -> file, assign, print, table, parse; file -> table, parse;
 * assign -> parse; print -> table; table and parse call no other config file. */
#ifndef HVD_CONFIG_PRIV_H
#define HVD_CONFIG_PRIV_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"

typedef enum {
    CT_STR,      /* any string */
    CT_NAME,     /* AMQP name prefix: [A-Za-z0-9._:-], 1..100 */
    CT_AMQP_URL, /* amqp:// or amqps:// URL; secret */
    CT_PG_DSN,   /* libpq URI or key=value string; secret */
    CT_INT,      /* whole number in [min, max] */
    CT_DUR,      /* seconds with optional s/m/h/d suffix, in [min, max] */
    CT_BOOL,
    CT_LEVEL,    /* debug|info|warn|error */
    CT_INTLIST,  /* comma list of whole numbers in [min, max], 1..16 entries */
    CT_HOSTLIST, /* comma list of hostnames / IPv4, lower-cased */
    CT_CODELIST, /* comma list of agent codes */
    CT_PATHLIST, /* comma list of file paths */
    CT_TIMEOUTS, /* op=seconds,... */
    CT_ADDR,     /* host:port or empty */
    CT_PROFILE,  /* auto|raw|hvdeploy */
    CT_TEXTLIST, /* comma list of non-empty texts (kept as given) */
} CfgType;

#define REQ_WORKER 1u /* CfgRow.required: hvdeploy-worker needs it */

typedef struct {
    const char *name;
    CfgType type;
    size_t off;
    const char *def;
    int64_t min, max;
    unsigned required;
    const char *metavar;
    const char *help;
} CfgRow;
/* A value of one row during loading, and where it came from. */
typedef struct {
    char *val; /* owned */
    char *src; /* owned: "" (default/env) or " (from ...)" */
} Layer;

/* The field of row in cfg, as a T. */
#define FIELD(cfg, row, T) ((T *)((char *)(cfg) + (row)->off))

/* ---- config_table.c ---- */
extern const CfgRow cfg_rows[];
extern const size_t cfg_nrows;
/* The row of a variable name (the first len bytes of name), or NULL. */
const CfgRow *cfg_row_by_name(const char *name, size_t len);
/* The row of a flag "--x-y" (its first len bytes), or NULL. */
const CfgRow *cfg_row_by_flag(const char *flag, size_t len);
/* program (a path or a name) is hvdeploy-worker: it ends in "worker". */
bool cfg_is_worker(const char *program);

/* ---- config_parse.c ---- */
void cfg_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A value made safe to quote in a one-line error: cut, control chars as '?'. */
void cfg_quote_val(const char *v, char *out, size_t outlen);
/* s without leading and trailing white space (trailing cut in place). */
char *cfg_trim(char *s);
bool cfg_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);
/* Seconds with an optional s/m/h/d suffix, in [min, max]. */
bool cfg_parse_dur(const char *s, int64_t min, int64_t max, int64_t *out);
bool cfg_parse_bool(const char *s, bool *out);
/* host:port with a valid host name or IPv4 (hvd_hostname_valid), or [v6]:port. */
bool cfg_addr_ok(const char *s);
bool cfg_name_ok(const char *s); /* an AMQP name prefix */
bool cfg_code_ok(const char *s); /* an agent code */
void cfg_strlist_free(HvdStrList *l);
/* Splits a comma list into trimmed items; calls ok() on each. Returns false
 * and the bad item in *bad (owned by the caller) when an item is empty or
 * refused. An empty (or all-blank) string is an empty list. */
bool cfg_split_list(const char *s, HvdStrList *out, bool (*ok)(const char *), bool lower, char **bad);
/* Applies "op=seconds,..." over t. On failure *bad is the first bad item. */
bool cfg_timeouts_apply(HvdTimeouts *t, const char *s, char **bad);
char *cfg_mask_dup(const char *url); /* the URL or DSN with its password masked (malloc'd) */

/* ---- config_assign.c ---- */
/* Parses v into the row's field. On failure writes the one-line error. */
bool cfg_assign(HvdConfig *cfg, const CfgRow *r, const char *v, const char *src, char *err, size_t errlen);

/* ---- config_file.c ---- */
/* Sets l to a copy of val, from src (taken; NULL = ""). */
void cfg_layer_set(Layer *l, const char *val, char *src);
/* Reads HVD_CONFIG_FILE path into layers (indexed as cfg_rows). 0 or -1 with err. */
int cfg_load_file(Layer *layers, const char *path, char *err, size_t errlen);
/* Replaces the layer of target_var by the trimmed content of the file named
 * by the layer of file_var, when that is set. 0 or -1 with err. */
int cfg_apply_file_variant(Layer *layers, const char *file_var, const char *target_var, char *err, size_t errlen);

#endif
