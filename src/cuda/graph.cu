/* Recording and replay of a pass as a CUDA graph (see graph.cuh). */
#include <stdlib.h>
#include <string.h>

#include "cuda/graph.cuh"

/* Writes a memset node's 4 bytes once the kernel before it has finished
 * (launched as its programmatic dependent). */
__global__ void set_word(uint32_t *dst, uint32_t value) {
    grid_dependency_wait();
    *dst = value;
}

/* cuBLASLt's products come as a memset of a 4-byte counter, then the kernel.
 * In a chain P -> memset -> K the memset costs two launch gaps; a one-thread
 * kernel launched as P's programmatic dependent does the same write with none
 * worth the name. Counts the memsets replaced; an error leaves the graph
 * unusable (a device without programmatic launches, say). */
static cudaError_t replace_memsets(cudaGraph_t graph, int *replaced) {
    *replaced = 0;
    size_t n = 0;
    cudaError_t e = cudaGraphGetNodes(graph, NULL, &n);
    cudaGraphNode_t *nodes = (cudaGraphNode_t *)malloc((n ? n : 1) * sizeof *nodes);
    if (!nodes)
        return cudaErrorMemoryAllocation;
    if (e == cudaSuccess)
        e = cudaGraphGetNodes(graph, nodes, &n);
    for (size_t i = 0; i < n && e == cudaSuccess; i++) {
        cudaGraphNodeType type;
        cudaMemsetParams ms;
        if (cudaGraphNodeGetType(nodes[i], &type) != cudaSuccess || type != cudaGraphNodeTypeMemset ||
            cudaGraphMemsetNodeGetParams(nodes[i], &ms) != cudaSuccess || ms.height != 1 ||
            ms.width * ms.elementSize != 4)
            continue;
        cudaGraphNode_t before, after;
        cudaGraphEdgeData in, out;
        size_t nin = 0, nout = 0;
        if (cudaGraphNodeGetDependencies(nodes[i], NULL, NULL, &nin) != cudaSuccess || nin != 1 ||
            cudaGraphNodeGetDependentNodes(nodes[i], NULL, NULL, &nout) != cudaSuccess || nout != 1)
            continue;
        if ((e = cudaGraphNodeGetDependencies(nodes[i], &before, &in, &nin)) != cudaSuccess ||
            (e = cudaGraphNodeGetDependentNodes(nodes[i], &after, &out, &nout)) != cudaSuccess)
            break;
        cudaGraphNodeType before_type;
        if ((e = cudaGraphNodeGetType(before, &before_type)) != cudaSuccess)
            break;
        uint32_t value = ms.elementSize == 4   ? ms.value
                         : ms.elementSize == 2 ? (ms.value & 0xFFFFu) * 0x10001u
                                               : (ms.value & 0xFFu) * 0x1010101u;
        uint32_t *dst = (uint32_t *)ms.dst;
        void *args[2] = {&dst, &value};
        cudaKernelNodeParams kp = {};
        kp.func = (void *)set_word;
        kp.gridDim = dim3(1);
        kp.blockDim = dim3(1);
        kp.kernelParams = args;
        cudaGraphNode_t word;
        cudaGraphEdgeData programmatic = {};
        programmatic.from_port = cudaGraphKernelNodePortProgrammatic;
        programmatic.type = cudaGraphDependencyTypeProgrammatic;
        if ((e = cudaGraphAddKernelNode(&word, graph, NULL, 0, &kp)) != cudaSuccess ||
            (e = cudaGraphAddDependencies(graph, &before, &word,
                                          before_type == cudaGraphNodeTypeKernel ? &programmatic : &in, 1)) !=
                cudaSuccess ||
            (e = cudaGraphAddDependencies(graph, &word, &after, &out, 1)) != cudaSuccess ||
            (e = cudaGraphDestroyNode(nodes[i])) != cudaSuccess)
            break;
        /* The priority of the product's stream: a kernel added by hand has
         * the lowest, and waited behind the weight gradients' kernels. */
        cudaLaunchAttributeValue priority;
        if (cudaGraphKernelNodeGetAttribute(after, cudaLaunchAttributePriority, &priority) == cudaSuccess &&
            (e = cudaGraphKernelNodeSetAttribute(word, cudaLaunchAttributePriority, &priority)) != cudaSuccess)
            break;
        (*replaced)++;
    }
    free(nodes);
    return e;
}

