/* Test agent that hangs: reads its request, then sleeps forever without
 * answering. With --ignore-term it also ignores SIGTERM, so only SIGKILL
 * ends it. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--ignore-term") == 0) signal(SIGTERM, SIG_IGN);
    char buf[4096];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {}
    const char msg[] = "agent_hang: working...\n";
    if (write(STDOUT_FILENO, msg, sizeof msg - 1) < 0) return 1;
    for (;;) pause();
}
