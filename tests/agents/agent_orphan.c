/* Test agent whose child outlives it: forks a grandchild that keeps stdout
 * and stderr open and sleeps 30 s (its pid written to PIDFILE), then answers
 * success and exits at once. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    char buf[4096];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {}
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        sleep(30);
        _exit(0);
    }
    if (argc > 1) {
        FILE *f = fopen(argv[1], "w");
        if (f) {
            fprintf(f, "%d\n", (int)pid);
            fclose(f);
        }
    }
    printf("{\"status\":\"success\",\"message\":\"left a child behind\",\"data\":{},\"code\":null,\"logs\":[]}\n");
    return 0;
}
