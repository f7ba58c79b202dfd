/* onebit plot: one or more metrics.jsonl → loss/learning-rate plot, as SVG
 * (drawn by onebit) or PNG (rendered by gnuplot, which scripts/install-deps.sh
 * installs). Each run is labelled with the name of its directory. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "onebit/plot.h"

#define MAX_RUNS 16

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* "runs/x/metrics.jsonl" → "x". */
static void label_of(const char *path, char *out, size_t size) {
    char *copy = ob_strdup(path), *dir = copy ? dirname(copy) : NULL;
    snprintf(out, size, "%s", dir ? basename(dir) : path);
    free(copy);
}

static void remove_scratch(const char *dir, int runs) {
    for (int k = 0; k < runs; k++) {
        const char *kinds[] = {"train", "val", "lr"};
        for (int i = 0; i < 3; i++) {
            char p[96];
            snprintf(p, sizeof p, "%s/%s%d.dat", dir, kinds[i], k);
            unlink(p);
        }
    }
    char p[96];
    snprintf(p, sizeof p, "%s/plot.gp", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/log", dir);
    unlink(p);
    rmdir(dir);
}

static int render_png(const ob_metrics_series *runs, char labels[][128], int count, const char *title,
                      const char *out) {
    char dir[] = "/tmp/onebit-plot-XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "onebit plot: cannot create a temporary directory\n");
        return 1;
    }
    int rc = 1;
    char tmp_png[4200], script_path[64];
    snprintf(tmp_png, sizeof tmp_png, "%s.tmp.%ld", out, (long)getpid());
    snprintf(script_path, sizeof script_path, "%s/plot.gp", dir);
    FILE *fp = fopen(script_path, "w");
    for (int k = 0; k < count && fp; k++)
        if (ob_plot_write_columns(&runs[k], k, dir) != OB_OK) {
            ob_cmd_fail("onebit plot");
            fclose(fp);
            fp = NULL;
        }
    if (fp) {
        fprintf(fp, "set terminal pngcairo size 900,650 font 'sans,10'\nset output '%s'\n"
                    "set multiplot layout 2,1 title '%s'\nset grid\nset ylabel 'loss'\nset key top right\nplot ",
                tmp_png, title);
        for (int k = 0; k < count; k++)
            fprintf(fp, "%s'%s/train%d.dat' with lines lw 1 lc %d title '%s, train', '%s/val%d.dat' with linespoints "
                        "pt 7 lw 2 lc %d title '%s, validation'",
                    k ? ", " : "", dir, k, k + 1, labels[k], dir, k, k + 1, labels[k]);
        fprintf(fp, "\nset xlabel 'step'\nset ylabel 'learning rate'\nunset key\nplot ");
        for (int k = 0; k < count; k++)
            fprintf(fp, "%s'%s/lr%d.dat' with lines lw 1.5 lc %d", k ? ", " : "", dir, k, k + 1);
        fprintf(fp, "\nunset multiplot\n");
        fclose(fp);
        /* gnuplot's chatter (range warnings) is shown only when it fails. */
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "gnuplot '%s' > '%s/log' 2>&1 || cat '%s/log' >&2", script_path, dir, dir);
        rc = system(cmd) == 0 && rename(tmp_png, out) == 0 ? 0 : 1;
        if (rc)
            fprintf(stderr, "onebit plot: gnuplot failed (install it with scripts/install-deps.sh, or write an "
                            ".svg instead)\n");
        unlink(tmp_png);
    }
    remove_scratch(dir, count);
    return rc;
}

int ob_cmd_plot(int argc, char **argv) {
    const char *out = "loss.svg", *title = "onebit training";
    const ob_arg args[] = {
        {"-o", OB_ARG_STRING, &out, "FILE", "output: .svg (drawn by onebit) or .png (gnuplot)", NULL, 0, 0, NULL},
        {"--output", OB_ARG_STRING, &out, "FILE", "same as -o", NULL, 0, 0, NULL},
        {"--title", OB_ARG_STRING, &title, "TEXT", "plot title", NULL, 0, 0, NULL},
        {0},
    };
    const ob_command_spec spec = {
        .name = argv[0],
        .summary = "Plot train loss, validation loss and learning rate from the metrics.jsonl of one or more runs "
                   "of onebit train (several runs share the axes, labelled by their directory).",
        .usage = "METRICS.jsonl... [-o loss.svg|loss.png] [--title TEXT]",
        .args = args,
        .min_positional = 1,
        .max_positional = MAX_RUNS,
    };
    ob_strlist pos;
    int rc = ob_cmd_parse(&spec, argc, argv, &pos);
    if (rc >= 0)
        return rc;
    ob_metrics_series runs[MAX_RUNS];
    char labels[MAX_RUNS][128];
    const char *label_ptrs[MAX_RUNS];
    int count = 0;
    for (; count < pos.count; count++) {
        if (ob_metrics_read(pos.items[count], &runs[count]) != OB_OK) {
            rc = ob_cmd_fail(argv[0]);
            break;
        }
        label_of(pos.items[count], labels[count], sizeof labels[count]);
        label_ptrs[count] = labels[count];
    }
    if (rc < 0) {
        if (ends_with(out, ".png"))
            rc = render_png(runs, labels, count, title, out);
        else if (ends_with(out, ".svg"))
            rc = ob_plot_svg(runs, count > 1 ? label_ptrs : NULL, count, title, out) == OB_OK ? 0 : ob_cmd_fail(argv[0]);
        else {
            fprintf(stderr, "%s: output '%s' must end in .svg or .png\n", argv[0], out);
            rc = 2;
        }
        if (rc == 0)
            printf("wrote %s (%d run%s)\n", out, count, count > 1 ? "s" : "");
    }
    for (int k = 0; k < count; k++)
        ob_metrics_series_free(&runs[k]);
    ob_args_free(&spec, &pos);
    return rc;
}
