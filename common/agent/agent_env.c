/* The agent's explicit environment (agent.h says what it holds): never the
 * worker's own, which carries the database and broker URLs. Also the word
 * splitting the configuration shares. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "agent.h"
#include "agent_priv.h"
#include "buf.h"

extern char **environ;

void agent_free_words(char **v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* Splits s on any of seps into words; returns the count via *n. */
char **agent_split_words(const char *s, const char *seps, size_t *n)
{
    size_t cap = 4, cnt = 0;
    char **v = hvd_xcalloc(cap + 1, sizeof *v);
    const char *p = s;
    while (p && *p) {
        p += strspn(p, seps);
        size_t len = strcspn(p, seps);
        if (len == 0) break;
        if (cnt == cap) {
            cap *= 2;
            v = hvd_xrealloc(v, (cap + 1) * sizeof *v);
        }
        v[cnt++] = hvd_xstrndup(p, len);
        p += len;
    }
    v[cnt] = NULL;
    *n = cnt;
    return v;
}

/* Names that never reach the agent: the worker's own credentials and
 * anything that looks like one. */
static bool env_name_denied(const char *name, size_t n)
{
    static const char *const prefixes[] = {"HVD_PG_DSN", "HVD_AMQP_URL"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (n >= strlen(prefixes[i]) && strncmp(name, prefixes[i], strlen(prefixes[i])) == 0) return true;
    static const char *const words[] = {"PASS", "SECRET", "KEY", "TOKEN", "CREDENTIAL"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t wl = strlen(words[i]);
        for (size_t k = 0; k + wl <= n; k++)
            if (strncasecmp(name + k, words[i], wl) == 0) return true;
    }
    return false;
}

/* Passed whenever set (HVD_SIM_* by prefix). */
static const char *const ENV_ALWAYS[] = {"PATH",         "HOME",          "SSH_AUTH_SOCK",
                                         "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"};

bool hvd_agent_cfg_set_env_pass(HvdAgentCfg *cfg, const char *csv, char *err, size_t errlen)
{
    size_t n = 0;
    char **v = agent_split_words(csv ? csv : "", ", \t", &n);
    for (size_t i = 0; i < n; i++) {
        bool name_ok = isalpha((unsigned char)v[i][0]) || v[i][0] == '_';
        for (const char *p = v[i]; *p; p++) name_ok &= isalnum((unsigned char)*p) || *p == '_';
        const char *why = !name_ok                              ? "is not an environment variable name"
                          : env_name_denied(v[i], strlen(v[i])) ? "may not be passed to the agent (credentials: "
                                                                  "HVD_PG_DSN*, HVD_AMQP_URL*, names with PASS, "
                                                                  "SECRET, KEY, TOKEN or CREDENTIAL)"
                                                                : NULL;
        if (why) {
            snprintf(err, errlen, "HVD_AGENT_ENV_PASS: '%.64s' %s", v[i], why);
            agent_free_words(v, n);
            return false;
        }
    }
    agent_free_words(cfg->env_pass, cfg->n_env_pass);
    cfg->env_pass = v;
    cfg->n_env_pass = n;
    return true;
}

static bool env_wanted(const HvdAgentCfg *cfg, const char *entry)
{
    const char *eq = strchr(entry, '=');
    if (!eq || eq == entry) return false;
    size_t n = (size_t)(eq - entry);
    if (env_name_denied(entry, n)) return false;
    if (strncmp(entry, "LANG=", 5) == 0 || strncmp(entry, "LC_ALL=", 7) == 0) return false; /* set below */
    if (n > 8 && strncmp(entry, "HVD_SIM_", 8) == 0) return true;
    for (size_t i = 0; i < sizeof ENV_ALWAYS / sizeof ENV_ALWAYS[0]; i++)
        if (strlen(ENV_ALWAYS[i]) == n && strncmp(entry, ENV_ALWAYS[i], n) == 0) return true;
    for (size_t i = 0; i < cfg->n_env_pass; i++)
        if (strlen(cfg->env_pass[i]) == n && strncmp(entry, cfg->env_pass[i], n) == 0) return true;
    return false;
}

char **hvd_agent_env(const HvdAgentCfg *cfg)
{
    size_t n = 0;
    while (environ && environ[n]) n++;
    char **env = hvd_xcalloc(n + 4, sizeof *env);
    size_t k = 0;
    bool path = false;
    for (size_t i = 0; i < n; i++) {
        if (!env_wanted(cfg, environ[i])) continue;
        path |= strncmp(environ[i], "PATH=", 5) == 0;
        env[k++] = environ[i];
    }
    if (!path) env[k++] = (char *)"PATH=/usr/local/bin:/usr/bin:/bin";
    env[k++] = (char *)"LANG=C.UTF-8";
    env[k++] = (char *)"LC_ALL=C.UTF-8";
    env[k] = NULL;
    return env;
}
