/* Process hardening: no core dumps, not dumpable. */
#include "harden.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

bool hvd_harden_process(char *why, size_t whylen)
{
    bool ok = true;
    if (why && whylen) why[0] = '\0';
    const struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0) {
        if (why) snprintf(why, whylen, "cannot set RLIMIT_CORE to 0: %s", strerror(errno));
        ok = false;
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        size_t at = why ? strlen(why) : 0;
        if (why && at < whylen)
            snprintf(why + at, whylen - at, "%scannot clear PR_SET_DUMPABLE: %s", at ? "; " : "", strerror(errno));
        ok = false;
    }
    return ok;
}
