/* Test agent that never reads stdin: sleeps MS milliseconds (default 300),
 * writes a valid success envelope and exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    long ms = argc > 1 ? strtol(argv[1], NULL, 10) : 300;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    printf("{\"status\":\"success\",\"message\":\"did not read stdin\",\"data\":{},\"code\":null,\"logs\":[]}\n");
    return 0;
}