/* Records body as a graph into *exec; false (and no graph) where the
 * recording failed, an error where the body did. */
static ob_status record(cudaGraphExec_t *exec_out, cudaStream_t s, ob_graph_body body, void *ctx, bool *recorded) {
    *recorded = false;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
    ob_status st = OB_OK;
    if (e == cudaSuccess) {
        st = body(ctx);
        e = cudaStreamEndCapture(s, &graph);
    }
    cudaGraphExec_t exec = NULL;
    size_t nodes = 0;
    int replaced = 0;
    if (st == OB_OK && e == cudaSuccess)
        e = replace_memsets(graph, &replaced);
    /* Node priorities: the weight gradients' kernels keep their stream's lower one. */
    if (st == OB_OK && e == cudaSuccess && (e = cudaGraphGetNodes(graph, NULL, &nodes)) == cudaSuccess &&
        (e = cudaGraphInstantiate(&exec, graph, cudaGraphInstantiateFlagUseNodePriority)) == cudaSuccess)
        e = cudaGraphUpload(exec, s); /* the first replay then starts as fast as the later ones */
    if (graph)
        cudaGraphDestroy(graph);
    if (st != OB_OK || e != cudaSuccess) {
        if (exec)
            cudaGraphExecDestroy(exec);
        cudaGetLastError(); /* the failure is reported here, not by the next launch check */
    }
    if (st != OB_OK)
        return st;
    if (e != cudaSuccess) {
        ob_log(OB_LOG_WARN, "cuda: a pass could not be recorded as a CUDA graph (%s); passes run without graphs",
               cudaGetErrorString(e));
        return OB_OK;
    }
    ob_log(OB_LOG_DEBUG, "cuda: pass recorded as a CUDA graph of %zu nodes (%d memsets replaced)", nodes, replaced);
    *exec_out = exec;
    *recorded = true;
    return OB_OK;
}

/* The slot of keys[] that holds key, or -1. */
static int find_key(const ob_graph_key *keys, const void *key, size_t size) {
    for (int i = 0; i < OB_GRAPH_SLOTS; i++)
        if (keys[i].used && memcmp(keys[i].key, key, size) == 0)
            return i;
    return -1;
}

static void put_key(ob_graph_key *slot, const void *key, size_t size) {
    memset(slot->key, 0, sizeof slot->key);
    memcpy(slot->key, key, size);
    slot->used = true;
}

ob_status ob_graph_run(ob_graph_cache *c, cudaStream_t s, const void *key, size_t key_size, ob_graph_body body,
                       void *ctx) {
    if (c->off || key_size > OB_GRAPH_KEY)
        return body(ctx);
    int slot = find_key(c->recorded, key, key_size);
    if (slot < 0) {
        int seen = find_key(c->seen, key, key_size);
        if (seen < 0) {
            put_key(&c->seen[c->next_seen], key, key_size);
            c->next_seen = (c->next_seen + 1) % OB_GRAPH_SLOTS;
            return body(ctx);
        }
        cudaGraphExec_t exec;
        bool recorded;
        OB_STATUS_TRY(record(&exec, s, body, ctx, &recorded));
        if (!recorded) {
            c->off = true;
            return body(ctx);
        }
        c->seen[seen].used = false;
        slot = c->next_recorded;
        c->next_recorded = (slot + 1) % OB_GRAPH_SLOTS;
        if (c->recorded[slot].used)
            cudaGraphExecDestroy(c->exec[slot]);
        c->exec[slot] = exec;
        put_key(&c->recorded[slot], key, key_size);
    }
    OB_CUDA_TRY(cudaGraphLaunch(c->exec[slot], s));
    return OB_OK;
}

void ob_graph_free(ob_graph_cache *c) {
    for (int i = 0; i < OB_GRAPH_SLOTS; i++)
        if (c->recorded[i].used)
            cudaGraphExecDestroy(c->exec[i]);
    memset(c, 0, sizeof *c);
}
