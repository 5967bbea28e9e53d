/*
 * bench/hist.c: the latency histogram (HdrHistogram-style, log-linear).
 *
 * A value v < 256 ns sits in its own bucket; above, a power of two is split
 * into 128 equal sub-buckets, so a reported quantile is within 1/128 of the
 * recorded value. It does not interpolate, auto-resize or keep samples.
 */
#include <string.h>

#include "bench/bench.h"

void bench_hist_init(bench_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
}

static size_t bucket_of(uint64_t v)
{
    if (v < 2 * BENCH_HIST_SUB)
        return (size_t)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 7; /* keeps 8 significant bits: 128..255 */
    size_t idx = (size_t)(shift + 1) * BENCH_HIST_SUB + (size_t)((v >> shift) - BENCH_HIST_SUB);
    return idx < BENCH_HIST_BUCKETS ? idx : BENCH_HIST_BUCKETS - 1;
}

static uint64_t bucket_mid(size_t idx)
{
    if (idx < 2 * BENCH_HIST_SUB)
        return idx;
    int shift = (int)(idx / BENCH_HIST_SUB) - 1;
    uint64_t m = BENCH_HIST_SUB + idx % BENCH_HIST_SUB;
    return (m << shift) + ((1ull << shift) >> 1);
}

void bench_hist_record(bench_hist_t *h, uint64_t ns)
{
    h->counts[bucket_of(ns)]++;
    h->total++;
    h->sum_ns += (double)ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
    if (ns < h->min_ns)
        h->min_ns = ns;
}

void bench_hist_merge(bench_hist_t *dst, const bench_hist_t *src)
{
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum_ns += src->sum_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
    if (src->min_ns < dst->min_ns)
        dst->min_ns = src->min_ns;
}

uint64_t bench_hist_quantile(const bench_hist_t *h, double q)
{
    if (h->total == 0)
        return 0;
    /* rank of the sample at quantile q, 1-based, rounded up */
    uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->total)
        rank = h->total;
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = bucket_mid(i);
            return v > h->max_ns ? h->max_ns : v;
        }
    }
    return h->max_ns;
}
