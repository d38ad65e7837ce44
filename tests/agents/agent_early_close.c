/* Test agent that closes stdout early and keeps running.
 *   agent_early_close answer MS  : answers success, closes stdout and stderr,
 *                                  sleeps MS milliseconds, exits 0
 *   agent_early_close silent     : closes stdout without answering, sleeps forever */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "answer";
    long ms = argc > 2 ? strtol(argv[2], NULL, 10) : 1000;
    char buf[4096];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {}
    if (strcmp(mode, "answer") == 0) {
        printf("{\"status\":\"success\",\"message\":\"answered early\",\"data\":{},\"code\":null,\"logs\":[]}\n");
        fflush(stdout);
    }
    close(STDOUT_FILENO);
    close(STDERR_FILENO);
    if (strcmp(mode, "answer") != 0)
        for (;;) pause();
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return 0;
}
