/* The host-agent transport's configuration (agent.h): the command template,
 * per-operation timeouts, retryable codes and messages, the argv of a call. */
#include "agent.h"
#include "agent_priv.h"
#include "argv.h"
#include "buf.h"
#include "model.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOST_PLACEHOLDER "{host}"

static const HvdAgentTimeout DEFAULT_TIMEOUTS[] = {
    {"vm.create", 300 * 1000},      {"disk.create", 1800 * 1000}, {"nic.create", 120 * 1000},
    {"vm.initialize", 2400 * 1000}, {"vm.delete", 300 * 1000},
};

/* ---- configuration ---- */

void hvd_agent_cfg_init(HvdAgentCfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    memcpy(cfg->timeouts, DEFAULT_TIMEOUTS, sizeof DEFAULT_TIMEOUTS);
    cfg->n_timeouts = sizeof DEFAULT_TIMEOUTS / sizeof DEFAULT_TIMEOUTS[0];
    cfg->default_timeout_ms = HVD_AGENT_DEFAULT_TIMEOUT_MS;
    cfg->kill_grace_ms = HVD_AGENT_DEFAULT_GRACE_MS;
    cfg->eof_grace_ms = HVD_AGENT_DEFAULT_EOF_GRACE_MS;
    cfg->stderr_cap = HVD_AGENT_DEFAULT_STDERR_CAP;
    hvd_agent_cfg_set_retryable(cfg, HVD_AGENT_DEFAULT_RETRYABLE);
}

void hvd_agent_cfg_free(HvdAgentCfg *cfg)
{
    if (!cfg) return;
    agent_free_words(cfg->argv, cfg->argc);
    agent_free_words(cfg->retryable, cfg->n_retryable);
    agent_free_words(cfg->retryable_messages, cfg->n_retryable_messages);
    agent_free_words(cfg->env_pass, cfg->n_env_pass);
    memset(cfg, 0, sizeof *cfg);
}

bool hvd_agent_cfg_set_command(HvdAgentCfg *cfg, const char *tmpl, char *err, size_t errlen)
{
    size_t n = 0;
    char why[160];
    char **v = hvd_argv_split(tmpl, &n, why, sizeof why);
    if (!v) {
        snprintf(err, errlen, "the agent command cannot be split into words: %s", why);
        return false;
    }
    if (n == 0) {
        agent_free_words(v, n);
        snprintf(err, errlen,
                 "the agent command is empty: set HVD_AGENT_CMD to the agent's argv, e.g. "
                 "ssh -T {host} pwsh -NoProfile -File '\"C:/Program Files/Aether-V/hvdeploy-agent.ps1\"'");
        return false;
    }
    agent_free_words(cfg->argv, cfg->argc);
    cfg->argv = v;
    cfg->argc = n;
    return true;
}

bool hvd_agent_cfg_set_timeout(HvdAgentCfg *cfg, const char *operation, int64_t ms)
{
    if (ms <= 0) return false;
    if (!operation || strcmp(operation, "*") == 0) {
        cfg->default_timeout_ms = ms;
        return true;
    }
    if (!*operation || strlen(operation) >= sizeof cfg->timeouts[0].op) return false;
    for (size_t i = 0; i < cfg->n_timeouts; i++) {
        if (strcmp(cfg->timeouts[i].op, operation) == 0) {
            cfg->timeouts[i].ms = ms;
            return true;
        }
    }
    if (cfg->n_timeouts == HVD_AGENT_MAX_TIMEOUTS) return false;
    snprintf(cfg->timeouts[cfg->n_timeouts].op, sizeof cfg->timeouts[0].op, "%s", operation);
    cfg->timeouts[cfg->n_timeouts++].ms = ms;
    return true;
}

/* "300", "2.5" (seconds) or "500ms". */
static bool parse_duration_ms(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v <= 0) return false;
    double ms;
    if (strcmp(end, "ms") == 0)
        ms = v;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        ms = v * 1000.0;
    else
        return false;
    if (ms < 1 || ms > 7.0 * 24 * 3600 * 1000) return false;
    *out = (int64_t)ms;
    return true;
}

