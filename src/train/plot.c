/* metrics.jsonl → series → SVG (drawn here, no dependency) or gnuplot data. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/json.h"
#include "onebit/plot.h"

static ob_status push(ob_series *s, double x, double y) {
    if ((s->count & (s->count - 1)) == 0) {
        size_t cap = s->count ? s->count * 2 : 64;
        double *nx = realloc(s->x, cap * sizeof *nx), *ny = realloc(s->y, cap * sizeof *ny);
        if (nx)
            s->x = nx;
        if (ny)
            s->y = ny;
        if (!nx || !ny)
            return ob_error(OB_ERR_NOMEM, "plot: out of memory");
    }
    s->x[s->count] = x;
    s->y[s->count] = y;
    s->count++;
    return OB_OK;
}

ob_status ob_metrics_read(const char *path, ob_metrics_series *out) {
    memset(out, 0, sizeof *out);
    char *text;
    size_t size;
    ob_status st = ob_read_file(path, &text, &size);
    if (st)
        return st;
    int line_no = 0;
    for (char *line = text; line && *line && st == OB_OK;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        line_no++;
        if (len > 0) {
            char source[4200];
            snprintf(source, sizeof source, "%s line %d", path, line_no);
            cJSON *row = NULL;
            st = ob_json_parse(line, len, source, &row);
            double step = NAN, v;
            bool present;
            if (st == OB_OK)
                st = ob_json_get_double(row, "step", source, &step, &present);
            if (st == OB_OK && !present)
                st = ob_error(OB_ERR_FORMAT, "%s: no 'step' field (is this a metrics.jsonl of onebit train?)", source);
            if (st == OB_OK && ob_json_get_double(row, "train_loss", source, &v, &present) == OB_OK && present)
                st = push(&out->train_loss, step, v);
            if (st == OB_OK && ob_json_get_double(row, "val_loss", source, &v, &present) == OB_OK && present)
                st = push(&out->val_loss, step, v);
            if (st == OB_OK && ob_json_get_double(row, "lr", source, &v, &present) == OB_OK && present &&
                cJSON_GetObjectItemCaseSensitive(row, "train_loss"))
                st = push(&out->lr, step, v);
            cJSON_Delete(row);
        }
        line = end ? end + 1 : NULL;
    }
    free(text);
    if (st == OB_OK && out->train_loss.count == 0 && out->val_loss.count == 0)
        st = ob_error(OB_ERR_FORMAT, "%s: no train_loss or val_loss rows to plot", path);
    if (st)
        ob_metrics_series_free(out);
    return st;
}

static void free_series(ob_series *s) {
    free(s->x);
    free(s->y);
    memset(s, 0, sizeof *s);
}

void ob_metrics_series_free(ob_metrics_series *s) {
    free_series(&s->train_loss);
    free_series(&s->val_loss);
    free_series(&s->lr);
}

typedef struct {
    double x0, x1, y0, y1; /* data range */
    double left, top, width, height; /* pixels */
} panel;

static double px(const panel *p, double x) { return p->left + (x - p->x0) / (p->x1 - p->x0) * p->width; }
static double py(const panel *p, double y) { return p->top + p->height - (y - p->y0) / (p->y1 - p->y0) * p->height; }

static void range(const ob_series *const *s, int n, double *lo, double *hi, bool x) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int k = 0; k < n; k++)
        for (size_t i = 0; i < s[k]->count; i++) {
            double v = x ? s[k]->x[i] : s[k]->y[i];
            if (isfinite(v)) {
                *lo = fmin(*lo, v);
                *hi = fmax(*hi, v);
            }
        }
    if (!isfinite(*lo)) {
        *lo = 0;
        *hi = 1;
    }
    if (*hi - *lo < 1e-12) {
        *hi += 0.5 * (fabs(*hi) + 1e-3);
        *lo -= 0.5 * (fabs(*lo) + 1e-3);
    }
}

/* Ticks at 1, 2 or 5 times a power of ten. */
static double tick_step(double span) {
    double raw = span / 5, mag = pow(10, floor(log10(raw)));
    double r = raw / mag;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
}

static void axes(FILE *fp, const panel *p, const char *ylabel, const char *xlabel) {
    fprintf(fp, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' stroke='#444'/>\n", p->left, p->top,
            p->width, p->height);
    double dx = tick_step(p->x1 - p->x0), dy = tick_step(p->y1 - p->y0);
    for (double x = ceil(p->x0 / dx) * dx; x <= p->x1 + 1e-9 * dx; x += dx)
        fprintf(fp,
                "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#ddd'/><text x='%.1f' y='%.1f' "
                "font-size='11' text-anchor='middle'>%g</text>\n",
                px(p, x), p->top, px(p, x), p->top + p->height, px(p, x), p->top + p->height + 14, x);
    for (double y = ceil(p->y0 / dy) * dy; y <= p->y1 + 1e-9 * dy; y += dy)
        fprintf(fp,
                "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#ddd'/><text x='%.1f' y='%.1f' "
                "font-size='11' text-anchor='end'>%.3g</text>\n",
                p->left, py(p, y), p->left + p->width, py(p, y), p->left - 5, py(p, y) + 4, y);
    fprintf(fp, "<text x='%.1f' y='%.1f' font-size='12' text-anchor='middle' transform='rotate(-90 %.1f %.1f)'>%s</text>\n",
            p->left - 48, p->top + p->height / 2, p->left - 48, p->top + p->height / 2, ylabel);
    if (xlabel)
        fprintf(fp, "<text x='%.1f' y='%.1f' font-size='12' text-anchor='middle'>%s</text>\n",
                p->left + p->width / 2, p->top + p->height + 32, xlabel);
}

