/* Fault injection of the simhost (contract §6): latency, error envelopes,
 * crashes before or after the effect, hangs and (session mode) chatty
 * output, chosen per operation from HVD_SIM_* variables. Each draw is a hash of (HVD_SIM_SEED, fault kind,
 * operation, idempotency key, attempt), so a run is reproducible under a
 * seed and a retry (next attempt) draws anew. */
#include "simhost.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* Finds the value for operation in "op=value,op=value": an exact match wins
 * over "*". Copies it into val. Returns false when there is none. Sets *bad on
 * a malformed list. */
static bool spec_lookup(const char *list, const char *operation, char *val, size_t vlen, bool *bad)
{
    bool found_star = false, found = false;
    char star[128] = "";
    const char *p = list;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        if (n > 0) {
            const char *eq = memchr(p, '=', n);
            if (!eq || eq == p || (size_t)(p + n - eq - 1) >= vlen || (size_t)(p + n - eq - 1) >= sizeof star) {
                *bad = true;
                return false;
            }
            size_t klen = (size_t)(eq - p), v = (size_t)(p + n - eq - 1);
            if (klen == 1 && *p == '*') {
                memcpy(star, eq + 1, v);
                star[v] = '\0';
                found_star = true;
            } else if (strlen(operation) == klen && memcmp(p, operation, klen) == 0) {
                memcpy(val, eq + 1, v);
                val[v] = '\0';
                found = true;
            }
        }
        p = end ? end + 1 : NULL;
    }
    if (found) return true;
    if (found_star) {
        snprintf(val, vlen, "%s", star);
        return true;
    }
    return false;
}

/* Every value for operation in the list (an operation may be named more than
 * once, e.g. "vm.create=0.05:before,vm.create=0.05:after"): the exact
 * entries when there are any, else the "*" ones. Returns how many (at most
 * max); sets *bad on a malformed list. */
static size_t spec_lookup_all(const char *list, const char *operation, char (*vals)[128], size_t max, bool *bad)
{
    size_t n_exact = 0, n_star = 0;
    char star[4][128];
    const char *p = list;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char entry[160];
        if (len >= sizeof entry) {
            *bad = true;
            return 0;
        }
        memcpy(entry, p, len);
        entry[len] = '\0';
        char op[128];
        if (len > 0 && spec_lookup(entry, "*", op, sizeof op, bad)) {
            if (n_star < 4) snprintf(star[n_star++], sizeof star[0], "%s", op);
        } else if (len > 0 && spec_lookup(entry, operation, op, sizeof op, bad)) {
            if (n_exact < max) snprintf(vals[n_exact++], 128, "%s", op);
        }
        if (*bad) return 0;
        p = end ? end + 1 : NULL;
    }
    if (n_exact) return n_exact;
    for (size_t i = 0; i < n_star && i < max; i++) snprintf(vals[i], 128, "%s", star[i]);
    return n_star < max ? n_star : max;
}

static bool parse_prob(const char *s, double *out, const char **rest)
{
    char *end = NULL;
    errno = 0;
    double p = strtod(s, &end);
    if (errno || end == s || p < 0.0 || p > 1.0) return false;
    *out = p;
    *rest = end;
    return true;
}

static bool parse_ms(const char *s, int64_t *out, const char **rest)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0 || v > 86400000LL) return false;
    *out = v;
    *rest = end;
    return true;
}

static uint64_t seed;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void seed_init(void)
{
    const char *s = getenv("HVD_SIM_SEED");
    if (s && *s) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        seed = (!errno && end != s && !*end) ? (uint64_t)v : sim_hash(0, s);
    } else if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
        seed = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL;
    }
}

static uint64_t seed_value(void)
{
    pthread_once(&seed_once, seed_init);
    return seed;
}

double sim_fault_uniform(uint64_t seed, const char *kind, const char *operation, const char *key, int64_t attempt)
{
    uint64_t h = sim_hash(0, kind);
    h = sim_hash(h, operation);
    h = sim_hash(h, key ? key : "");
    h = sim_mix(h ^ sim_mix(seed) ^ sim_mix((uint64_t)attempt * 0x632BE59BD9B4E019ULL));
    return (double)(h >> 11) * 0x1p-53;
}

static double draw(const char *kind, const char *op, const char *key, int64_t attempt)
{
    return sim_fault_uniform(seed_value(), kind, op, key, attempt);
}

