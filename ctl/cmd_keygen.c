/* hvdeployctl keygen FILE: writes a new secret key (mode 0600), never overwriting. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "ctl.h"
#include "secret.h"

static void keygen_usage(FILE *f)
{
    fputs("usage: hvdeployctl keygen FILE [--output json|human]\n"
          "\n"
          "Writes a new random key for HVD_SECRET_KEY_FILE: 32 bytes from libsodium's\n"
          "CSPRNG in base64, file mode 0600. An existing FILE is never overwritten.\n"
          "Prints the key id (the first 8 hex characters of the key's BLAKE2b hash),\n"
          "which every secret sealed with the key carries.\n"
          "\n"
          "To rotate: generate a new key, point HVD_SECRET_KEY_FILE at it and list the\n"
          "old file in HVD_SECRET_OLD_KEY_FILES until no job still needs it.\n"
          "\n"
          "options:\n"
          "  -o, --output json|human   output format (default human)\n"
          "  -h, --help                this help\n"
          "\n"
          "Exit status: 0 written, 1 the file exists or cannot be written, 2 usage error.\n",
          f);
}

int ctl_cmd_keygen(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    CtlOutput output = CTL_OUTPUT_HUMAN;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (!ctl_parse_output("keygen", optarg, &output)) return CTL_EXIT_USAGE;
            break;
        case 'h': keygen_usage(stdout); return CTL_EXIT_OK;
        default: keygen_usage(stderr); return CTL_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        ctl_error("keygen", argc - optind == 0 ? "expected FILE" : "expected exactly one FILE");
        keygen_usage(stderr);
        return CTL_EXIT_USAGE;
    }
    const char *path = argv[optind];
    HvdSecretKey key;
    char err[512];
    if (hvd_secret_key_write_new(path, &key, err, sizeof err) != 0) {
        ctl_error("keygen", "%s", err);
        return CTL_EXIT_FAILED;
    }
    char id[sizeof key.id];
    memcpy(id, key.id, sizeof id);
    memset(&key, 0, sizeof key);
    if (output == CTL_OUTPUT_JSON) {
        HvdBuf b = {0};
        hvd_buf_puts(&b, "{\"file\":");
        ctl_json_string(&b, path);
        hvd_buf_puts(&b, ",\"key_id\":");
        ctl_json_string(&b, id);
        hvd_buf_puts(&b, ",\"mode\":\"0600\"}\n");
        fputs(b.data, stdout);
        hvd_buf_free(&b);
    } else {
        printf("wrote a new secret key to %s (mode 0600)\nkey id: %s\n", path, id);
    }
    return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}
