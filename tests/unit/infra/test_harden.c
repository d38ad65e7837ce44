/* Process hardening (common/infra/harden.c), issue 12 item 8: a core dump
 * would hold decrypted passwords and the fleet's key. */
#include <criterion/criterion.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include "harden.h"

Test(harden, no_core_dumps_and_not_dumpable)
{
    cr_assert_eq(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), 0);
    cr_assert_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1, "dumpable before");
    char why[256];
    cr_assert(hvd_harden_process(why, sizeof why), "%s", why);
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_CORE, &rl), 0);
    cr_assert_eq(rl.rlim_cur, 0);
    cr_assert_eq(rl.rlim_max, 0);
    cr_assert_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0, "not dumpable after");
    cr_assert_str_eq(why, "");
    cr_assert(hvd_harden_process(NULL, 0), "again, without a reason buffer");
}
