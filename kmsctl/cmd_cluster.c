/*
 * kmsctl/cmd_cluster.c: `kmsctl cluster ...`, forming and running a
 * cluster of kmsd nodes (docs/cluster.md):
 *   invite   ask this node's kmsd (admin socket) for a one-time join token,
 *            printed as the last line of stdout.
 * Each subcommand is one function; joining a new node is cluster_join.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "kmsctl/admin_client.h"
#include "kmsctl/kmsctl.h"

int cmd_cluster(int argc, char **argv);

static void cluster_usage(FILE *f)
{
    fprintf(f,
            "usage: kmsctl [--config FILE] [--json] cluster invite [--ttl DURATION] [--peer-addr HOST:PORT ...]\n"
            "\n"
            "invite  a one-time token with which one new node joins this node's cluster\n"
            "        (`kmsctl cluster join TOKEN ...` on the new machine), printed as the\n"
            "        last line of stdout. It holds a secret: pass it on privately. It is\n"
            "        refused once used or expired.\n"
            "        --ttl DURATION        how long it is valid (default 1h; 1s to 7d)\n"
            "        --peer-addr HOST:PORT where the new node reaches this node's peer\n"
            "                              listener (default: replication.listen, with\n"
            "                              this machine's name for a wildcard address;\n"
            "                              repeatable, at most 8)\n"
            "\n"
            "exit status: 0 ok, 1 refused by kmsd, 2 usage, 3 kmsd unreachable\n");
}

static int cluster_invite(int argc, char **argv)
{
    static const struct option opts[] = {
        {"ttl", required_argument, NULL, 't'},
        {"peer-addr", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *addrs[8];
    size_t n_addrs = 0;
    uint64_t ttl_ms = 3600 * 1000;
    int o;

    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (o) {
        case 't':
            if (conf_parse_duration_ms(optarg, &ttl_ms) != 0) {
                fprintf(stderr, "kmsctl cluster invite: --ttl '%s' is not a duration (e.g. 30m, 1h, 2d)\n",
                        optarg);
                return KMSCTL_EXIT_USAGE;
            }
            break;
        case 'a':
            if (n_addrs == KMS_ARRAY_SIZE(addrs)) {
                fprintf(stderr, "kmsctl cluster invite: at most %zu --peer-addr\n", KMS_ARRAY_SIZE(addrs));
                return KMSCTL_EXIT_USAGE;
            }
            addrs[n_addrs++] = optarg;
            break;
        case 'h': cluster_usage(stdout); return KMSCTL_EXIT_OK;
        default:
            fprintf(stderr, "kmsctl cluster invite: unknown or incomplete option '%s'\n", argv[optind - 1]);
            return KMSCTL_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kmsctl cluster invite: unexpected argument '%s'\n", argv[optind]);
        return KMSCTL_EXIT_USAGE;
    }
    kms_arena_t *a = kms_arena_new(0);
    if (!a)
        return KMSCTL_EXIT_FAIL;
    int ec = KMSCTL_EXIT_FAIL;
    ttlv_item_t *resp = NULL;
    ttlv_item_t *req = admin_request_new(a, "cluster.invite");
    if (!req || !ttlv_new_long(a, req, ADMIN_TAG_ARG_TTL_MS, (int64_t)ttl_ms))
        goto out;
    for (size_t i = 0; i < n_addrs; i++)
        if (!ttlv_new_textz(a, req, ADMIN_TAG_ARG_ADDR, addrs[i]))
            goto out;
    if ((ec = kmsctl_admin_call(a, req, &resp)) != 0)
        goto out;
    if (kmsctl_g.json) {
        kmsctl_print_records(stdout, resp, true);
        goto out;
    }
    const ttlv_item_t *rec = ttlv_find(resp, ADMIN_TAG_RECORD);
    time_t exp = (time_t)(kmsctl_rec_long(rec, "expires_ms", 0) / 1000);
    struct tm tm;
    char when[32] = "?";
    if (gmtime_r(&exp, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    printf("invite %s to cluster %s, valid until %s, once\n"
           "on the new machine: kmsctl cluster join TOKEN --dir DIR --listen ADDR:PORT "
           "--peer-listen ADDR:PORT\n"
           "(the new node connects to %s)\n"
           "%s\n",
           kmsctl_rec_text(rec, "invite"), kmsctl_rec_text(rec, "cluster_id"), when,
           kmsctl_rec_text(rec, "peer_addr"), kmsctl_rec_text(rec, "token"));
out:
    kms_arena_free(a); /* wiped: it held the token */
    return ec;
}

int cmd_cluster(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        cluster_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? KMSCTL_EXIT_USAGE : KMSCTL_EXIT_OK;
    }
    if (strcmp(argv[1], "invite") == 0)
        return cluster_invite(argc - 1, argv + 1);
    fprintf(stderr, "kmsctl cluster: unknown subcommand '%s'\n", argv[1]);
    cluster_usage(stderr);
    return KMSCTL_EXIT_USAGE;
}
