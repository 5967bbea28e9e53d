/*
 * kmsctl/cmd_cluster.c: `kmsctl cluster ...`, forming and running a
 * cluster of kmsd nodes (docs/cluster.md), over this node's admin socket:
 *   invite   a one-time join token, printed as the last line of stdout;
 *   status   every node's links, last contact, lag, clock offset, state;
 *            --wait first follows this node's catch-up until it is ready;
 *   verify   digests of every tenant's objects on every node compared;
 *   remove   a node removed from the cluster.
 * Each subcommand is one function; joining a new node (`cluster join`,
 * which talks to the inviter's peer port, not to a local kmsd) is
 * cluster_join.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "kmsctl/admin_client.h"
#include "kmsctl/kmsctl.h"
#include "kmsctl/progress.h"

int cmd_cluster(int argc, char **argv);
int kmsctl_cluster_join(int argc, char **argv); /* cluster_join.c */

static void cluster_usage(FILE *f)
{
    fprintf(f,
            "usage: kmsctl [--config FILE] [--json] cluster invite [--ttl DURATION] [--peer-addr HOST:PORT ...]\n"
            "       kmsctl cluster join TOKEN --dir DIR --listen ADDR:PORT --peer-listen ADDR:PORT [...]\n"
            "       kmsctl [--config FILE] [--json] cluster status [--wait]\n"
            "       kmsctl [--config FILE] [--json] cluster verify\n"
            "       kmsctl [--config FILE] [--json] cluster remove NODE\n"
            "\n"
            "invite  a one-time token with which one new node joins this node's cluster,\n"
            "        printed as the last line of stdout. It holds a secret: pass it on\n"
            "        privately. It is refused once used or expired.\n"
            "        --ttl DURATION        how long it is valid (default 1h; 1s to 168h)\n"
            "        --peer-addr HOST:PORT where the new node reaches this node's peer\n"
            "                              listener (default: replication.listen, with\n"
            "                              this machine's name for a wildcard address;\n"
            "                              repeatable, at most 8)\n"
            "join    set up a new node in DIR with TOKEN (`kmsctl cluster join --help`)\n"
            "status  every node, connected or not: links, last contact, lag in changes\n"
            "        and in ms, clock offset, state. Exit 1 when a node is not ok.\n"
            "        --wait  first wait until this node serves keys (a joining node has\n"
            "                applied its catch-up snapshot), with a progress bar on a\n"
            "                terminal\n"
            "verify  compare digests of every tenant's objects on every node; exit 0 when\n"
            "        identical, 1 when not (the objects that differ are listed) or when a\n"
            "        node could not be compared\n"
            "remove  remove NODE from the cluster: every node closes its links and refuses\n"
            "        its certificate from then on (run it on another node)\n"
            "\n"
            "exit status: 0 ok, 1 refused, failed or not identical, 2 usage, 3 kmsd unreachable\n");
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
                fprintf(stderr, "kmsctl cluster invite: --ttl '%s' is not a duration (e.g. 30m, 1h, 48h)\n",
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

/* "1.2 s ago", "never". */
static void age_text(int64_t age_ms, char *out, size_t n)
{
    if (age_ms < 0)
        snprintf(out, n, "never");
    else if (age_ms < 10000)
        snprintf(out, n, "%.1f s ago", (double)age_ms / 1000.0);
    else if (age_ms < 3600 * 1000)
        snprintf(out, n, "%lld s ago", (long long)(age_ms / 1000));
    else
        snprintf(out, n, "%.1f h ago", (double)age_ms / 3600000.0);
}

/* A call without arguments but --json and --help. */
static int simple_args(int argc, char **argv, const char *what)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            kmsctl_g.json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cluster_usage(stdout);
            return -1;
        } else {
            fprintf(stderr, "kmsctl cluster %s: unexpected argument '%s'\n", what, argv[i]);
            return KMSCTL_EXIT_USAGE;
        }
    }
    return 0;
}

/* Run admin command `cmd` (no arguments); -1 when only help was asked. */
static int call_simple(int argc, char **argv, const char *what, const char *cmd, kms_arena_t **a,
                       ttlv_item_t **resp)
{
    int ec = simple_args(argc, argv, what);
    if (ec)
        return ec;
    ttlv_item_t *req = (*a = kms_arena_new(0)) ? admin_request_new(*a, cmd) : NULL;
    return req ? kmsctl_admin_call(*a, req, resp) : KMSCTL_EXIT_FAIL;
}