bool hvd_agent_cfg_parse_timeouts(HvdAgentCfg *cfg, const char *list, char *err, size_t errlen)
{
    HvdAgentCfg tmp = *cfg; /* shallow: only the timeout fields are touched */
    size_t n = 0;
    char **items = agent_split_words(list ? list : "", ", \t", &n);
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        char *eq = strchr(items[i], '=');
        int64_t ms = 0;
        if (!eq || eq == items[i] || !parse_duration_ms(eq + 1, &ms)) {
            snprintf(err, errlen, "bad agent timeout '%s': want operation=seconds (or =NNNms)", items[i]);
            ok = false;
            break;
        }
        *eq = '\0';
        if (!hvd_agent_cfg_set_timeout(&tmp, items[i], ms)) {
            snprintf(err, errlen, "bad agent timeout for '%s'", items[i]);
            ok = false;
        }
    }
    agent_free_words(items, n);
    if (ok) {
        memcpy(cfg->timeouts, tmp.timeouts, sizeof cfg->timeouts);
        cfg->n_timeouts = tmp.n_timeouts;
        cfg->default_timeout_ms = tmp.default_timeout_ms;
    }
    return ok;
}

void hvd_agent_cfg_set_retryable(HvdAgentCfg *cfg, const char *csv)
{
    agent_free_words(cfg->retryable, cfg->n_retryable);
    cfg->retryable = agent_split_words(csv ? csv : "", ", \t", &cfg->n_retryable);
}

int64_t hvd_agent_timeout_ms(const HvdAgentCfg *cfg, const char *operation)
{
    for (size_t i = 0; operation && i < cfg->n_timeouts; i++)
        if (strcmp(cfg->timeouts[i].op, operation) == 0) return cfg->timeouts[i].ms;
    return cfg->default_timeout_ms > 0 ? cfg->default_timeout_ms : HVD_AGENT_DEFAULT_TIMEOUT_MS;
}

void hvd_agent_cfg_set_retryable_messages(HvdAgentCfg *cfg, const char *const *texts, size_t n)
{
    agent_free_words(cfg->retryable_messages, cfg->n_retryable_messages);
    cfg->retryable_messages = hvd_xcalloc(n + 1, sizeof *cfg->retryable_messages);
    for (size_t i = 0; i < n; i++) cfg->retryable_messages[i] = hvd_xstrdup(texts[i]);
    cfg->n_retryable_messages = n;
}

bool hvd_agent_message_retryable(const HvdAgentCfg *cfg, const char *message)
{
    for (size_t i = 0; message && i < cfg->n_retryable_messages; i++)
        if (*cfg->retryable_messages[i] && strcasestr(message, cfg->retryable_messages[i])) return true;
    return false;
}

bool hvd_agent_code_retryable(const HvdAgentCfg *cfg, const char *code)
{
    for (size_t i = 0; code && i < cfg->n_retryable; i++)
        if (strcmp(cfg->retryable[i], code) == 0) return true;
    return false;
}

/* ---- argv ---- */

static char *substitute(const char *word, const char *host)
{
    HvdBuf b = {0};
    const char *p = word, *hit;
    while ((hit = strstr(p, HOST_PLACEHOLDER)) != NULL) {
        hvd_buf_append(&b, p, (size_t)(hit - p));
        hvd_buf_puts(&b, host);
        p = hit + strlen(HOST_PLACEHOLDER);
    }
    hvd_buf_puts(&b, p);
    return hvd_buf_steal(&b);
}

char **hvd_agent_argv(const HvdAgentCfg *cfg, const char *host, char *err, size_t errlen)
{
    if (!cfg->argv || cfg->argc == 0) {
        snprintf(err, errlen, "no agent command is configured");
        return NULL;
    }
    bool placeholder = false;
    for (size_t i = 0; i < cfg->argc; i++)
        if (strstr(cfg->argv[i], HOST_PLACEHOLDER)) placeholder = true;
    if (host && !hvd_hostname_valid(host)) {
        snprintf(err, errlen, "refusing to run the agent for host '%.80s': not a valid host name", host);
        return NULL;
    }
    if (!host && placeholder) {
        snprintf(err, errlen, "the agent command has {host} but no host was given");
        return NULL;
    }
    char **v = hvd_xcalloc(cfg->argc + 1, sizeof *v);
    for (size_t i = 0; i < cfg->argc; i++) v[i] = host ? substitute(cfg->argv[i], host) : hvd_xstrdup(cfg->argv[i]);
    v[cfg->argc] = NULL;
    return v;
}

void hvd_agent_argv_free(char **argv)
{
    if (!argv) return;
    for (char **p = argv; *p; p++) free(*p);
    free(argv);
}

void hvd_agent_result_free(HvdAgentResult *res)
{
    if (!res) return;
    hvd_node_free(res->envelope);
    free(res->stderr_tail);
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
}
