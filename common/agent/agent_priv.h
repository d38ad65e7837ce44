/* Private to common/agent: what agent.c, session.c and the agent_*.c share. */
#ifndef HVD_AGENT_PRIV_H
#define HVD_AGENT_PRIV_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "agent.h"

/* Splits s on any of seps into words (NULL-terminated vector, count in *n). */
char **agent_split_words(const char *s, const char *seps, size_t *n);
void agent_free_words(char **v, size_t n); /* NULL-safe */

/* Around a spawn: begin before posix_spawn, end after it with the new pid
 * (0 when the spawn failed). Between them the reaper cannot run, so it never
 * meets an agent that is not listed yet. */
void agent_live_spawn_begin(void);
void agent_live_spawn_end(pid_t pid);
/* After the agent was reaped by its call. */
void agent_live_remove(pid_t pid);

/* ---- agent_proc.c ---- */
/* A pipe with both ends above fd 2, close-on-exec. */
bool agent_make_pipe(int p[2]);
void agent_close_fd(int *fd); /* closes a descriptor >= 0 and sets it to -1 */
void agent_set_nonblock(int fd);
/* posix_spawnp of argv with envp in a new process group, in[0], out[1] and
 * err[1] as its 0-2, no other descriptor; returns 0 or an errno value. */
int agent_spawn(char **argv, char **envp, int in[2], int out[2], int err[2], pid_t *pid);

/* ---- agent_answer.c ---- */
/* An answer envelope for a request: cleaned (UTF-8, the secrets masked),
 * checked against the request, classified as §6 says; res takes env (freed on
 * a mismatch). False when it is not an answer to this request. */
bool agent_classify_answer(const HvdAgentCfg *cfg, const HvdAgentCallOpts *opts, const char *operation, HvdNode *env,
                           HvdAgentResult *res);
/* The stderr tail: from a character boundary when it was cut, no invalid
 * UTF-8 or NUL, the secrets masked. Caller frees. */
char *agent_clean_tail(const char *tail, size_t len, bool cut, const HvdAgentCallOpts *opts);

#endif