/* The records of a cluster.status answer that are catching up: the sum of
 * their snapshots' progress; *ready_out: this node serves keys. */
static bool catching_up(const ttlv_item_t *resp, int64_t *done_out, int64_t *total_out,
                        bool *ready_out)
{
    bool any = false;
    *done_out = *total_out = 0;
    *ready_out = false;
    for (const ttlv_item_t *rec = ttlv_find(resp, ADMIN_TAG_RECORD); rec;
         rec = ttlv_find_next(rec, ADMIN_TAG_RECORD)) {
        const ttlv_item_t *rd = kmsctl_rec_value(rec, "ready");
        if (rd && rd->type == TTLV_BOOLEAN)
            *ready_out = rd->v.b;
        if (strcmp(kmsctl_rec_text(rec, "state"), "catching-up") != 0)
            continue;
        any = true;
        *done_out += kmsctl_rec_long(rec, "catchup_done", 0);
        *total_out += kmsctl_rec_long(rec, "catchup_total", 0);
    }
    return any;
}

/* --wait: poll cluster.status until this node is ready and no snapshot is
 * being applied, with a bar of the catch-up on a terminal. The last answer
 * is *resp in *a. */
static int wait_ready(kms_arena_t **a, ttlv_item_t **resp)
{
    kmsctl_progress_t *bar = kmsctl_progress_wanted(kmsctl_g.json)
                                 ? kmsctl_progress_new(stderr, "catching up", true)
                                 : NULL;
    int ec = 0;
    for (;;) {
        kms_arena_free(*a);
        ttlv_item_t *req = (*a = kms_arena_new(0)) ? admin_request_new(*a, "cluster.status") : NULL;
        if ((ec = req ? kmsctl_admin_call(*a, req, resp) : KMSCTL_EXIT_FAIL) != 0)
            break;
        int64_t done, total;
        bool ready, busy = catching_up(*resp, &done, &total, &ready);
        if (busy)
            kmsctl_progress_update(bar, "catching up", "objects", done, total);
        else if (!ready)
            kmsctl_progress_update(bar, "waiting for peers", "objects", 0, -1);
        if (ready && !busy)
            break;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kmsctl_progress_end(bar);
    return ec;
}

static int cluster_status(int argc, char **argv)
{
    kms_arena_t *a = NULL;
    ttlv_item_t *resp = NULL;
    bool wait = false;
    int ec = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--wait") == 0) {
            wait = true;
            memmove(&argv[i], &argv[i + 1], (size_t)(argc - i - 1) * sizeof *argv);
            argc--;
            i--;
        }
    }
    if (wait)
        ec = simple_args(argc, argv, "status");
    if (wait && ec == 0)
        ec = wait_ready(&a, &resp);
    else if (!wait)
        ec = call_simple(argc, argv, "status", "cluster.status", &a, &resp);
    if (ec)
        goto out;
    if (kmsctl_g.json)
        kmsctl_print_records(stdout, resp, false);
    else
        printf("%-20s %-22s %-7s %-12s %-9s %-10s %-8s %s\n", "NODE", "PEER ADDRESS", "LINKS",
               "LAST CONTACT", "LAG", "LAG TIME", "CLOCK", "STATE");
    /* Degraded is a failure for scripts: a node that is not removed and
     * not ok (not connected, catching up, refused, skew). */
    for (const ttlv_item_t *rec = ttlv_find(resp, ADMIN_TAG_RECORD); rec;
         rec = ttlv_find_next(rec, ADMIN_TAG_RECORD)) {
        const char *state = kmsctl_rec_text(rec, "state");
        bool self = kmsctl_rec_value(rec, "self") && kmsctl_rec_value(rec, "self")->v.b;
        if (strcmp(state, "ok") != 0 && strcmp(state, "removed") != 0)
            ec = KMSCTL_EXIT_FAIL;
        if (kmsctl_g.json)
            continue;
        char age[32], lag[32], lagt[32], clock[32];
        const char *node = kmsctl_rec_text(rec, "node");
        age_text(kmsctl_rec_long(rec, "last_contact_age_ms", -1), age, sizeof age);
        snprintf(lag, sizeof lag, "%lld", (long long)kmsctl_rec_long(rec, "lag_changes", 0));
        snprintf(lagt, sizeof lagt, "%lld ms", (long long)kmsctl_rec_long(rec, "lag_ms", 0));
        snprintf(clock, sizeof clock, "%+lld ms", (long long)kmsctl_rec_long(rec, "clock_offset_ms", 0));
        const char *err = kmsctl_rec_text(rec, "error");
        printf("%-20s %-22s %-7s %-12s %-9s %-10s %-8s %s%s%s%s\n", node[0] ? node : "?",
               kmsctl_rec_text(rec, "peer_addr"), kmsctl_rec_text(rec, "links"), self ? "-" : age,
               self ? "-" : lag, self ? "-" : lagt, self ? "-" : clock, state, self ? " (this node)" : "",
               err[0] && strcmp(state, "ok") != 0 ? ": " : "", strcmp(state, "ok") != 0 ? err : "");
    }
