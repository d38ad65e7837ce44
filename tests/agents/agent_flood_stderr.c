/* Test agent that floods stderr (MIB mebibytes, default 8) before reading its
 * request and answering success: the caller must drain stderr while it waits,
 * and keep only its tail. The last stderr line is "TAIL-MARKER". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long mib = argc > 1 ? strtol(argv[1], NULL, 10) : 8;
    char line[1024];
    memset(line, 'e', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    for (long i = 0; i < mib * 1024; i++)
        if (write(STDERR_FILENO, line, sizeof line) <= 0) return 1;
    const char marker[] = "TAIL-MARKER\n";
    if (write(STDERR_FILENO, marker, sizeof marker - 1) <= 0) return 1;
    char buf[4096];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {}
    printf("{\"status\":\"success\",\"message\":\"after stderr flood\",\"data\":{},\"code\":null,\"logs\":[]}\n");
    return 0;
}