static void polyline(FILE *fp, const panel *p, const ob_series *s, const char *color, bool dots, double opacity) {
    if (!s->count)
        return;
    fprintf(fp, "<polyline fill='none' stroke='%s' stroke-width='1.5' opacity='%.2f' points='", color, opacity);
    for (size_t i = 0; i < s->count; i++)
        if (isfinite(s->y[i]))
            fprintf(fp, "%.1f,%.1f ", px(p, s->x[i]), py(p, s->y[i]));
    fprintf(fp, "'/>\n");
    for (size_t i = 0; dots && i < s->count; i++)
        if (isfinite(s->y[i]))
            fprintf(fp, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n", px(p, s->x[i]), py(p, s->y[i]), color);
}

static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

ob_status ob_plot_svg(const ob_metrics_series *runs, const char *const *labels, int count, const char *title,
                      const char *path) {
    enum { MAX_RUNS = 16 };
    if (count < 1 || count > MAX_RUNS)
        return ob_error(OB_ERR_INVALID_ARG, "plot: between 1 and %d runs, not %d", MAX_RUNS, count);
    ob_atomic_file f;
    ob_status st = ob_atomic_open(&f, path);
    if (st)
        return st;
    FILE *fp = f.fp;
    const double W = 800, H = 600;
    fprintf(fp, "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' font-family='sans-serif'>\n"
                "<rect width='100%%' height='100%%' fill='white'/>\n"
                "<text x='%.0f' y='24' font-size='15' text-anchor='middle'>%s</text>\n",
            W, H, W / 2, title);
    const ob_series *losses[2 * MAX_RUNS], *all[3 * MAX_RUNS], *lrs[MAX_RUNS];
    for (int k = 0; k < count; k++) {
        losses[2 * k] = all[3 * k] = &runs[k].train_loss;
        losses[2 * k + 1] = all[3 * k + 1] = &runs[k].val_loss;
        lrs[k] = all[3 * k + 2] = &runs[k].lr;
    }
    panel loss = {0, 0, 0, 0, 70, 40, 700, 330}, lr = {0, 0, 0, 0, 70, 420, 700, 130};
    range(all, 3 * count, &loss.x0, &loss.x1, true);
    lr.x0 = loss.x0;
    lr.x1 = loss.x1;
    range(losses, 2 * count, &loss.y0, &loss.y1, false);
    range(lrs, count, &lr.y0, &lr.y1, false);
    axes(fp, &loss, "loss", NULL);
    axes(fp, &lr, "learning rate", "step");
    for (int k = 0; k < count; k++) {
        const char *c = colors[k % 6];
        polyline(fp, &loss, &runs[k].train_loss, c, false, 0.5);
        polyline(fp, &loss, &runs[k].val_loss, c, true, 1.0);
        polyline(fp, &lr, &runs[k].lr, c, false, 1.0);
        double y = 55 + 36 * k;
        fprintf(fp,
                "<line x1='560' y1='%.0f' x2='585' y2='%.0f' stroke='%s' stroke-width='1.5' opacity='0.5'/>"
                "<text x='590' y='%.0f' font-size='12'>%s%strain loss</text>\n"
                "<line x1='560' y1='%.0f' x2='585' y2='%.0f' stroke='%s' stroke-width='2'/>"
                "<text x='590' y='%.0f' font-size='12'>%s%svalidation loss</text>\n",
                y, y, c, y + 4, labels ? labels[k] : "", labels ? ", " : "", y + 18, y + 18, c, y + 22,
                labels ? labels[k] : "", labels ? ", " : "");
    }
    fprintf(fp, "</svg>\n");
    if (ferror(fp)) {
        ob_atomic_abort(&f);
        return ob_error(OB_ERR_IO, "%s: write failed", path);
    }
    return ob_atomic_commit(&f);
}

static ob_status write_series(const char *dir, const char *name, const ob_series *s) {
    char *path = ob_path_join(dir, name);
    if (!path)
        return OB_ERR_NOMEM;
    FILE *fp = fopen(path, "w");
    free(path);
    if (!fp)
        return ob_error(OB_ERR_IO, "%s/%s: cannot write", dir, name);
    for (size_t i = 0; i < s->count; i++)
        fprintf(fp, "%.10g %.10g\n", s->x[i], s->y[i]);
    /* gnuplot refuses an empty file: one point outside any range keeps it quiet. */
    if (!s->count)
        fprintf(fp, "NaN NaN\n");
    fclose(fp);
    return OB_OK;
}

ob_status ob_plot_write_columns(const ob_metrics_series *s, int k, const char *dir) {
    char name[32];
    snprintf(name, sizeof name, "train%d.dat", k);
    ob_status st = write_series(dir, name, &s->train_loss);
    snprintf(name, sizeof name, "val%d.dat", k);
    if (st == OB_OK)
        st = write_series(dir, name, &s->val_loss);
    snprintf(name, sizeof name, "lr%d.dat", k);
    if (st == OB_OK)
        st = write_series(dir, name, &s->lr);
    return st;
}