out:
    kms_arena_free(a);
    return ec < 0 ? KMSCTL_EXIT_OK : ec;
}

static int cluster_verify(int argc, char **argv)
{
    kms_arena_t *a = NULL;
    ttlv_item_t *resp = NULL;
    int ec = call_simple(argc, argv, "verify", "cluster.verify", &a, &resp);
    if (ec)
        goto out;
    if (kmsctl_g.json)
        kmsctl_print_records(stdout, resp, false);
    const char *summary = "incomplete";
    size_t nodes = 0, diffs = 0;
    for (const ttlv_item_t *rec = ttlv_find(resp, ADMIN_TAG_RECORD); rec;
         rec = ttlv_find_next(rec, ADMIN_TAG_RECORD)) {
        const char *kind = kmsctl_rec_text(rec, "kind");
        const char *result = kmsctl_rec_text(rec, "result");
        if (strcmp(kind, "summary") == 0) {
            summary = result;
            continue;
        }
        if (strcmp(kind, "node") == 0) {
            nodes += strcmp(result, "compared") == 0;
            if (!kmsctl_g.json && strcmp(result, "compared") != 0)
                printf("node %s: not compared: %s\n", kmsctl_rec_text(rec, "node"), result);
            continue;
        }
        diffs++;
        if (kmsctl_g.json)
            continue;
        if (strcmp(kind, "tenant") == 0)
            printf("tenant %s differs: %s\n", kmsctl_rec_text(rec, "tenant"), result);
        else
            printf("  object %s (tenant %s): %s\n", kmsctl_rec_text(rec, "object"),
                   kmsctl_rec_text(rec, "tenant"), result);
    }
    if (!kmsctl_g.json)
        printf("%s: %zu node(s) compared%s\n", strcmp(summary, "identical") == 0 ? "identical"
                                               : strcmp(summary, "different") == 0 ? "NOT identical"
                                                                                   : "NOT verified",
               nodes, diffs ? "; the objects above differ" : "");
    ec = strcmp(summary, "identical") == 0 ? KMSCTL_EXIT_OK : KMSCTL_EXIT_FAIL;
out:
    kms_arena_free(a);
    return ec < 0 ? KMSCTL_EXIT_OK : ec;
}

static int cluster_remove(int argc, char **argv)
{
    const char *node = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cluster_usage(stdout);
            return KMSCTL_EXIT_OK;
        }
        if (argv[i][0] == '-' || node) {
            fprintf(stderr, "kmsctl cluster remove: give one NODE id\n");
            return KMSCTL_EXIT_USAGE;
        }
        node = argv[i];
    }
    if (!node) {
        fprintf(stderr, "kmsctl cluster remove: give the NODE id to remove (kmsctl cluster status)\n");
        return KMSCTL_EXIT_USAGE;
    }
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *resp = NULL, *req = a ? admin_request_new(a, "cluster.remove") : NULL;
    int ec = req && ttlv_new_textz(a, req, ADMIN_TAG_ARG_NODE, node)
                 ? kmsctl_admin_call(a, req, &resp)
                 : KMSCTL_EXIT_FAIL;
    if (ec == 0) {
        if (kmsctl_g.json)
            kmsctl_print_records(stdout, resp, true);
        else
            printf("node %s removed: every node closes its links and refuses its certificate\n",
                   node);
    }
    kms_arena_free(a);
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
    if (strcmp(argv[1], "join") == 0)
        return kmsctl_cluster_join(argc - 1, argv + 1);
    if (strcmp(argv[1], "status") == 0)
        return cluster_status(argc - 1, argv + 1);
    if (strcmp(argv[1], "verify") == 0)
        return cluster_verify(argc - 1, argv + 1);
    if (strcmp(argv[1], "remove") == 0)
        return cluster_remove(argc - 1, argv + 1);
    fprintf(stderr, "kmsctl cluster: unknown subcommand '%s'\n", argv[1]);
    cluster_usage(stderr);
    return KMSCTL_EXIT_USAGE;
}
