/* A deliberately broken agent for `hvdeployctl agent-check`: it answers
 * every operation, unknown ones included, with success, and never echoes
 * the correlation id (it sends a fixed one). */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    char buf[4096];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {}
    printf("{\"status\":\"success\",\"message\":\"whatever you asked, done\",\"data\":{\"vm_id\":"
           "\"00000000-0000-4000-8000-000000000000\"},\"code\":null,\"logs\":[],\"correlation_id\":\"fixed\"}\n");
    return 0;
}
