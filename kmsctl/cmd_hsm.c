/*
 * kmsctl/cmd_hsm.c: `kmsctl hsm init` creates the master key (a 0600 key
 * file, or an AES-256 key generated inside a PKCS#11 token), `kmsctl hsm
 * check` opens the provider, wraps and unwraps a random test key and prints
 * what it found. Options name the provider directly; without them the hsm
 * section of the config file (kmsctl --config) is used.
 *
 * It runs locally against the token or file, not through kmsd, and never
 * prints key material or the PIN.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "conf/conf.h"
#include "hsm/hsm.h"
#include "keys/keys.h" /* keys_hsm_config */
#include "kmsctl/kmsctl.h"

int cmd_hsm(int argc, char **argv);

static void hsm_usage(FILE *f)
{
    fprintf(f,
            "usage: kmsctl hsm init  [PROVIDER OPTIONS]\n"
            "       kmsctl hsm check [PROVIDER OPTIONS]\n"
            "\n"
            "init   create the master key: a new 32-byte key file (mode 0600; refuses to\n"
            "       overwrite), or an AES-256 key generated inside the PKCS#11 token\n"
            "       (sensitive, never extractable; refuses if the label exists)\n"
            "check  open the provider, wrap and unwrap a random test key, print the provider\n"
            "\n"
            "provider options (without them: the hsm section of --config):\n"
            "  --file PATH               file provider: the master key file\n"
            "  --pkcs11                  PKCS#11 provider, with:\n"
            "    --module LIB            the module, e.g. /usr/lib/softhsm/libsofthsm2.so\n"
            "    --token-label L | --slot N\n"
            "    --pin-file F | --pin-env VAR   user PIN (a trailing newline is ignored)\n"
            "    --key-label K           label of the master key (default kmsd-master)\n"
            "\n"
            "exit status: 0 ok, 1 failed, 2 usage, 3 configuration error\n");
}

/* A JSON string literal (quotes included) on stdout. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static int exit_for(int rc)
{
    return rc == KMS_ERR_CONFIG ? KMSCTL_EXIT_UNREACHABLE : KMSCTL_EXIT_FAIL;
}

/* Open, wrap a random 32-byte key, unwrap, compare, health. */
static int do_check(const hsm_config_t *cfg)
{
    kms_error_t err;
    hsm_t *h = NULL;
    kms_secret_t *dsk = NULL, *back = NULL;
    kms_buf_t w;
    int rc, ex = KMSCTL_EXIT_FAIL;
    const char *what = "open";

    kms_error_clear(&err);
    kms_buf_init(&w, 4096);
    if ((rc = hsm_open(cfg, &h, &err)) != 0) {
        ex = exit_for(rc);
        goto out;
    }
    what = "wrap/unwrap round trip";
    if (!(dsk = kms_secret_new(32)) || RAND_bytes(dsk->data, 32) != 1) {
        rc = KMS_ERR_CRYPTO;
        goto out;
    }
    if ((rc = hsm_wrap(h, dsk, &w)) != 0 || (rc = hsm_unwrap(h, w.data, w.len, &back)) != 0)
        goto out;
    if (back->len != dsk->len || kms_ct_memcmp(back->data, dsk->data, dsk->len) != 0) {
        rc = KMS_ERR_CRYPTO;
        goto out;
    }
    what = "health";
    if ((rc = hsm_health(h)) != 0)
        goto out;
    if (kmsctl_g.json) {
        printf("{\"ok\":true,\"provider\":");
        json_str(hsm_describe(h));
        printf(",\"wrapped_len\":%zu}\n", w.len);
    } else
        printf("ok: %s: wrap/unwrap round trip passed (%zu-byte wrapped key)\n", hsm_describe(h),
               w.len);
    ex = KMSCTL_EXIT_OK;
out:
    if (ex != KMSCTL_EXIT_OK) {
        if (kmsctl_g.json) {
            printf("{\"ok\":false,\"step\":\"%s\",\"error\":", what);
            json_str(err.msg[0] ? err.msg : kms_strerror(rc));
            printf("}\n");
        }
        fprintf(stderr, "kmsctl hsm check: %s failed: %s\n", what, err.msg[0] ? err.msg : kms_strerror(rc));
    }
    kms_secret_free(dsk);
    kms_secret_free(back);
    kms_buf_dispose(&w);
    hsm_close(h);
    return ex;
}

static int do_init(const hsm_config_t *cfg)
{
    kms_error_t err;
    kms_error_clear(&err);
    int rc = hsm_init_master(cfg, NULL, &err);
    if (rc != 0) {
        fprintf(stderr, "kmsctl hsm init: %s\n", err.msg[0] ? err.msg : kms_strerror(rc));
        return rc == KMS_ERR_EXISTS ? KMSCTL_EXIT_FAIL : exit_for(rc);
    }
    if (cfg->provider == HSM_PROVIDER_FILE)
        printf("created master key file %s (mode 0600)\n", cfg->key_file);
    else
        printf("generated AES-256 master key '%s' in %s%s%s (sensitive, not extractable)\n",
               cfg->key_label ? cfg->key_label : "kmsd-master",
               cfg->token_label ? "token '" : "slot ",
               cfg->token_label ? cfg->token_label : "",
               cfg->token_label ? "'" : "");
    return KMSCTL_EXIT_OK;
}

