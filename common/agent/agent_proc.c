/* Starting an agent process (agent_priv.h): pipes kept clear of fds 0-2 and
 * closed on exec, posix_spawn in a process group of its own with default
 * signal dispositions, an explicit environment and no other descriptor. */
#include "agent_priv.h"
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

/* Keeps the pipe ends clear of 0-2 so that the dup2s in the child cannot
 * clobber one another when the caller runs with a standard fd closed. */
static int lift_fd(int fd)
{
    if (fd < 0 || fd > 2) return fd;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return nfd;
}

bool agent_make_pipe(int p[2])
{
    if (pipe2(p, O_CLOEXEC) != 0) return false;
    p[0] = lift_fd(p[0]);
    p[1] = lift_fd(p[1]);
    if (p[0] < 0 || p[1] < 0) {
        if (p[0] >= 0) close(p[0]);
        if (p[1] >= 0) close(p[1]);
        return false;
    }
    return true;
}

void agent_close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

void agent_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int agent_spawn(char **argv, char **envp, int in[2], int out[2], int err[2], pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, dfl;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    sigemptyset(&none);
    sigemptyset(&dfl);
    /* Only an ignored disposition survives exec; give the agent defaults. */
    static const int DFL[] = {SIGPIPE, SIGCHLD, SIGHUP,  SIGINT,  SIGQUIT, SIGTERM, SIGUSR1,
                              SIGUSR2, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU, SIGXFSZ};
    for (size_t i = 0; i < sizeof DFL / sizeof DFL[0]; i++) sigaddset(&dfl, DFL[i]);
    rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (!rc) rc = posix_spawnattr_setpgroup(&attr, 0);
    if (!rc) rc = posix_spawnattr_setsigmask(&attr, &none);
    if (!rc) rc = posix_spawnattr_setsigdefault(&attr, &dfl);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
        /* Every other descriptor of the caller stays out of the agent, even
     * one a library opened without O_CLOEXEC. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    if (!rc) rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    if (!rc) rc = posix_spawnp(pid, argv[0], &fa, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}
