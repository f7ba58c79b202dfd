/* A pass's device work recorded once as a CUDA graph and replayed while what
 * shapes it stays the same (cuda_pass.cu): one launch for about 500 nodes,
 * with the memset cuBLASLt queues before each product made a kernel that
 * starts before the one it follows ends (graph.cu, replace_memsets). */
#ifndef ONEBIT_CUDA_GRAPH_CUH
#define ONEBIT_CUDA_GRAPH_CUH

#include "cuda/cuda_common.cuh"

#define OB_GRAPH_KEY 64 /* bytes of the key that says what the recorded work depends on */
#define OB_GRAPH_SLOTS 2 /* graphs kept: the micro-batches of accumulation alternate between two keys */

typedef struct {
    unsigned char key[OB_GRAPH_KEY];
    bool used;
} ob_graph_key;

typedef struct {
    cudaGraphExec_t exec[OB_GRAPH_SLOTS];
    ob_graph_key recorded[OB_GRAPH_SLOTS]; /* what exec[i] was recorded with */
    ob_graph_key seen[OB_GRAPH_SLOTS];     /* keys of recent calls run without a graph */
    int next_recorded, next_seen;          /* the slots to take next, in turn */
    bool off; /* no graphs: ONEBIT_CUDA_GRAPH=0, or a recording failed */
} ob_graph_cache;

typedef ob_status (*ob_graph_body)(void *ctx);

/* Runs body(ctx) on stream s (and the streams it joins to s): directly the
 * first time a key is seen, recorded as a graph when it comes again among
 * the last OB_GRAPH_SLOTS new keys, replayed from then on while its graph is
 * among the last OB_GRAPH_SLOTS recorded. The body must queue the same work
 * for the same key, its only host-side effect. */
ob_status ob_graph_run(ob_graph_cache *c, cudaStream_t s, const void *key, size_t key_size, ob_graph_body body,
                       void *ctx);
void ob_graph_free(ob_graph_cache *c);

#endif
