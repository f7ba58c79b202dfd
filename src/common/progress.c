/* Progress bar with rate and ETA. On a terminal it redraws one line; otherwise
 * (logs, CI) it prints a plain line at most every 5 seconds, so that piped
 * output stays readable. */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "onebit/common.h"

double ob_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ob_format_duration(double seconds, char *buf, size_t size) {
    if (seconds < 0 || seconds != seconds)
        seconds = 0;
    if (seconds < 60)
        snprintf(buf, size, "%.1fs", seconds);
    else if (seconds < 3600)
        snprintf(buf, size, "%dm%02ds", (int)(seconds / 60), (int)seconds % 60);
    else
        snprintf(buf, size, "%dh%02dm", (int)(seconds / 3600), ((int)seconds % 3600) / 60);
}

static void format_count(double v, char *buf, size_t size) {
    if (v >= 1e9)
        snprintf(buf, size, "%.2fG", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, size, "%.2fM", v / 1e6);
    else if (v >= 1e4)
        snprintf(buf, size, "%.1fk", v / 1e3);
    else if (v >= 10 || v == 0)
        snprintf(buf, size, "%.0f", v);
    else
        snprintf(buf, size, "%.2f", v);
}

void ob_progress_begin(ob_progress *p, FILE *out, const char *label, uint64_t total, const char *unit) {
    memset(p, 0, sizeof *p);
    p->out = out ? out : stderr;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "");
    p->total = total;
    p->start = ob_now();
    p->last_draw = -1e9;
    p->tty = isatty(fileno(p->out)) != 0;
}

static void draw(ob_progress *p, const char *suffix, bool final) {
    double now = ob_now();
    double elapsed = now - p->start;
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
    char done_s[32], total_s[32], rate_s[32], el_s[32], eta_s[32];
    format_count((double)p->done, done_s, sizeof done_s);
    format_count((double)p->total, total_s, sizeof total_s);
    format_count(rate, rate_s, sizeof rate_s);
    ob_format_duration(elapsed, el_s, sizeof el_s);
    char line[512];
    int n;
    if (p->total > 0) {
        double frac = (double)p->done / (double)p->total;
        if (frac > 1)
            frac = 1;
        double eta = rate > 0 ? (double)(p->total - (p->done < p->total ? p->done : p->total)) / rate : 0;
        ob_format_duration(final ? elapsed : eta, eta_s, sizeof eta_s);
        char bar[33];
        int width = 30, filled = (int)(frac * width);
        for (int i = 0; i < width; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        n = snprintf(line, sizeof line, "%s [%s] %5.1f%% %s/%s %s, %s %s/s, %s %s", p->label, bar,
                     frac * 100, done_s, total_s, p->unit, el_s, rate_s, final ? "total" : "eta", eta_s);
    } else {
        n = snprintf(line, sizeof line, "%s %s %s, %s, %s %s/s", p->label, done_s, p->unit, el_s, rate_s,
                     p->unit);
    }
    if (suffix && *suffix && n > 0 && (size_t)n < sizeof line)
        snprintf(line + n, sizeof line - (size_t)n, "  %s", suffix);
    if (p->tty)
        fprintf(p->out, "\r\033[K%s%s", line, final ? "\n" : "");
    else
        fprintf(p->out, "%s\n", line);
    fflush(p->out);
    p->last_draw = now;
}

void ob_progress_update(ob_progress *p, uint64_t done, const char *suffix) {
    p->done = done;
    double interval = p->tty ? 0.1 : 5.0;
    if (ob_now() - p->last_draw >= interval)
        draw(p, suffix, false);
}

void ob_progress_end(ob_progress *p, const char *suffix) {
    if (p->finished)
        return;
    p->finished = true;
    draw(p, suffix, true);
}
