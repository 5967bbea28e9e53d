/*
 * kmsctl/progress.c: the progress bar of kmsctl's long commands (see
 * progress.h): formatting (pure, unit-tested) and drawing one line on a
 * terminal with carriage returns and space padding only, so it needs no
 * terminal database and leaves a clean line behind.
 *
 * It deliberately draws nothing unless asked to (the caller decides from
 * isatty and --json), never writes to stdout (a command's output stays
 * parseable) and keeps no history: rate and ETA come from the current
 * phase's start.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "common/kms.h"
#include "kmsctl/progress.h"

#define REDRAW_NS 100000000LL   /* at most ten draws a second */
#define RATE_MIN_S 0.05         /* a rate over less time says nothing */
#define BAR_MIN 10
#define BAR_MAX 40
#define LINE_MAX 512

struct kmsctl_progress {
    FILE *f;
    bool enabled;
    char label[32];
    int64_t last_draw_ns;       /* 0 = never drawn */
    int64_t phase_ns;           /* when the current phase started */
    int64_t phase_done;         /* done at that moment */
    size_t shown;               /* characters on the line now */
    unsigned draws;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

bool kmsctl_progress_wanted(bool json)
{
    return !json && isatty(STDERR_FILENO);
}

kmsctl_progress_t *kmsctl_progress_new(FILE *f, const char *label, bool enabled)
{
    kmsctl_progress_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->f = f;
    p->enabled = enabled;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    return p;
}

unsigned kmsctl_progress_draws(const kmsctl_progress_t *p)
{
    return p ? p->draws : 0;
}

/* ---------------------------------------------------------- formatting */
void kmsctl_progress_eta(double seconds, char *out, size_t n)
{
    if (!(seconds >= 0)) { /* negative or NaN */
        snprintf(out, n, "--:--");
        return;
    }
    double up = ceil(seconds);
    if (up > 99.0 * 3600) {
        snprintf(out, n, ">99h");
        return;
    }
    long s = (long)up;
    if (s >= 3600)
        snprintf(out, n, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else
        snprintf(out, n, "%ld:%02ld", s / 60, s % 60);
}

void kmsctl_progress_amount(int64_t v, const char *unit, char *out, size_t n)
{
    if (!unit || strcmp(unit, "bytes") != 0) {
        snprintf(out, n, "%lld", (long long)v);
        return;
    }
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (v < 1024) {
        snprintf(out, n, "%lld B", (long long)v);
        return;
    }
    double x = (double)v / 1024.0;
    size_t u = 0;
    while (x >= 1024.0 && u + 1 < KMS_ARRAY_SIZE(units)) {
        x /= 1024.0;
        u++;
    }
    snprintf(out, n, "%.1f %s", x, units[u]);
}

size_t kmsctl_progress_format(char *out, size_t n, int width, const char *label, const char *unit,
                              int64_t done, int64_t total, double rate)
{
    bool bytes = unit && strcmp(unit, "bytes") == 0;
    char d[32], t[32], count[80], rs[48] = "", eta[24] = "", r[32];
    kmsctl_progress_amount(done, unit, d, sizeof d);
    if (total >= 0) {
        kmsctl_progress_amount(total, unit, t, sizeof t);
        snprintf(count, sizeof count, "%s/%s%s%s", d, t, bytes ? "" : " ", bytes ? "" : unit);
    } else {
        snprintf(count, sizeof count, "%s%s%s", d, bytes ? "" : " ", bytes ? "" : unit);
    }
    if (rate > 0) {
        if (bytes)
            kmsctl_progress_amount((int64_t)rate, unit, r, sizeof r);
        else
            snprintf(r, sizeof r, "%.0f", rate);
        snprintf(rs, sizeof rs, "  %s/s", r);
    }
    if (total >= 0) {
        char e[16];
        double left = total > done ? (double)(total - done) : 0.0;
        kmsctl_progress_eta(left == 0 ? 0.0 : rate > 0 ? left / rate : -1.0, e, sizeof e);
        snprintf(eta, sizeof eta, "  ETA %s", e);
    }
    const char *lb = label ? label : "";
    size_t room = width > 1 ? (size_t)width - 1 : 0;
    if (room >= n)
        room = n - 1;
    /* Drop pieces until the line fits: bar, then rate, ETA, label. */
    for (int drop = 0; drop < 4; drop++) {
        bool with_rate = drop < 2, with_eta = drop < 3, with_label = drop < 4;
        size_t fixed = (with_label && *lb ? strlen(lb) + 1 : 0) + strlen(count) +
                       (with_rate ? strlen(rs) : 0) + (with_eta ? strlen(eta) : 0);
        size_t bar = 0;
        if (drop == 0 && total >= 0 && room > fixed + 3)
            bar = room - fixed - 3 > BAR_MAX ? BAR_MAX : room - fixed - 3;
        if (drop == 0 && bar < BAR_MIN)
            continue;
        if (drop > 0 && fixed > room)
            continue;
        size_t len = 0;
        len += (size_t)snprintf(out + len, n - len, "%s%s", with_label ? lb : "",
                                with_label && *lb ? " " : "");
        if (bar) {
            size_t fill = total > 0 ? (size_t)((double)bar * (double)(done < total ? done : total) /
                                               (double)total)
                                    : bar;
            out[len++] = '[';
            for (size_t i = 0; i < bar; i++)
                out[len++] = i < fill ? '#' : '.';
            out[len++] = ']';
            out[len++] = ' ';
            out[len] = '\0';
        }
        len += (size_t)snprintf(out + len, n - len, "%s%s%s", count, with_rate ? rs : "",
                                with_eta ? eta : "");
        return len;
    }
    /* Not even the count fits: as much of it as does. */
    snprintf(out, room + 1, "%s", count);
    return strlen(out);
}

/* ------------------------------------------------------------- drawing */
static int term_width(FILE *f)
{
    struct winsize ws;
    if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int w = c ? atoi(c) : 0;
    return w > 0 ? w : 80;
}

/* Overwrite the line with `s` (padding over what was there before). */
static void put_line(kmsctl_progress_t *p, const char *s, size_t len)
{
    fputc('\r', p->f);
    fwrite(s, 1, len, p->f);
    if (p->shown > len) {
        for (size_t i = len; i < p->shown; i++)
            fputc(' ', p->f);
        fputc('\r', p->f);
        fwrite(s, 1, len, p->f);
    }
    p->shown = len;
    fflush(p->f);
}

void kmsctl_progress_update(kmsctl_progress_t *p, const char *phase, const char *unit,
                            int64_t done, int64_t total)
{
    if (!p || !p->enabled)
        return;
    int64_t now = mono_ns();
    bool new_phase = phase && strcmp(phase, p->label) != 0;
    if (new_phase || !p->phase_ns) {
        if (phase)
            snprintf(p->label, sizeof p->label, "%s", phase);
        p->phase_ns = now;
        p->phase_done = done;
    }
    /* At most one draw per REDRAW_NS, but the phase's last count always:
     * a short phase would otherwise end on its first bar (0 of N). */
    bool finished = total >= 0 && done >= total;
    if (!new_phase && !finished && p->last_draw_ns && now - p->last_draw_ns < REDRAW_NS)
        return;
    double el = (double)(now - p->phase_ns) / 1e9;
    double rate = el >= RATE_MIN_S ? (double)(done - p->phase_done) / el : 0.0;
    char line[LINE_MAX];
    size_t len = kmsctl_progress_format(line, sizeof line, term_width(p->f), p->label,
                                        unit ? unit : "", done, total, rate);
    put_line(p, line, len);
    p->last_draw_ns = now;
    p->draws++;
}

void kmsctl_progress_cb(void *arg, const char *phase, const char *unit, int64_t done,
                        int64_t total)
{
    kmsctl_progress_update(arg, phase, unit, done, total);
}

void kmsctl_progress_end(kmsctl_progress_t *p)
{
    if (!p)
        return;
    if (p->enabled && p->shown) {
        fputc('\r', p->f);
        for (size_t i = 0; i < p->shown; i++)
            fputc(' ', p->f);
        fputc('\r', p->f);
        fflush(p->f);
    }
    free(p);
}