bool sim_faults_draw(const char *op, const char *key, int64_t attempt, SimFaults *f, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    char val[128];
    bool bad = false;
    const char *rest;
    double p;

    const char *lat = getenv("HVD_SIM_LATENCY_MS");
    if (spec_lookup(lat, op, val, sizeof val, &bad)) {
        int64_t lo, hi;
        if (!parse_ms(val, &lo, &rest)) goto bad_latency;
        hi = lo;
        if (*rest == '-' && !parse_ms(rest + 1, &hi, &rest)) goto bad_latency;
        if (*rest || hi < lo) goto bad_latency;
        f->latency_ms = lo + (int64_t)(draw("latency", op, key, attempt) * (double)(hi - lo + 1));
        if (f->latency_ms > hi) f->latency_ms = hi;
    } else if (bad) {
        goto bad_latency;
    }

    if (spec_lookup(getenv("HVD_SIM_FAIL"), op, val, sizeof val, &bad)) {
        if (!parse_prob(val, &p, &rest) || (*rest && *rest != ':') || (*rest == ':' && !rest[1])) {
            snprintf(err, errlen, "HVD_SIM_FAIL: bad entry for %s: '%s' (want probability[:code])", op, val);
            return false;
        }
        snprintf(f->fail_code, sizeof f->fail_code, "%s", *rest == ':' ? rest + 1 : SIM_CODE_OPERATION);
        f->fail = draw("fail", op, key, attempt) < p;
        f->fail_draw = draw("fail-text", op, key, attempt);
    } else if (bad) {
        snprintf(err, errlen, "HVD_SIM_FAIL is malformed (want op=probability[:code],...)");
        return false;
    }

    /* Crashes: one entry per kind, "before" and "after" may both be given for an
     * operation; a single draw picks at most one of them. */
    char crash[4][128];
    size_t n_crash = spec_lookup_all(getenv("HVD_SIM_CRASH"), op, crash, 4, &bad);
    if (bad) {
        snprintf(err, errlen, "HVD_SIM_CRASH is malformed (want op=probability:before|after,...)");
        return false;
    }
    double u = n_crash ? draw("crash", op, key, attempt) : 1.0, acc = 0.0;
    for (size_t i = 0; i < n_crash; i++) {
        SimCrash when = SIM_CRASH_NONE;
        if (parse_prob(crash[i], &p, &rest)) {
            if (strcmp(rest, ":before") == 0)
                when = SIM_CRASH_BEFORE;
            else if (strcmp(rest, ":after") == 0)
                when = SIM_CRASH_AFTER;
        }
        if (when == SIM_CRASH_NONE) {
            snprintf(err, errlen, "HVD_SIM_CRASH: bad entry for %s: '%s' (want probability:before|after)", op,
                     crash[i]);
            return false;
        }
        if (f->crash == SIM_CRASH_NONE && u < acc + p) f->crash = when;
        acc += p;
    }

    if (spec_lookup(getenv("HVD_SIM_HANG"), op, val, sizeof val, &bad)) {
        /* ":after": the effect is applied, then the answer never comes (a
         * lost answer, the case that makes an outcome unknown) */
        if (!parse_prob(val, &p, &rest) || (*rest && strcmp(rest, ":after") != 0 && strcmp(rest, ":before") != 0)) {
            snprintf(err, errlen, "HVD_SIM_HANG: bad entry for %s: '%s' (want probability[:before|:after])", op, val);
            return false;
        }
        bool after = strcmp(rest, ":after") == 0;
        bool hit = draw("hang", op, key, attempt) < p;
        f->hang = hit && !after;
        f->hang_after = hit && after;
    } else if (bad) {
        snprintf(err, errlen, "HVD_SIM_HANG is malformed (want op=probability[:before|:after],...)");
        return false;
    }

    /* HVD_SIM_OUTPUT_LINES: "op=N,..." or a bare N for every operation. */
    const char *lines = getenv("HVD_SIM_OUTPUT_LINES");
    if (lines && *lines && !strchr(lines, '=')) {
        snprintf(val, sizeof val, "%s", lines);
    } else if (!spec_lookup(lines, op, val, sizeof val, &bad)) {
        if (!bad) return true;
        snprintf(err, errlen, "HVD_SIM_OUTPUT_LINES is malformed (want N or op=N,...)");
        return false;
    }
    if (!parse_ms(val, &f->output_lines, &rest) || *rest || f->output_lines > 10000000) {
        snprintf(err, errlen, "HVD_SIM_OUTPUT_LINES: bad entry for %s: '%s' (want a count up to 10000000)", op, val);
        return false;
    }
    return true;

bad_latency:
    snprintf(err, errlen, "HVD_SIM_LATENCY_MS is malformed (want op=ms or op=min-max,...)");
    return false;
}
