/* Test agent that floods stdout: writes lines of noise past the 1 MiB cap
 * (forever by default; with an argument, that many bytes and then a valid
 * envelope, which must still be refused). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long long limit = argc > 1 ? strtoll(argv[1], NULL, 10) : -1;
    char line[1024];
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    long long sent = 0;
    while (limit < 0 || sent < limit) {
        ssize_t n = write(STDOUT_FILENO, line, sizeof line);
        if (n <= 0) return 1;
        sent += n;
    }
    printf("{\"status\":\"success\",\"message\":\"after the flood\",\"data\":{},\"code\":null,\"logs\":[]}\n");
    return 0;
}
