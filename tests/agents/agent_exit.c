/* Test agent with a chosen exit status: agent_exit CODE none|envelope
 * [STATUS [AGENT_CODE]] reads its request, prints an envelope (status
 * default "error", code default OPERATION_ERROR) or nothing, and exits CODE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int code = argc > 1 ? atoi(argv[1]) : 1;
    const char *mode = argc > 2 ? argv[2] : "none";
    const char *status = argc > 3 ? argv[3] : "error";
    const char *acode = argc > 4 ? argv[4] : "OPERATION_ERROR";
    char buf[4096];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {}
    fprintf(stderr, "agent_exit: exiting %d\n", code);
    if (strcmp(mode, "envelope") == 0)
        printf("{\"status\":\"%s\",\"message\":\"Operation error: simulated\",\"data\":{},\"code\":\"%s\","
               "\"logs\":[]}\n",
               status, acode);
    else
        printf("some output that is not an answer\n");
    fflush(stdout);
    return code;
}
