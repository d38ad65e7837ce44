/* Config: defaults, layers (file < env < flags), *_FILE credentials, every
 * bad value's one-line error, masking, --help and the env example. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "codec.h"
#include "config.h"
#include "model.h"

static char err[512];

/* The developer's own HVD_* variables must not leak into a test. */
static void clean_env(void)
{
    for (size_t i = 0; hvd_config_var_name(i); i++) unsetenv(hvd_config_var_name(i));
}

static void setup(void)
{
    clean_env();
    err[0] = '\0';
}

TestSuite(config, .init = setup);

static int load(HvdConfig *cfg, const char *program, ...)
{
    char *argv[32] = {(char *)program};
    int argc = 1;
    va_list ap;
    va_start(ap, program);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 31) argv[argc++] = (char *)a;
    va_end(ap);
    return hvd_config_load(cfg, argc, argv, program, err, sizeof err);
}

static char *write_temp(const char *content)
{
    char *path = strdup("/tmp/hvd-test-config-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return path;
}

Test(config, defaults)
{
    HvdConfig c;
    cr_assert_eq(load(&c, "hvdeployctl", NULL), 0, "%s", err);
    cr_assert_str_eq(c.amqp_url, "amqp://guest:guest@localhost:5672/%2f");
    cr_assert_str_eq(c.pg_dsn, "postgresql://localhost/hvdeploy");
    cr_assert_str_eq(c.agent_cmd, "");
    cr_assert_eq(c.concurrency, 8);
    cr_assert_eq(c.host_concurrency, 1);
    cr_assert_eq(c.allowed_hosts.n, 0);
    cr_assert_eq(c.max_attempts, 5);
    cr_assert_eq(c.retry_delays.n, 4);
    cr_assert_eq(c.retry_delays.v[0], 5);
    cr_assert_eq(c.retry_delays.v[1], 30);
    cr_assert_eq(c.retry_delays.v[2], 120);
    cr_assert_eq(c.retry_delays.v[3], 600);
    cr_assert_str_eq(c.amqp_prefix, "hvdeploy");
    cr_assert_str_eq(c.metrics_addr, "127.0.0.1:9464");
    cr_assert_eq(c.log_level, HVD_LOG_INFO);
    cr_assert_str_eq(c.secret_key_file, "");
    cr_assert_eq(c.lease_ttl, 30);
    cr_assert_eq(c.shutdown_grace, 30);
    cr_assert_eq(c.agent_retryable_codes.n, 2);
    cr_assert_str_eq(c.agent_retryable_codes.v[0], "HOST_BUSY");
    cr_assert_str_eq(c.agent_retryable_codes.v[1], "TRANSIENT");
    cr_assert(hvd_config_code_retryable(&c, "TRANSIENT"));
    cr_assert(!hvd_config_code_retryable(&c, "VM_EXISTS"));
    cr_assert_eq(hvd_config_agent_timeout(&c, "vm.create"), 300);
    cr_assert_eq(hvd_config_agent_timeout(&c, "disk.create"), 1800);
    cr_assert_eq(hvd_config_agent_timeout(&c, "nic.create"), 120);
    cr_assert_eq(hvd_config_agent_timeout(&c, "vm.initialize"), 2400);
    cr_assert_eq(hvd_config_agent_timeout(&c, "vm.delete"), 300);
    cr_assert_eq(hvd_config_agent_timeout(&c, "something.else"), HVD_AGENT_TIMEOUT_FALLBACK);
    cr_assert_eq(c.agent_kill_grace, 2);
    cr_assert_eq(c.sweep_interval, 5);
    cr_assert_eq(c.heartbeat, 30);
    cr_assert_eq(c.pg_pool_size, 4);
    cr_assert_eq(c.secret_retention, 604800);
    char expect[300];
    char host[256];
    gethostname(host, sizeof host);
    host[255] = '\0';
    snprintf(expect, sizeof expect, "%s:%ld", host, (long)getpid());
    cr_assert_str_eq(c.worker_id, expect);
    cr_assert_str_eq(c.amqp_ca_file, "");
    cr_assert(c.amqp_verify);
    cr_assert(!c.print_config);
    hvd_config_free(&c);
    cr_assert_null(c.amqp_url);
    hvd_config_free(&c); /* twice is fine */
    hvd_config_free(NULL);
}

Test(config, worker_requires_agent_cmd_and_key_file)
{
    HvdConfig c;
    cr_assert_eq(load(&c, "hvdeploy-worker", NULL), -1);
    cr_assert_str_eq(err, "HVD_AGENT_CMD is required: set it in the environment, the config file or with --agent-cmd");
    hvd_config_free(&c);
    setenv("HVD_AGENT_CMD", "/bin/true", 1);
    cr_assert_eq(load(&c, "/usr/bin/hvdeploy-worker", NULL), -1);
    cr_assert_str_eq(err, "HVD_SECRET_KEY_FILE is required: set it in the environment, the config file or with "
                          "--secret-key-file");
    hvd_config_free(&c);
    cr_assert_eq(load(&c, "hvdeploy-worker", "--secret-key-file", "/k", NULL), 0, "%s", err);
    cr_assert_str_eq(c.agent_cmd, "/bin/true");
    cr_assert_str_eq(c.secret_key_file, "/k");
    hvd_config_free(&c);
    /* a blank value is as good as none */
    setenv("HVD_AGENT_CMD", "   ", 1);
    cr_assert_eq(load(&c, "hvdeploy-worker", "--secret-key-file", "/k", NULL), -1);
    cr_assert(strstr(err, "HVD_AGENT_CMD is required"));
    hvd_config_free(&c);
    /* the CLI needs neither, but a subcommand can ask */
    cr_assert_eq(load(&c, "hvdeployctl", NULL), 0);
    cr_assert_eq(hvd_config_require(&c, "HVD_PG_DSN", err, sizeof err), 0);
    cr_assert_eq(hvd_config_require(&c, "HVD_SECRET_KEY_FILE", err, sizeof err), -1);
    cr_assert_str_eq(err, "HVD_SECRET_KEY_FILE is required: set it in the environment, the config file or with "
                          "--secret-key-file");
    hvd_config_free(&c);
}

Test(config, environment)
{
    setenv("HVD_CONCURRENCY", "16", 1);
    setenv("HVD_ALLOWED_HOSTS", "HV01.Lab.Example, hv02 ,10.0.0.5", 1);
    setenv("HVD_RETRY_DELAYS", "60, 5,3600", 1);
    setenv("HVD_LOG_LEVEL", "DEBUG", 1);
    setenv("HVD_METRICS_ADDR", "", 1);
    setenv("HVD_AMQP_VERIFY", "no", 1);
    setenv("HVD_SECRET_RETENTION", "2d", 1);
    setenv("HVD_SHUTDOWN_GRACE", "5m", 1);
    setenv("HVD_AGENT_TIMEOUTS", "disk.create=1h,default=45", 1);
    setenv("HVD_AGENT_RETRYABLE_CODES", "", 1);
    setenv("HVD_WORKER_ID", "w-1", 1);
    setenv("HVD_SECRET_OLD_KEY_FILES", "/a.key,/b.key", 1);
    HvdConfig c;
    cr_assert_eq(load(&c, "hvdeployctl", NULL), 0, "%s", err);
    cr_assert_eq(c.concurrency, 16);
    cr_assert_eq(c.allowed_hosts.n, 3);
    cr_assert_str_eq(c.allowed_hosts.v[0], "hv01.lab.example");
    cr_assert_str_eq(c.allowed_hosts.v[1], "hv02");
    cr_assert_str_eq(c.allowed_hosts.v[2], "10.0.0.5");
    cr_assert_null(c.allowed_hosts.v[3]);
    cr_assert_eq(c.retry_delays.n, 3);
    cr_assert_eq(c.retry_delays.v[0], 60);
    cr_assert_eq(c.retry_delays.v[2], 3600);
    cr_assert_eq(c.log_level, HVD_LOG_DEBUG);
    cr_assert_str_eq(c.metrics_addr, "");
    cr_assert(!c.amqp_verify);
    cr_assert_eq(c.secret_retention, 172800);
    cr_assert_eq(c.shutdown_grace, 300);
    cr_assert_eq(hvd_config_agent_timeout(&c, "disk.create"), 3600);
    cr_assert_eq(hvd_config_agent_timeout(&c, "vm.create"), 300); /* the other defaults stay */
    cr_assert_eq(hvd_config_agent_timeout(&c, "other"), 45);
    cr_assert_eq(c.agent_retryable_codes.n, 0);
    cr_assert(!hvd_config_code_retryable(&c, "HOST_BUSY"));
    cr_assert_str_eq(c.worker_id, "w-1");
    cr_assert_eq(c.secret_old_key_files.n, 2);
    cr_assert_str_eq(c.secret_old_key_files.v[1], "/b.key");
    hvd_config_free(&c);
}

Test(config, flags_override_environment)
{
    setenv("HVD_CONCURRENCY", "16", 1);
    setenv("HVD_HOST_CONCURRENCY", "3", 1);
    setenv("HVD_AMQP_VERIFY", "true", 1);
    HvdConfig c;
    cr_assert_eq(load(&c, "hvdeployctl", "--concurrency", "32", "--lease-ttl=90", "--no-amqp-verify", "--print-config",
                      "--amqp-prefix", "fleet2", NULL),
                 0, "%s", err);
    cr_assert_eq(c.concurrency, 32);
    cr_assert_eq(c.host_concurrency, 3);
    cr_assert_eq(c.lease_ttl, 90);
    cr_assert(!c.amqp_verify);
    cr_assert(c.print_config);
    cr_assert_str_eq(c.amqp_prefix, "fleet2");
    hvd_config_free(&c);
    setenv("HVD_AMQP_VERIFY", "false", 1);
    cr_assert_eq(load(&c, "hvdeployctl", "--amqp-verify", NULL), 0, "%s", err);
    cr_assert(c.amqp_verify);
    hvd_config_free(&c);
    cr_assert_eq(load(&c, "hvdeployctl", "--amqp-verify=off", NULL), 0, "%s", err);
    cr_assert(!c.amqp_verify);
    hvd_config_free(&c);
}

Test(config, config_file_is_lowest)
{
    char *path = write_temp("# a comment\n"
                            "\n"
                            "HVD_CONCURRENCY=3\n"
                            "export HVD_HOST_CONCURRENCY = 2\n"
                            "HVD_AGENT_CMD=\"/usr/bin/agent --x {host}\"\n"
                            "HVD_AMQP_PREFIX='fromfile'\n"
                            "NOT_OURS=whatever\n");
    setenv("HVD_CONFIG_FILE", path, 1);
    setenv("HVD_CONCURRENCY", "5", 1);
    HvdConfig c;
    cr_assert_eq(load(&c, "hvdeployctl", "--amqp-prefix", "fromflag", NULL), 0, "%s", err);
    cr_assert_eq(c.concurrency, 5);      /* env beats file */
    cr_assert_eq(c.host_concurrency, 2); /* file beats default */
    cr_assert_str_eq(c.agent_cmd, "/usr/bin/agent --x {host}");
    cr_assert_str_eq(c.amqp_prefix, "fromflag"); /* flag beats file */
    cr_assert_str_eq(c.config_file, path);
    hvd_config_free(&c);

    /* --config-file works too, and a bad value in the file names the line */
    unsetenv("HVD_CONFIG_FILE");
    char *bad = write_temp("HVD_HOST_CONCURRENCY=2\nHVD_MAX_ATTEMPTS=0\n");
    cr_assert_eq(load(&c, "hvdeployctl", "--config-file", bad, NULL), -1);
    char expect[512];
    snprintf(expect, sizeof expect, "HVD_MAX_ATTEMPTS: '0' is not a whole number between 1 and 100 (from %s:2)", bad);
    cr_assert_str_eq(err, expect);
    hvd_config_free(&c);

    char *unknown = write_temp("HVD_CONCURENCY=4\n");
    cr_assert_eq(load(&c, "hvdeployctl", "--config-file", unknown, NULL), -1);
    snprintf(expect, sizeof expect, "HVD_CONFIG_FILE %s:1: unknown setting 'HVD_CONCURENCY' (see --help)", unknown);
    cr_assert_str_eq(err, expect);
    hvd_config_free(&c);

    char *noeq = write_temp("HVD_CONCURRENCY\n");
    cr_assert_eq(load(&c, "hvdeployctl", "--config-file", noeq, NULL), -1);
    snprintf(expect, sizeof expect, "HVD_CONFIG_FILE %s:1: expected KEY=VALUE", noeq);
    cr_assert_str_eq(err, expect);
    hvd_config_free(&c);

    cr_assert_eq(load(&c, "hvdeployctl", "--config-file", "/nonexistent/hvd.env", NULL), -1);
    cr_assert_str_eq(err, "HVD_CONFIG_FILE /nonexistent/hvd.env: cannot read: No such file or directory");
    hvd_config_free(&c);
    unlink(path);
    unlink(bad);
    unlink(unknown);
    unlink(noeq);
    free(path);
    free(bad);
    free(unknown);
    free(noeq);
}

Test(config, credential_files)
{
    char *amqp = write_temp("  amqps://svc:s3cr3t@rabbit.example:5671/prod \n\n");
    char *pg = write_temp("host=db.example dbname=hvdeploy password='p w' sslmode=verify-full\n");
    setenv("HVD_AMQP_URL", "amqp://other:x@h/", 1);
    setenv("HVD_AMQP_URL_FILE", amqp, 1);
    HvdConfig c;
    cr_assert_eq(load(&c, "hvdeployctl", "--pg-dsn-file", pg, "--pg-dsn", "host=ignored", NULL), 0, "%s", err);
    cr_assert_str_eq(c.amqp_url, "amqps://svc:s3cr3t@rabbit.example:5671/prod"); /* trimmed, wins */
    cr_assert_str_eq(c.pg_dsn, "host=db.example dbname=hvdeploy password='p w' sslmode=verify-full");
    cr_assert_str_eq(c.amqp_url_file, amqp);
    hvd_config_free(&c);

    setenv("HVD_AMQP_URL_FILE", "/nonexistent/amqp-url", 1);
    cr_assert_eq(load(&c, "hvdeployctl", NULL), -1);
    cr_assert_str_eq(err, "HVD_AMQP_URL_FILE /nonexistent/amqp-url: cannot read: No such file or directory");
    hvd_config_free(&c);

    char *empty = write_temp(" \n");
    setenv("HVD_AMQP_URL_FILE", empty, 1);
    cr_assert_eq(load(&c, "hvdeployctl", NULL), -1);
    char expect[300];
    snprintf(expect, sizeof expect, "HVD_AMQP_URL_FILE %s: the file is empty", empty);
    cr_assert_str_eq(err, expect);
    hvd_config_free(&c);

    /* a bad URL from a file is reported masked */
    char *badurl = write_temp("http://u:topsecret@h/\n");
    setenv("HVD_AMQP_URL_FILE", badurl, 1);
    cr_assert_eq(load(&c, "hvdeployctl", NULL), -1);
    snprintf(
        expect, sizeof expect,
        "HVD_AMQP_URL: 'http://u:***@h/' is not an AMQP URL (amqp://user:password@host:port/vhost or amqps://...) (from HVD_AMQP_URL_FILE %s)",
        badurl);
    cr_assert_str_eq(err, expect);
    cr_assert_null(strstr(err, "topsecret"));
    hvd_config_free(&c);
    unlink(amqp);
    unlink(pg);
    unlink(empty);
    unlink(badurl);
    free(amqp);
    free(pg);
    free(empty);
    free(badurl);
}

/* Every kind of bad value, each with its exact one-line error. */
Test(config, bad_values_exact_errors)
{
    static const struct {
        const char *var, *value, *error;
    } cases[] = {
        {"HVD_CONCURRENCY", "abc", "HVD_CONCURRENCY: 'abc' is not a whole number between 1 and 1024"},
        {"HVD_CONCURRENCY", "0", "HVD_CONCURRENCY: '0' is not a whole number between 1 and 1024"},
        {"HVD_CONCURRENCY", "1025", "HVD_CONCURRENCY: '1025' is not a whole number between 1 and 1024"},
        {"HVD_CONCURRENCY", "12abc", "HVD_CONCURRENCY: '12abc' is not a whole number between 1 and 1024"},
        {"HVD_CONCURRENCY", "", "HVD_CONCURRENCY: '' is not a whole number between 1 and 1024"},
        {"HVD_CONCURRENCY", " 8", "HVD_CONCURRENCY: ' 8' is not a whole number between 1 and 1024"},
        {"HVD_CONCURRENCY", "99999999999999999999",
         "HVD_CONCURRENCY: '99999999999999999999' is not a whole number between 1 and 1024"},
        {"HVD_HOST_CONCURRENCY", "-1", "HVD_HOST_CONCURRENCY: '-1' is not a whole number between 1 and 1024"},
        {"HVD_MAX_ATTEMPTS", "101", "HVD_MAX_ATTEMPTS: '101' is not a whole number between 1 and 100"},
        {"HVD_PG_POOL_SIZE", "0", "HVD_PG_POOL_SIZE: '0' is not a whole number between 1 and 64"},
        {"HVD_LEASE_TTL", "0", "HVD_LEASE_TTL: '0' is not a duration of 1 to 86400 seconds (e.g. 30, 30s, 5m, 2h, 7d)"},
        {"HVD_LEASE_TTL", "10x",
         "HVD_LEASE_TTL: '10x' is not a duration of 1 to 86400 seconds (e.g. 30, 30s, 5m, 2h, 7d)"},
        {"HVD_SHUTDOWN_GRACE", "2d",
         "HVD_SHUTDOWN_GRACE: '2d' is not a duration of 0 to 86400 seconds (e.g. 30, 30s, 5m, 2h, 7d)"},
        {"HVD_SWEEP_INTERVAL", "-5",
         "HVD_SWEEP_INTERVAL: '-5' is not a duration of 1 to 3600 seconds (e.g. 30, 30s, 5m, 2h, 7d)"},
        {"HVD_HEARTBEAT", "1.5",
         "HVD_HEARTBEAT: '1.5' is not a duration of 0 to 3600 seconds (e.g. 30, 30s, 5m, 2h, 7d)"},
        {"HVD_AGENT_KILL_GRACE", "301",
         "HVD_AGENT_KILL_GRACE: '301' is not a duration of 0 to 300 seconds (e.g. 30, 30s, 5m, 2h, 7d)"},
        {"HVD_SECRET_RETENTION", "forever",
         "HVD_SECRET_RETENTION: 'forever' is not a duration of 0 to 315360000 seconds (e.g. 30, 30s, 5m, 2h, 7d)"},
        {"HVD_AMQP_VERIFY", "maybe", "HVD_AMQP_VERIFY: 'maybe' is not a boolean (true or false)"},
        {"HVD_LOG_LEVEL", "verbose", "HVD_LOG_LEVEL: 'verbose' is not one of debug, info, warn, error"},
        {"HVD_AGENT_PROFILE", "idempotency,teleport",
         "HVD_AGENT_PROFILE: 'idempotency,teleport' is not auto, raw, hvdeploy or a list of idempotency, probe, "
         "session, output"},
        {"HVD_AGENT_PROFILE", "",
         "HVD_AGENT_PROFILE: '' is not auto, raw, hvdeploy or a list of idempotency, probe, "
         "session, output"},
        {"HVD_RETRY_DELAYS", "5,x",
         "HVD_RETRY_DELAYS: '5,x' is not a comma list of 1 to 16 whole numbers between 1 and 86400"},
        {"HVD_RETRY_DELAYS", "0",
         "HVD_RETRY_DELAYS: '0' is not a comma list of 1 to 16 whole numbers between 1 and 86400"},
        {"HVD_RETRY_DELAYS", "86401",
         "HVD_RETRY_DELAYS: '86401' is not a comma list of 1 to 16 whole numbers between 1 and 86400"},
        {"HVD_RETRY_DELAYS", "",
         "HVD_RETRY_DELAYS: '' is not a comma list of 1 to 16 whole numbers between 1 and 86400"},
        {"HVD_RETRY_DELAYS", "5,,30",
         "HVD_RETRY_DELAYS: '5,,30' is not a comma list of 1 to 16 whole numbers between 1 and 86400"},
        {"HVD_RETRY_DELAYS", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
         "HVD_RETRY_DELAYS: '1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17' is not a comma list of 1 to 16 whole numbers between 1 and 86400"},
        {"HVD_ALLOWED_HOSTS", "hv01,bad_host",
         "HVD_ALLOWED_HOSTS: 'bad_host' is not a valid hostname or IPv4 address (in 'hv01,bad_host')"},
        {"HVD_ALLOWED_HOSTS", "hv01,-x",
         "HVD_ALLOWED_HOSTS: '-x' is not a valid hostname or IPv4 address (in 'hv01,-x')"},
        {"HVD_ALLOWED_HOSTS", "10.0.0.256",
         "HVD_ALLOWED_HOSTS: '10.0.0.256' is not a valid hostname or IPv4 address (in '10.0.0.256')"},
        {"HVD_ALLOWED_HOSTS", "hv01,,hv02",
         "HVD_ALLOWED_HOSTS: 'hv01,,hv02' has an empty entry; expected a comma list of host names"},
        {"HVD_AGENT_RETRYABLE_CODES", "HOST BUSY",
         "HVD_AGENT_RETRYABLE_CODES: 'HOST BUSY' is not an agent code (letters, digits, '.', '_', '-') (in 'HOST BUSY')"},
        {"HVD_AGENT_TIMEOUTS", "vm.create=abc",
         "HVD_AGENT_TIMEOUTS: 'vm.create=abc' is not OP=SECONDS with OP one of vm.create, disk.create, nic.create, vm.initialize, vm.delete, default and SECONDS 1 to 86400"},
        {"HVD_AGENT_TIMEOUTS", "vm.create=60,vm.explode=5",
         "HVD_AGENT_TIMEOUTS: 'vm.explode=5' is not OP=SECONDS with OP one of vm.create, disk.create, nic.create, vm.initialize, vm.delete, default and SECONDS 1 to 86400"},
        {"HVD_AGENT_TIMEOUTS", "vm.create",
         "HVD_AGENT_TIMEOUTS: 'vm.create' is not OP=SECONDS with OP one of vm.create, disk.create, nic.create, vm.initialize, vm.delete, default and SECONDS 1 to 86400"},
        {"HVD_METRICS_ADDR", "9464",
         "HVD_METRICS_ADDR: '9464' is not HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464), or empty to disable"},
        {"HVD_METRICS_ADDR", "127.0.0.1:0",
         "HVD_METRICS_ADDR: '127.0.0.1:0' is not HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464), or empty to disable"},
        {"HVD_METRICS_ADDR", "127.0.0.1:65536",
         "HVD_METRICS_ADDR: '127.0.0.1:65536' is not HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464), or empty to disable"},
        {"HVD_METRICS_ADDR", "::1:9464",
         "HVD_METRICS_ADDR: '::1:9464' is not HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464), or empty to disable"},
        {"HVD_AMQP_PREFIX", "a b",
         "HVD_AMQP_PREFIX: 'a b' is not a name of 1 to 100 letters, digits, '.', '_', ':' or '-'"},
        {"HVD_AMQP_PREFIX", "", "HVD_AMQP_PREFIX: '' is not a name of 1 to 100 letters, digits, '.', '_', ':' or '-'"},
        {"HVD_AMQP_URL", "http://guest:hunter2@h/",
         "HVD_AMQP_URL: 'http://guest:***@h/' is not an AMQP URL (amqp://user:password@host:port/vhost or amqps://...)"},
        {"HVD_PG_DSN", "host=db password=hunter2 dbname",
         "HVD_PG_DSN: 'host=db password=*** ***' is not a libpq connection string (postgresql://host/db or host=... dbname=...)"},
        {"HVD_PG_DSN", "",
         "HVD_PG_DSN: '' is not a libpq connection string (postgresql://host/db or host=... dbname=...)"},
        {"HVD_CONCURRENCY", "a\nb", "HVD_CONCURRENCY: 'a?b' is not a whole number between 1 and 1024"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        clean_env();
        setenv(cases[i].var, cases[i].value, 1);
        HvdConfig c;
        err[0] = '\0';
        int rc = load(&c, "hvdeployctl", NULL);
        cr_expect_eq(rc, -1, "%s=%s accepted", cases[i].var, cases[i].value);
        cr_expect_str_eq(err, cases[i].error, "%s=%s", cases[i].var, cases[i].value);
        cr_expect_null(strchr(err, '\n'));
        cr_expect_null(strstr(err, "hunter2"));
        hvd_config_free(&c);
    }
}

Test(config, good_edge_values)
{
    static const struct {
        const char *var, *value;
    } cases[] = {
        {"HVD_CONCURRENCY", "1"},
        {"HVD_CONCURRENCY", "1024"},
        {"HVD_METRICS_ADDR", "[::1]:9464"},
        {"HVD_METRICS_ADDR", "0.0.0.0:1"},
        {"HVD_METRICS_ADDR", "localhost:65535"},
        {"HVD_LEASE_TTL", "1d"},
        {"HVD_SHUTDOWN_GRACE", "0"},
        {"HVD_HEARTBEAT", "0"},
        {"HVD_ALLOWED_HOSTS", ""},
        {"HVD_ALLOWED_HOSTS", "a,b-c.d,10.1.2.3"},
        {"HVD_PG_DSN", "host=/var/run/postgresql dbname=x"},
        {"HVD_AMQP_URL", "amqps://u:p@h:5671/v"},
        {"HVD_LOG_LEVEL", "warning"},
        {"HVD_AMQP_VERIFY", "0"},
        {"HVD_RETRY_DELAYS", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        clean_env();
        setenv(cases[i].var, cases[i].value, 1);
        HvdConfig c;
        cr_expect_eq(load(&c, "hvdeployctl", NULL), 0, "%s=%s: %s", cases[i].var, cases[i].value, err);
        hvd_config_free(&c);
    }
}

Test(config, tls_cert_and_key_go_together)
{
    setenv("HVD_AMQP_CERT_FILE", "/c.pem", 1);
    HvdConfig c;
    cr_assert_eq(load(&c, "hvdeployctl", NULL), -1);
    cr_assert_str_eq(err, "HVD_AMQP_CERT_FILE and HVD_AMQP_KEY_FILE go together: set both or neither");
    hvd_config_free(&c);
    cr_assert_eq(load(&c, "hvdeployctl", "--amqp-key-file", "/k.pem", "--amqp-ca-file", "/ca.pem", NULL), 0, "%s", err);
    cr_assert_str_eq(c.amqp_cert_file, "/c.pem");
    cr_assert_str_eq(c.amqp_key_file, "/k.pem");
    cr_assert_str_eq(c.amqp_ca_file, "/ca.pem");
    hvd_config_free(&c);
}

Test(config, argument_errors)
{
    HvdConfig c;
    cr_assert_eq(load(&c, "hvdeploy-worker", "--concurency", "4", NULL), -1);
    cr_assert_str_eq(err, "unknown option '--concurency' (see hvdeploy-worker --help)");
    hvd_config_free(&c);
    cr_assert_eq(load(&c, "hvdeploy-worker", "extra", NULL), -1);
    cr_assert_str_eq(err, "unexpected argument 'extra' (see hvdeploy-worker --help)");
    hvd_config_free(&c);
    cr_assert_eq(load(&c, "hvdeploy-worker", "--concurrency", NULL), -1);
    cr_assert_str_eq(err, "--concurrency needs a value (N)");
    hvd_config_free(&c);
    cr_assert_eq(load(&c, "hvdeploy-worker", "--concurrency", "many", NULL), -1);
    cr_assert_str_eq(err, "HVD_CONCURRENCY: 'many' is not a whole number between 1 and 1024 (from --concurrency)");
    hvd_config_free(&c);
    cr_assert_eq(load(&c, "hvdeploy-worker", "--no-concurrency", NULL), -1);
    cr_assert_str_eq(err, "unknown option '--no-concurrency' (see hvdeploy-worker --help)");
    hvd_config_free(&c);
}

Test(config, help_returns_1_before_validation)
{
    setenv("HVD_CONCURRENCY", "bad", 1);
    fflush(stdout);
    int saved = dup(1);
    FILE *devnull = freopen("/dev/null", "w", stdout);
    cr_assert_not_null(devnull);
    HvdConfig c;
    int rc = load(&c, "hvdeploy-worker", "--help", NULL);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    cr_assert_eq(rc, 1);
    hvd_config_free(&c);
}

Test(config, subcommand_keeps_its_own_arguments)
{
    char *argv[] = {"status", "--pg-dsn",        "host=db1", "--output",   "json", "--help",
                    "JOB",    "--concurrency=2", "--",       "--amqp-url", NULL};
    int argc = 10;
    HvdConfig c;
    int rc =
        hvd_config_load_args(&c, &argc, argv, "hvdeployctl", HVD_CFG_KEEP_UNKNOWN | HVD_CFG_NO_HELP, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(c.pg_dsn, "host=db1");
    cr_assert_eq(c.concurrency, 2);
    cr_assert_eq(argc, 7);
    cr_assert_str_eq(argv[0], "status");
    cr_assert_str_eq(argv[1], "--output");
    cr_assert_str_eq(argv[2], "json");
    cr_assert_str_eq(argv[3], "--help");
    cr_assert_str_eq(argv[4], "JOB");
    cr_assert_str_eq(argv[5], "--");
    cr_assert_str_eq(argv[6], "--amqp-url");
    cr_assert_null(argv[7]);
    hvd_config_free(&c);
}

Test(config, flag_names)
{
    char f[64];
    hvd_config_flag_name("HVD_AMQP_URL", f, sizeof f);
    cr_assert_str_eq(f, "--amqp-url");
    hvd_config_flag_name("HVD_HOST_CONCURRENCY", f, sizeof f);
    cr_assert_str_eq(f, "--host-concurrency");
}

static char *masked(const char *s)
{
    static char out[512];
    hvd_mask_url(s, out, sizeof out);
    return out;
}

Test(config, masking)
{
    cr_assert_str_eq(masked("amqp://guest:guest@localhost:5672/%2f"), "amqp://guest:***@localhost:5672/%2f");
    cr_assert_str_eq(masked("amqps://svc:p%40ss@rabbit:5671/prod"), "amqps://svc:***@rabbit:5671/prod");
    cr_assert_str_eq(masked("amqp://svc:pa/ss@rabbit/prod"), "amqp://svc:***@rabbit/prod");
    cr_assert_str_eq(masked("amqp://svc:pa@ss@rabbit/prod"), "amqp://svc:***@rabbit/prod");
    cr_assert_str_eq(masked("amqp://localhost/"), "amqp://localhost/");
    cr_assert_str_eq(masked("amqp://user@localhost/"), "amqp://user@localhost/");
    cr_assert_str_eq(masked("postgresql://app:s3cret@db:5432/hvdeploy?sslmode=require"),
                     "postgresql://app:***@db:5432/hvdeploy?sslmode=require");
    cr_assert_str_eq(masked("postgresql://db/hvdeploy?user=app&password=s3cret&sslmode=require"),
                     "postgresql://db/hvdeploy?user=app&password=***&sslmode=require");
    cr_assert_str_eq(masked("postgresql://localhost/hvdeploy"), "postgresql://localhost/hvdeploy");
    cr_assert_str_eq(masked("host=db dbname=hvdeploy password=s3cret sslmode=require"),
                     "host=db dbname=hvdeploy password=*** sslmode=require");
    cr_assert_str_eq(masked("host=db password = 's3 c\\'ret' user=app"), "host=db password = *** user=app");
    cr_assert_str_eq(masked("password=s3cret"), "password=***");
    cr_assert_str_eq(masked("host=db sslpassword=keypw"), "host=db sslpassword=***");
    cr_assert_str_eq(masked("host=db PASSWORD=x"), "host=db PASSWORD=***");
    cr_assert_str_eq(masked("host=db garbage s3cret"), "host=db ***");
    cr_assert_str_eq(masked(""), "");
    char small[12];
    hvd_mask_url("amqp://u:secretsecret@h/", small, sizeof small);
    cr_assert_str_eq(small, "amqp://u:**");
}

__attribute__((noinline)) static char *slurp_stream(void (*fn)(FILE *, const void *), const void *arg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fn(f, arg);
    fclose(f);
    return buf;
}

static void usage_fn(FILE *f, const void *prog)
{
    hvd_config_usage(f, prog);
}

static void print_fn(FILE *f, const void *cfg)
{
    hvd_config_print(f, cfg);
}

Test(config, print_config_masks_passwords_and_reloads)
{
    setenv("HVD_AMQP_URL", "amqp://svc:hunter2pw@rabbit/prod", 1);
    setenv("HVD_PG_DSN", "host=db password=pgsecretpw dbname=hvdeploy", 1);
    setenv("HVD_AGENT_CMD", "ssh -T {host} pwsh", 1);
    setenv("HVD_ALLOWED_HOSTS", "hv01,hv02", 1);
    HvdConfig c;
    cr_assert_eq(load(&c, "hvdeployctl", NULL), 0, "%s", err);
    char *out = slurp_stream(print_fn, &c);
    cr_assert_null(strstr(out, "hunter2pw"));
    cr_assert_null(strstr(out, "pgsecretpw"));
    cr_assert_not_null(strstr(out, "HVD_AMQP_URL=amqp://svc:***@rabbit/prod\n"));
    cr_assert_not_null(strstr(out, "HVD_PG_DSN=host=db password=*** dbname=hvdeploy\n"));
    cr_assert_not_null(strstr(out, "HVD_AGENT_CMD=ssh -T {host} pwsh\n"));
    cr_assert_not_null(strstr(out, "HVD_ALLOWED_HOSTS=hv01,hv02\n"));
    cr_assert_not_null(strstr(out, "HVD_RETRY_DELAYS=5,30,120,600\n"));
    cr_assert_not_null(strstr(out, "HVD_LOG_LEVEL=info\n"));
    for (size_t i = 0; hvd_config_var_name(i); i++) {
        char key[80];
        snprintf(key, sizeof key, "%s=", hvd_config_var_name(i));
        cr_expect_not_null(strstr(out, key), "%s missing from --print-config", key);
    }
    hvd_config_free(&c);
    /* the printed config (less its passwords) loads back to the same values */
    clean_env();
    HvdBuf keep = {0};
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
        if (strncmp(line, "HVD_AMQP_URL=", 13) && strncmp(line, "HVD_PG_DSN=", 11) &&
            strncmp(line, "HVD_CONFIG_FILE=", 16)) {
            hvd_buf_puts(&keep, line);
            hvd_buf_puts(&keep, "\n");
        }
    char *path = write_temp(keep.data);
    HvdConfig d;
    cr_assert_eq(load(&d, "hvdeployctl", "--config-file", path, NULL), 0, "%s", err);
    char *again = slurp_stream(print_fn, &d);
    for (char *line = strtok(keep.data, "\n"); line; line = strtok(NULL, "\n")) {
        char want[1024];
        snprintf(want, sizeof want, "%s\n", line);
        cr_expect_not_null(strstr(again, want), "%s did not survive a reload", line);
    }
    hvd_config_free(&d);
    unlink(path);
    free(path);
    free(again);
    free(out);
    hvd_buf_free(&keep);
}

Test(config, help_lists_every_variable_with_flag_and_default)
{
    char *out = slurp_stream(usage_fn, "hvdeploy-worker");
    for (size_t i = 0; hvd_config_var_name(i); i++) {
        const char *var = hvd_config_var_name(i);
        char flag[64], head[160];
        hvd_config_flag_name(var, flag, sizeof flag);
        snprintf(head, sizeof head, "  %s, %s ", var, flag);
        char *at = strstr(out, head);
        cr_expect_not_null(at, "--help lacks '%s'", head);
        if (!at) continue;
        /* the default follows within the entry (or it says required) */
        const char *def = hvd_config_var_default(i);
        char *next = strstr(at + 1, "\n  HVD_");
        size_t span = next ? (size_t)(next - at) + 1 : strlen(at);
        char *entry = strndup(at, span);
        if (*def) {
            char want[300];
            snprintf(want, sizeof want, "default: %s\n", def);
            cr_expect_not_null(strstr(entry, want), "--help entry of %s lacks '%s'", var, want);
        } else {
            cr_expect(strstr(entry, "(required)") || strstr(entry, "default: "), "%s: no default shown", var);
        }
        free(entry);
    }
    cr_assert_not_null(strstr(out, "HVD_AGENT_CMD, --agent-cmd CMD\n"));
    cr_assert_not_null(strstr(out, "(required)"));
    cr_assert_not_null(strstr(out, "--print-config"));
    free(out);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

Test(config, env_example_lists_every_variable_with_its_default)
{
    char *text = read_file(HVD_SOURCE_DIR "/deploy/worker.env.example");
    for (size_t i = 0; hvd_config_var_name(i); i++) {
        const char *var = hvd_config_var_name(i);
        const char *def = hvd_config_var_default(i);
        char commented[400], set[200];
        snprintf(commented, sizeof commented, "\n# %s=%s\n", var, def);
        snprintf(set, sizeof set, "\n%s=", var);
        cr_expect(strstr(text, commented) || (!*def && strstr(text, set)),
                  "deploy/worker.env.example lacks '# %s=%s' (or, for a required one, '%s=...')", var, def, var);
    }
    /* uncommented (except HVD_CONFIG_FILE), it is a valid config file */
    HvdBuf b = {0};
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "# HVD_", 6) == 0 && strncmp(line, "# HVD_CONFIG_FILE=", 18) != 0) line += 2;
        hvd_buf_puts(&b, line);
        hvd_buf_puts(&b, "\n");
    }
    char *path = write_temp(b.data);
    HvdConfig c;
    cr_assert_eq(load(&c, "hvdeploy-worker", "--config-file", path, NULL), 0, "%s", err);
    cr_assert_eq(c.concurrency, 8);
    cr_assert_str_eq(c.secret_key_file, "/etc/hvdeploy/secret.key");
    hvd_config_free(&c);
    unlink(path);
    free(path);
    hvd_buf_free(&b);
    free(text);
}

/* HVD_AMQP_URL of a cluster (issue 13): one URL per node, separated by whitespace;
 * the comma form rabbitmq-c would cut to its first host is refused. */
Test(config, amqp_url_lists)
{
    HvdConfig c;
    setenv("HVD_AMQP_URL", "amqp://u:pw1@n1:5672/%2f  amqp://u:pw2@n2:5672/%2f\n\tamqps://u:pw3@n3:5671/%2f", 1);
    cr_assert_eq(load(&c, "hvdeployctl", NULL), 0, "%s", err);
    cr_assert(strstr(c.amqp_url, "amqp://u:pw2@n2:5672/%2f"));
    hvd_config_free(&c);
    cr_assert_str_eq(masked("amqp://u:pw1@n1/%2f amqp://u:pw2@n2/%2f"), "amqp://u:***@n1/%2f amqp://u:***@n2/%2f");

    setenv("HVD_AMQP_URL", "amqp://u:pw@n1,n2,n3:5672/%2f", 1);
    cr_assert_eq(load(&c, "hvdeployctl", NULL), -1);
    cr_assert_str_eq(err, "HVD_AMQP_URL: 'amqp://u:***@n1,n2,n3:5672/%2f' names several hosts with ',', which "
                          "rabbitmq-c would cut to the first: give one URL per node, separated by spaces "
                          "(amqp://u:p@a:5672/%2f amqp://u:p@b:5672/%2f)");
    hvd_config_free(&c);
    /* also as the second of a list, and as a comma list of whole URLs */
    setenv("HVD_AMQP_URL", "amqp://u:pw@n1/%2f amqp://u:pw@n2:5672,amqp://u:pw@n3:5672/%2f", 1);
    cr_assert_eq(load(&c, "hvdeployctl", NULL), -1);
    cr_assert(strstr(err, "(URL 2 of 2) names several hosts"), "%s", err);
    cr_assert_null(strstr(err, "pw"), "%s", err);
    hvd_config_free(&c);
    /* a comma in a password is allowed */
    setenv("HVD_AMQP_URL", "amqp://u:p,w@n1/%2f", 1);
    cr_assert_eq(load(&c, "hvdeployctl", NULL), 0, "%s", err);
    hvd_config_free(&c);
    setenv("HVD_AMQP_URL", "amqp://u:pw@n1/%2f http://n2/", 1);
    cr_assert_eq(load(&c, "hvdeployctl", NULL), -1);
    cr_assert(strstr(err, "'http://n2/' (URL 2 of 2) is not an AMQP URL"), "%s", err);
    hvd_config_free(&c);
    setenv("HVD_AMQP_URL", " \t ", 1);
    cr_assert_eq(load(&c, "hvdeployctl", NULL), -1);
    cr_assert_str_eq(err, "HVD_AMQP_URL: no URL (amqp://user:password@host:port/vhost, several separated by spaces)");
    hvd_config_free(&c);
}

/* An HVD_ALLOWED_HOSTS entry and a job's target_host are judged by the one
 * validator (core hvd_hostname_valid): each row is a name, whether it is a
 * host name, and both places must agree with it. "hv01.123" was the case
 * where they differed (config took a numeric last label, the job did not). */
Test(config, allowed_host_and_target_host_judged_alike)
{
    static const struct {
        const char *name;
        bool ok;
    } rows[] = {
        {"hv01", true},
        {"hv01.lab.example", true},
        {"HV02.Lab.Example", true},
        {"10.0.0.5", true},
        {"a-b.c", true},
        {"hv01.123", false},
        {"10.0.0.256", false},
        {"1.2.3", false},
        {"01.2.3.4", false},
        {"123", false},
        {"bad_host", false},
        {"-x", false},
        {"x-.lab", false},
        {"a..b", false},
        {"lab.", false},
        {"h v", false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *name = rows[i].name;
        cr_assert_eq(hvd_hostname_valid(name), rows[i].ok, "%s: hvd_hostname_valid", name);

        clean_env();
        setenv("HVD_ALLOWED_HOSTS", name, 1);
        HvdConfig c;
        int rc = load(&c, "hvdeployctl", NULL);
        bool entry_ok = rc == 0;
        cr_assert_eq(entry_ok, rows[i].ok, "%s: as an HVD_ALLOWED_HOSTS entry: %s", name, err);

        char text[512];
        snprintf(text, sizeof text,
                 "{\"job_id\": \"3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a\", \"job_type\": \"managed_deployment\", "
                 "\"request\": {\"target_host\": \"%s\", \"vm_spec\": {\"vm_name\": \"bare-01\", \"gb_ram\": 2, "
                 "\"cpu_cores\": 1}}}",
                 name);
        HvdNode *body = NULL;
        char why[128];
        cr_assert_eq(hvd_json_to_node(text, strlen(text), 0, &body, why, sizeof why), HVD_DECODE_OK, "%s", why);
        /* the fleet allows exactly the entry just loaded (when it loaded) */
        const char *const *allowed = entry_ok ? (const char *const *)c.allowed_hosts.v : NULL;
        HvdValidateOpts o = {.allowed_hosts = allowed, .n_allowed_hosts = entry_ok ? c.allowed_hosts.n : 0};
        HvdJob job = {0};
        HvdErrors errs = {0};
        bool job_ok = hvd_job_validate(body, &o, &job, &errs);
        cr_assert_eq(job_ok, rows[i].ok, "%s: as a target_host: %s", name, errs.n ? errs.items[0].msg : "no error");
        hvd_errors_free(&errs);
        hvd_job_free(&job);
        hvd_node_free(body);
        if (entry_ok) hvd_config_free(&c);
    }
}
