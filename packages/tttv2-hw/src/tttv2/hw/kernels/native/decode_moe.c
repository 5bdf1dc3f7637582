/* The feed-forward of a mixture-of-experts layer in a decode step (decode_layer.c):
 *
 *     y = routed experts of the step's routing on n  (routed_experts.c: each chosen expert
 *         once, on the rows routed to it; experts nobody chose are not read)
 *     y = round(y + round(shared * gate))           (a shared expert, computed by the dense
 *                                                     feed-forward of decode_layer.c; gate
 *                                                     per row, or 1 without one)
 *
 * The router is not here: the caller decides the routing between the attention and the
 * feed-forward (the layer stack returns to it for that, see tttv2_decode_layers) and writes
 * it into MoERouting, so the experts chosen are exactly the ones its router chose.
 */
#include "routed_experts.c"

/* One step's routing, written by the caller before the layer's feed-forward runs:
 * counts[e] assignments per expert (0: not chosen), rows[a] and weights[a] per assignment
 * grouped by expert in ascending id, shared_gate[r] (activation dtype; NULL: unscaled). */
typedef struct {
    const int64_t *counts, *rows;
    const float *weights;
    const void *shared_gate;
    int64_t assigned; /* entries of rows and weights: the counts must sum to it */
} MoERouting;

/* Per layer, bound once: every expert's weights by id ([experts] pointers each, dtype of
 * the layer's projections), their intermediate width and activation, and the routing. */
typedef struct {
    int64_t experts, inter;
    const void *const *gate_w, *const *up_w, *const *down_w;
    int32_t activation;
    const MoERouting *routing;
} MoEExperts;

/* y[rows, hidden] (dtype t) = the routed experts on n. Returns 0; 1 for a missing routing;
 * 2 when memory is missing; 3 for a negative count, counts that do not sum to the
 * assignments given, or a row outside [0, rows). */
static int moe_routed(const MoEExperts *M, const void *n, int t, void *y, int64_t rows, int64_t hidden, int wt,
                      int64_t l2_bytes) {
    const MoERouting *R = M->routing;
    if (!R || !R->counts || !R->rows || !R->weights) return 1;
    int64_t groups = 0, total = 0;
    for (int64_t e = 0; e < M->experts; e++) {
        if (R->counts[e] < 0) return 3;
        groups += R->counts[e] > 0, total += R->counts[e];
    }
    if (total != R->assigned) return 3; /* before reading rows or weights */
    for (int64_t a = 0; a < total; a++)
        if (R->rows[a] < 0 || R->rows[a] >= rows) return 3;
    if (groups == 0) {
        memset(y, 0, (size_t)(rows * hidden * (t == F32 ? 4 : 2)));
        return 0;
    }
    const void **w = (const void **)malloc((size_t)(3 * groups) * sizeof(void *));
    int64_t *counts = (int64_t *)malloc((size_t)groups * sizeof(int64_t));
    if (!w || !counts) {
        free(w), free(counts);
        return 2;
    }
    for (int64_t e = 0, g = 0; e < M->experts; e++) {
        if (R->counts[e] <= 0) continue;
        w[g] = M->gate_w[e], w[groups + g] = M->up_w[e], w[2 * groups + g] = M->down_w[e];
        counts[g++] = R->counts[e];
    }
    const int status = tttv2_routed_experts(n, t, y, rows, hidden, M->inter, R->rows, R->weights, counts, groups, w,
                                            w + groups, w + 2 * groups, wt, M->activation, l2_bytes);
    free(w), free(counts);
    return status;
}

/* y = round(y + round(s * gate[r])) for each row r (gate NULL: round(y + s)), dtype t. */
static void moe_add_shared(void *y, const void *s, const void *gate, int t, int64_t rows, int64_t hidden) {
    for (int64_t r = 0; r < rows; r++) {
        const float g = gate ? load1(gate, r, t) : 1.0f;
        for (int64_t h = r * hidden; h < (r + 1) * hidden; h++) {
            const float v = gate ? moe_round1(load1(s, h, t) * g, t) : load1(s, h, t);
            store1(y, h, load1(y, h, t) + v, t);
        }
    }
}
