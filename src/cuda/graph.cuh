/* A pass's device work recorded once as a CUDA graph and replayed while what
 * shapes it stays the same (cuda_pass.cu): one launch for about 500 nodes,
 * with the memset cuBLASLt queues before each product made a kernel that
 * starts before the one it follows ends (graph.cu, replace_memsets). */
#ifndef ONEBIT_CUDA_GRAPH_CUH
#define ONEBIT_CUDA_GRAPH_CUH

#include "cuda/cuda_common.cuh"

#define OB_GRAPH_KEY 64 /* bytes of the key that says what the recorded work depends on */

typedef struct {
    cudaGraphExec_t exec;
    unsigned char exec_key[OB_GRAPH_KEY]; /* what exec was recorded with */
    unsigned char last_key[OB_GRAPH_KEY]; /* the key of the call before */
    bool has_exec, has_last;
    bool off; /* no graphs: ONEBIT_CUDA_GRAPH=0, or a recording failed */
} ob_graph_cache;

typedef ob_status (*ob_graph_body)(void *ctx);

/* Runs body(ctx) on stream s (and the streams it joins to s): directly the
 * first time a key is seen, recorded as a graph the second time in a row,
 * replayed from then on while the key stays. The body must queue the same
 * work for the same key, its only host-side effect. */
ob_status ob_graph_run(ob_graph_cache *c, cudaStream_t s, const void *key, size_t key_size, ob_graph_body body,
                       void *ctx);
void ob_graph_free(ob_graph_cache *c);

#endif
