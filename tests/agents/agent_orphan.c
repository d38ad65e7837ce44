/* Test agent whose child outlives it: forks a grandchild that keeps stdout
 * and stderr open and sleeps 30 s (its pid written to PIDFILE), then answers
 * success and exits at once. With a second argument "setsid" the grandchild
 * calls setsid() first, escaping the process-group kill, closes the pipes
 * (so the call ends at once) and its pid is appended to PIDFILE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    char buf[4096];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {}
    int escape = argc > 2 && strcmp(argv[2], "setsid") == 0;
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        if (escape) {
            setsid();
            close(STDOUT_FILENO);
            close(STDERR_FILENO);
        }
        sleep(30);
        _exit(0);
    }
    if (argc > 1) {
        FILE *f = fopen(argv[1], escape ? "a" : "w");
        if (f) {
            fprintf(f, "%d\n", (int)pid);
            fclose(f);
        }
    }
    printf("{\"status\":\"success\",\"message\":\"left a child behind\",\"data\":{},\"code\":null,\"logs\":[]}\n");
    return 0;
}
