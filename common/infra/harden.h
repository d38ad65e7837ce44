/* Process hardening at start, for the programs that hold secrets (the worker
 * and hvdeployctl): no core dumps (a dump would hold decrypted passwords and
 * the fleet's key) and no ptrace or /proc/PID/mem reading by other processes
 * of the same user (PR_SET_DUMPABLE 0). */
#ifndef HVD_HARDEN_H
#define HVD_HARDEN_H
#include <stdbool.h>
#include <stddef.h>

/* Sets RLIMIT_CORE to 0 and the process non-dumpable. Returns true when both
 * took; otherwise false with what failed in why (the caller warns: a sandbox
 * may forbid setrlimit, where the unit's LimitCORE=0 does the same). */
bool hvd_harden_process(char *why, size_t whylen);

#endif