int cmd_hsm(int argc, char **argv)
{
    static const struct option opts[] = {
        {"file", required_argument, NULL, 'f'},
        {"pkcs11", no_argument, NULL, 'p'},
        {"module", required_argument, NULL, 'm'},
        {"token-label", required_argument, NULL, 't'},
        {"slot", required_argument, NULL, 's'},
        {"pin-file", required_argument, NULL, 'P'},
        {"pin-env", required_argument, NULL, 'E'},
        {"key-label", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    hsm_config_t cfg;
    conf_t *conf = NULL;
    int o, ex, is_file = 0, is_p11 = 0;
    const char *sub;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        hsm_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? KMSCTL_EXIT_USAGE : KMSCTL_EXIT_OK;
    }
    sub = argv[1];
    if (strcmp(sub, "init") != 0 && strcmp(sub, "check") != 0) {
        fprintf(stderr, "kmsctl hsm: unknown subcommand '%s'\n", sub);
        hsm_usage(stderr);
        return KMSCTL_EXIT_USAGE;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.slot = -1;
    optind = 1;
    opterr = 1;
    while ((o = getopt_long(argc - 1, argv + 1, "+", opts, NULL)) != -1) {
        switch (o) {
        case 'f': is_file = 1; cfg.key_file = optarg; break;
        case 'p': is_p11 = 1; break;
        case 'm': is_p11 = 1; cfg.module = optarg; break;
        case 't': is_p11 = 1; cfg.token_label = optarg; break;
        case 's': {
            char *end;
            long v = strtol(optarg, &end, 0);
            if (*optarg == '\0' || *end || v < 0 || v > 0x7fffffffL) {
                fprintf(stderr, "kmsctl hsm: --slot wants a slot id, not '%s'\n", optarg);
                return KMSCTL_EXIT_USAGE;
            }
            is_p11 = 1;
            cfg.slot = (int)v;
            break;
        }
        case 'P': is_p11 = 1; cfg.pin_file = optarg; break;
        case 'E': is_p11 = 1; cfg.pin_env = optarg; break;
        case 'k': is_p11 = 1; cfg.key_label = optarg; break;
        case 'h': hsm_usage(stdout); return KMSCTL_EXIT_OK;
        default: hsm_usage(stderr); return KMSCTL_EXIT_USAGE;
        }
    }
    if (optind < argc - 1) {
        fprintf(stderr, "kmsctl hsm %s: unexpected argument '%s'\n", sub, argv[optind + 1]);
        return KMSCTL_EXIT_USAGE;
    }
    if (is_file && is_p11) {
        fprintf(stderr, "kmsctl hsm %s: --file and the PKCS#11 options exclude each other\n", sub);
        return KMSCTL_EXIT_USAGE;
    }
    if (is_file) {
        cfg.provider = HSM_PROVIDER_FILE;
    } else if (is_p11) {
        cfg.provider = HSM_PROVIDER_PKCS11;
        if (!cfg.module || (!cfg.token_label && cfg.slot < 0) || (!cfg.pin_file && !cfg.pin_env)) {
            fprintf(stderr, "kmsctl hsm %s: --pkcs11 needs --module, --token-label or --slot, "
                            "and --pin-file or --pin-env\n", sub);
            return KMSCTL_EXIT_USAGE;
        }
        if (cfg.token_label && cfg.slot >= 0) {
            fprintf(stderr, "kmsctl hsm %s: give --token-label or --slot, not both\n", sub);
            return KMSCTL_EXIT_USAGE;
        }
        if (cfg.pin_file && cfg.pin_env) {
            fprintf(stderr, "kmsctl hsm %s: give --pin-file or --pin-env, not both\n", sub);
            return KMSCTL_EXIT_USAGE;
        }
    } else {
        /* No provider options: take the hsm section of the config file. */
        kms_error_t err;
        kms_error_clear(&err);
        int rc = conf_load(kmsctl_g.config_path, &conf, &err);
        if (rc == 0)
            rc = keys_hsm_config(conf, NULL, &cfg, &err);
        if (rc != 0) {
            fprintf(stderr, "kmsctl hsm %s: %s\n", sub, err.msg);
            conf_free(conf);
            return KMSCTL_EXIT_UNREACHABLE;
        }
    }
    ex = strcmp(sub, "init") == 0 ? do_init(&cfg) : do_check(&cfg);
    conf_free(conf);
    return ex;
}
