/* See lib_paramcheck.h. */
#include "tests/lib/lib_paramcheck.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/core/philox.h"

/* The disagreements printed before the rest are only counted. */
#define PARAMCHECK_PRINTED 10

int paramcheck_agrees(const char *name, double an, double fd, double gg, double vv, size_t n,
                      double e, double terms_l2, const paramcheck_bounds *b, paramcheck_result *r) {
    const double scale = sqrt(gg) * sqrt(vv) / sqrt((double)n);
    const double noise = b->round_ulps * FLT_EPSILON * terms_l2 / (2 * e);
    const double allowed = b->rel * fabs(an) + b->abs * scale + noise;
    const double rel_err = fabs(fd - an) / (scale > 0 ? scale : 1);
    if (rel_err > r->worst) r->worst = rel_err;
    if (fabs(fd - an) <= allowed) return 1;
    if (r->bad++ < PARAMCHECK_PRINTED)
        printf("    %s: <g,v> %.6g, finite difference %.6g (allowed %.3g)\n", name, an, fd,
               allowed);
    return 0;
}

paramcheck_result paramcheck_every_tensor(const cnet_params *p, const float *grad, uint64_t seed,
                                          const paramcheck_bounds *b, paramcheck_loss_fn loss,
                                          void *ctx) {
    cnet_backend *be = p->be;
    paramcheck_result r = {0};
    float *w = malloc(p->total * sizeof(float)), *v = malloc(p->total * sizeof(float));
    if (!w || !v) {
        free(w), free(v);
        r.bad = -1;
        return r;
    }
    be->download(be, w, p->block, p->total * sizeof(float));
    philox_normal_fill(v, (long)p->total, seed, 0);
    for (int k = 0; k < p->n; k++) {
        const cnet_param *q = &p->items[k];
        const size_t o = q->offset, n = q->numel;
        double an = 0, gg = 0, vv = 0, ww = 0, l[2] = {NAN, NAN}, terms = 0;
        for (size_t i = 0; i < n; i++) ww += (double)w[o + i] * w[o + i];
        const double e = fmax(b->eps_rel * sqrt(ww / (double)n), b->eps_min);
        for (size_t i = 0; i < n; i++) {
            an += (double)grad[o + i] * v[o + i];
            gg += (double)grad[o + i] * grad[o + i], vv += (double)v[o + i] * v[o + i];
        }
        r.zero += gg == 0;
        float *moved = malloc(n * sizeof(float));
        for (int s = 0; s < 2 && moved; s++) {
            for (size_t i = 0; i < n; i++) moved[i] = (float)(w[o + i] + (s ? -e : e) * v[o + i]);
            be->upload(be, q->data, moved, n * sizeof(float));
            l[s] = loss(ctx, &terms);
        }
        free(moved);
        be->upload(be, q->data, w + o, n * sizeof(float));
        paramcheck_agrees(q->name, an, (l[0] - l[1]) / (2 * e), gg, vv, n, e, terms, b, &r);
    }
    free(w), free(v);
    return r;
}
