/* onebit plot: metrics.jsonl → loss/learning-rate plot, as SVG (drawn by
 * onebit) or PNG (rendered by gnuplot, which scripts/install-deps.sh installs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "onebit/plot.h"

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int render_png(const ob_metrics_series *s, const char *title, const char *out) {
    char dir[] = "/tmp/onebit-plot-XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "onebit plot: cannot create a temporary directory\n");
        return 1;
    }
    int rc = 1;
    if (ob_plot_write_columns(s, dir) != OB_OK) {
        ob_cmd_fail("onebit plot");
    } else {
        char script[8192], cmd[9000], tmp_png[4200];
        snprintf(tmp_png, sizeof tmp_png, "%s.tmp.%ld", out, (long)getpid());
        snprintf(script, sizeof script,
                 "set terminal pngcairo size 900,650 font 'sans,10'\nset output '%s'\n"
                 "set multiplot layout 2,1 title '%s'\nset grid\nset ylabel 'loss'\nset key top right\n"
                 "plot '%s/train.dat' with lines lw 1.5 title 'train loss', "
                 "'%s/val.dat' with linespoints pt 7 lw 1.5 title 'validation loss'\n"
                 "set xlabel 'step'\nset ylabel 'learning rate'\nunset key\n"
                 "plot '%s/lr.dat' with lines lw 1.5 lc rgb '#2ca02c'\nunset multiplot\n",
                 tmp_png, title, dir, dir, dir);
        char script_path[64];
        snprintf(script_path, sizeof script_path, "%s/plot.gp", dir);
        FILE *fp = fopen(script_path, "w");
        if (fp) {
            fputs(script, fp);
            fclose(fp);
            /* gnuplot's chatter (range warnings) is shown only when it fails. */
            snprintf(cmd, sizeof cmd, "gnuplot '%s' > '%s/log' 2>&1 || cat '%s/log' >&2", script_path, dir, dir);
            rc = system(cmd) == 0 && rename(tmp_png, out) == 0 ? 0 : 1;
            if (rc)
                fprintf(stderr, "onebit plot: gnuplot failed (install it with scripts/install-deps.sh, or write "
                                "an .svg instead)\n");
            unlink(tmp_png);
        }
        unlink(script_path);
    }
    const char *files[] = {"train.dat", "val.dat", "lr.dat", "log"};
    for (int i = 0; i < 4; i++) {
        char p[64];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
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
        .summary = "Plot train loss, validation loss and learning rate from a metrics.jsonl of onebit train.",
        .usage = "METRICS.jsonl [-o loss.svg|loss.png] [--title TEXT]",
        .args = args,
        .min_positional = 1,
        .max_positional = 1,
    };
    ob_strlist pos;
    int rc = ob_cmd_parse(&spec, argc, argv, &pos);
    if (rc >= 0)
        return rc;
    ob_metrics_series s;
    ob_status st = ob_metrics_read(pos.items[0], &s);
    ob_args_free(&spec, &pos);
    if (st)
        return ob_cmd_fail(argv[0]);
    if (ends_with(out, ".png")) {
        rc = render_png(&s, title, out);
    } else if (ends_with(out, ".svg")) {
        rc = ob_plot_svg(&s, title, out) == OB_OK ? 0 : ob_cmd_fail(argv[0]);
    } else {
        fprintf(stderr, "%s: output '%s' must end in .svg or .png\n", argv[0], out);
        rc = 2;
    }
    if (rc == 0)
        printf("wrote %s (%zu train points, %zu validation points)\n", out, s.train_loss.count, s.val_loss.count);
    ob_metrics_series_free(&s);
    return rc;
}
