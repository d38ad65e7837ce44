/* Private to common/agent (agent.c, agent_env.c, agent_reap.c). */
#ifndef HVD_AGENT_PRIV_H
#define HVD_AGENT_PRIV_H
#include <stddef.h>
#include <sys/types.h>

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

#endif
