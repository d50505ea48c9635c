/*
 * dszero.h -- the C ABI of dszero, DeepSpeed's training runtime as a library.
 *
 * The host program computes forward and backward passes on its own tensors and
 * hands them over as DLPack DLTensors; dszero owns everything around them:
 * master weights, optimizer states, loss scaling, gradient accumulation and
 * clipping, LR schedules, ZeRO partitioning and checkpoints. A DeepSpeed
 * ds_config.json drives it unchanged.
 *
 * Conventions (see README.md and docs/):
 *   - Every function returns a dsz_status; results come back through pointers.
 *     On failure dsz_last_error() gives a message for the calling thread.
 *   - Handles are opaque. Constructors write the handle through a leading **out.
 *   - Growable structs carry their own size as the first field and have an
 *     *_init(ptr, size) function that fills defaults; the library reads or
 *     writes at most `size` bytes of them, so fields can be appended.
 *   - Nothing here needs CUDA or any C++ header: only <stdint.h>, <stddef.h>
 *     and DLPack.
 *   - "Collective" means every rank must make the call, in the same order.
 */
#ifndef DSZERO_H
#define DSZERO_H

#include <stddef.h>
#include <stdint.h>

#include <dlpack/dlpack.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define DSZ_API __declspec(dllexport)
#elif defined(__GNUC__)
#define DSZ_API __attribute__((visibility("default")))
#else
#define DSZ_API
#endif

/* ------------------------------------------------------------------------- */
/* Versions and features                                                      */
/* ------------------------------------------------------------------------- */

#define DSZ_VERSION_MAJOR 0
#define DSZ_VERSION_MINOR 1
#define DSZ_VERSION_PATCH 0
#define DSZ_VERSION_NUMBER \
    (DSZ_VERSION_MAJOR * 10000 + DSZ_VERSION_MINOR * 100 + DSZ_VERSION_PATCH)

/* The library's version as "MAJOR.MINOR.PATCH" (static storage, never NULL).
 * Compare with DSZ_VERSION_* to detect a header/library mismatch. */
DSZ_API const char *dsz_version(void);

/* DSZ_VERSION_NUMBER of the loaded library. */
DSZ_API int32_t dsz_version_number(void);

/* Bits of dsz_features(): what this build of the library was compiled with. */
#define DSZ_FEATURE_CUDA   (1u << 0) /* CUDA kernels and device memory */
#define DSZ_FEATURE_NCCL   (1u << 1) /* NCCL communicator */
#define DSZ_FEATURE_MPI    (1u << 2) /* MPI communicator (mpirun / srun) */
#define DSZ_FEATURE_AIO    (1u << 3) /* libaio NVMe offload */
#define DSZ_FEATURE_AVX2   (1u << 4) /* AVX2 CPU kernels compiled in */
#define DSZ_FEATURE_AVX512 (1u << 5) /* AVX-512 CPU kernels compiled in */

DSZ_API uint32_t dsz_features(void);

/* ------------------------------------------------------------------------- */
/* Status and errors                                                          */
/* ------------------------------------------------------------------------- */

/* Status codes have fixed numbers: they are only ever appended, never reused. */
typedef int32_t dsz_status;
enum {
    DSZ_OK = 0,
    DSZ_ERR_INVALID_ARGUMENT = 1, /* NULL or dead handle, bad argument value */
    DSZ_ERR_CONFIG = 2,           /* the DeepSpeed config was refused */
    DSZ_ERR_DTYPE = 3,            /* a tensor's dtype does not fit */
    DSZ_ERR_SHAPE = 4,            /* a tensor's shape or layout does not fit */
    DSZ_ERR_STATE = 5,            /* the call is not valid in this state */
    DSZ_ERR_IO = 6,               /* reading or writing a file failed */
    DSZ_ERR_CHECKPOINT = 7,       /* a checkpoint is corrupt or incompatible */
    DSZ_ERR_OUT_OF_MEMORY = 8,
    DSZ_ERR_NOT_FOUND = 9,        /* a named thing (file, tag, parameter) is missing */
    DSZ_ERR_UNSUPPORTED = 10,     /* valid, but not supported by this build */
    DSZ_ERR_COMM = 11,            /* a collective failed */
    DSZ_ERR_TIMEOUT = 12,         /* a collective did not complete in time */
    DSZ_ERR_LOSS_SCALE = 13,      /* fp16 overflow with the loss scale at its minimum */
    DSZ_ERR_INTERNAL = 14,        /* a bug in dszero: please report it */
    DSZ_ERR_CUDA = 15             /* a CUDA error */
};

/* A short static description of a status ("invalid argument"); never NULL. */
DSZ_API const char *dsz_status_string(dsz_status status);

/* The message of the last failed call made by this thread. Never NULL ("" when
 * no call failed yet). Valid until the next dszero call on this thread. */
DSZ_API const char *dsz_last_error(void);

/* Releases a string that dszero allocated and handed over (dsz_load's client
 * state, dsz_config_resolve's output). Accepts NULL. */
DSZ_API void dsz_string_free(char *s);

/* ------------------------------------------------------------------------- */
/* Logging                                                                    */
/* ------------------------------------------------------------------------- */

enum {
    DSZ_LOG_DEBUG = 0,
    DSZ_LOG_INFO = 1,
    DSZ_LOG_WARNING = 2,
    DSZ_LOG_ERROR = 3
};

/* Receives every message the library would print. `message` has no trailing
 * newline and is valid only during the call. May be called from any thread
 * that is inside a dszero call. Must not call back into dszero. */
typedef void (*dsz_log_fn)(int32_t level, const char *message, void *user_data);

/* ------------------------------------------------------------------------- */
/* Engine creation                                                            */
/* ------------------------------------------------------------------------- */

typedef struct dsz_engine dsz_engine;

/* What DeepSpeed would learn from its launcher and from the Hugging Face
 * trainer. Fill with dsz_init_options_init, then set what you need. */
typedef struct dsz_init_options {
    uint32_t size;        /* sizeof(dsz_init_options), set by _init */
    uint32_t reserved0;
    int32_t world_size;   /* 0: from the launcher (1 without one) */
    int32_t rank;         /* -1: from the launcher (0 without one) */
    int32_t local_rank;   /* -1: from the launcher */
    int32_t cpu_threads;  /* threads for CPU kernels; 0: all cores */
    /* Values for keys set to "auto", as a JSON object (copied during dsz_init;
     * may be NULL). Two kinds of keys:
     *   - a config key path, e.g. "optimizer.params.lr": 3e-4,
     *     "train_micro_batch_size_per_gpu": 8, "optimizer.params.betas": [0.9, 0.95];
     *   - a Hugging Face TrainingArguments name, filled in the way its trainer
     *     does: per_device_train_batch_size, gradient_accumulation_steps,
     *     learning_rate, adam_beta1, adam_beta2, adam_epsilon, weight_decay,
     *     max_grad_norm, warmup_steps, num_training_steps, fp16, bf16,
     *     hidden_size.
     * A key path wins over a trainer name. An "auto" left unresolved is an
     * error naming its key. */
    const char *auto_values;
    dsz_log_fn log_fn;    /* NULL: stderr */
    void *log_user_data;
    int32_t log_level;    /* minimum level delivered; default DSZ_LOG_INFO */
    int32_t log_all_ranks; /* 0 (default): only rank 0 logs */
    /* --- appended in 0.1 (ZeRO across ranks) --- */
    /* A host-owned MPI communicator, as a pointer to an MPI_Comm (e.g.
     * &MPI_COMM_WORLD, or a sub-communicator): the engine's ranks are that
     * communicator's. dszero duplicates it (collectively) and never
     * initialises or finalises MPI then. NULL (default): without a launcher,
     * one rank and no MPI at all; under mpirun / srun, every launched rank. */
    void *mpi_comm;
} dsz_init_options;

/* Fills *opts with defaults for a struct of `size` bytes (pass
 * sizeof(dsz_init_options)). Fails with DSZ_ERR_INVALID_ARGUMENT on NULL or
 * a size smaller than the first version of the struct. */
DSZ_API dsz_status dsz_init_options_init(dsz_init_options *opts, size_t size);

/* Heap-allocated options for bindings that prefer not to mirror the struct's
 * size: *out is filled with defaults and owned by the caller, who releases it
 * with dsz_init_options_free. Freeing NULL is DSZ_OK; freeing a pointer that
 * is not a live options object (twice, or never allocated here) returns
 * DSZ_ERR_INVALID_ARGUMENT and touches nothing. */
DSZ_API dsz_status dsz_init_options_new(dsz_init_options **out);
DSZ_API dsz_status dsz_init_options_free(dsz_init_options *opts);

/* Creates an engine from a DeepSpeed config: `config` is JSON text when its
 * first non-blank character is '{', else the path of a JSON file. `opts` may
 * be NULL (defaults). Nothing is borrowed: the config and options are copied.
 * On success *out owns the engine (release with dsz_engine_free). On failure
 * *out is set to NULL and the message names the JSON key path and the
 * reason. Collective when world_size > 1. */
DSZ_API dsz_status dsz_init(dsz_engine **out, const char *config,
                            const dsz_init_options *opts);

/* Releases the engine and everything it owns. The host's tensors are not
 * touched. NULL is DSZ_OK; a handle that is not live (already freed) returns
 * DSZ_ERR_INVALID_ARGUMENT and touches nothing. */
DSZ_API dsz_status dsz_engine_free(dsz_engine *engine);

/* Validates a config and writes the fully resolved config (every default and
 * "auto" filled in, batch sizes resolved) as JSON into *resolved_json, which
 * the caller releases with dsz_string_free. `resolved_json` may be NULL to only
 * validate. Does not create an engine; not collective. */
DSZ_API dsz_status dsz_config_resolve(const char *config,
                                      const dsz_init_options *opts,
                                      char **resolved_json);

/* ------------------------------------------------------------------------- */
/* Parameters                                                                 */
/* ------------------------------------------------------------------------- */

/* One trainable parameter. `tensor` must be compact (strides NULL or
 * row-major), in host memory (kDLCPU or kDLCUDAHost), with the model dtype
 * of the config: float32 without mixed precision, float16 with fp16,
 * bfloat16 with bf16.
 * Contract at stages 0-2: the host owns the tensor's memory; it must stay at
 * the same address and size until dsz_engine_free. dszero reads it during
 * dsz_register_params (the initial values) and writes the updated values
 * into it at the end of every dsz_step that applies an update. At stage 3
 * it is read only during dsz_register_params (see dsz_gather). */
typedef struct dsz_param {
    const char *name;       /* unique, non-empty; copied */
    const DLTensor *tensor; /* borrowed: the DLTensor struct itself is read only
                               during the call; its data as described above */
    int32_t group;          /* index into the groups of dsz_register_params */
    uint32_t flags;         /* reserved, must be 0 */
} dsz_param;

/* Which fields of a dsz_param_group are set; unset ones take the values of
 * the config's optimizer.params. */
#define DSZ_GROUP_LR           (1u << 0)
#define DSZ_GROUP_WEIGHT_DECAY (1u << 1)
/* The group holds expert parameters of a mixture-of-experts layer whose
 * expert-parallel groups have `ep_size` ranks (DeepSpeed's "ep_size_<ep>"
 * groups; docs/moe.md): ranks of one expert-parallel group register
 * different experts (distinct names, the same shapes), their gradients are
 * summed over the expert-data-parallel group only and divided by the whole
 * data-parallel size, and ZeRO partitions the group over the
 * expert-data-parallel group. ep_size must divide the world size. */
#define DSZ_GROUP_EXPERT       (1u << 2)

typedef struct dsz_param_group {
    const char *name;      /* may be NULL; copied */
    uint32_t set_fields;   /* DSZ_GROUP_* bits */
    uint32_t ep_size;      /* with DSZ_GROUP_EXPERT (>= 1); otherwise must be 0 */
    double lr;
    double weight_decay;
} dsz_param_group;

/* Registers the model's parameters, once per engine. `groups` may be NULL
 * with n_groups 0: then every parameter must name group 0, which takes the
 * config's optimizer settings. Parameters are laid out group by group, in
 * the order given. Builds the fp32 master weights and optimizer state.
 * Fails, with the engine unchanged, on a duplicate or empty name, a group
 * index out of range, a dtype that is not the model dtype, a non-compact or
 * non-host tensor, or a second call. Collective when world_size > 1. */
DSZ_API dsz_status dsz_register_params(dsz_engine *engine,
                                       const dsz_param *params, size_t n_params,
                                       const dsz_param_group *groups,
                                       size_t n_groups);

/* The registration index of the parameter called `name`. */
DSZ_API dsz_status dsz_param_index(dsz_engine *engine, const char *name,
                                   size_t *index);

/* ------------------------------------------------------------------------- */
/* Training                                                                   */
/* ------------------------------------------------------------------------- */

/* What the host multiplies its loss by before backward: the current loss
 * scale divided by gradient_accumulation_steps (DeepSpeed's engine.backward
 * does the same two things). 1/GAS without fp16. Non-blocking. */
DSZ_API dsz_status dsz_loss_scale(dsz_engine *engine, double *multiplier);

/* Hands over the gradient of parameter `index` for this micro-batch, in any
 * order. The gradient must have the parameter's dtype and shape and live in
 * host memory. Contract: the gradient has been consumed when the call
 * returns; the host may reuse or free its buffer at once. A parameter with
 * no gradient in a micro-batch counts as zero. Handing over the same
 * parameter twice in one micro-batch is DSZ_ERR_STATE (nothing accumulated).
 * At ZeRO stage 2 across ranks it may start non-blocking reductions of
 * completed buckets, so every rank must hand over gradients for the same
 * parameters in each micro-batch (the order may differ between ranks); it
 * never waits for other ranks except to keep at most two buckets in flight. */
DSZ_API dsz_status dsz_grad_ready(dsz_engine *engine, size_t index,
                                  const DLTensor *grad);

/* Ends a micro-batch's backward pass. Collective when world_size > 1. */
DSZ_API dsz_status dsz_backward(dsz_engine *engine);

/* Growable result of dsz_step. */
typedef struct dsz_step_info {
    uint32_t size;          /* sizeof(dsz_step_info), set by _init */
    int32_t boundary;       /* 1 when this call ended an accumulation window */
    int32_t stepped;        /* 1 when the optimizer updated the parameters */
    int32_t skipped;        /* 1 when an fp16/bf16 overflow skipped the update */
    int64_t global_steps;   /* optimizer steps taken or skipped so far */
    int64_t micro_steps;    /* micro-batches seen so far */
    int64_t skipped_steps;  /* steps skipped for overflow so far */
    double grad_norm;       /* unscaled global gradient norm of the last boundary;
                               -1 when it was not finite, 0 before any */
    double lr;              /* learning rate of group 0 for the next step */
    double loss_scale;      /* loss scale for the next micro-batch */
    /* --- appended in 0.1 (ZeRO across ranks) --- */
    double comm_wait_ms;    /* time this rank spent blocked on collectives
                               since the previous dsz_step (0 on one rank) */
} dsz_step_info;

DSZ_API dsz_status dsz_step_info_init(dsz_step_info *info, size_t size);

/* Called once per micro-batch, after dsz_backward. At the accumulation
 * boundary (every gradient_accumulation_steps calls) it unscales, checks for
 * overflow, clips, updates the master weights, writes them back into the
 * host's parameter tensors, steps the LR schedule and the loss scaler, and
 * zeroes the gradients; elsewhere it only counts. `info` may be NULL.
 * An fp16 overflow skips the update and leaves parameters and optimizer
 * state bitwise unchanged (DSZ_OK, info->skipped = 1). DSZ_ERR_LOSS_SCALE
 * when an overflow happens with the scale already at min_loss_scale and
 * hysteresis exhausted (as DeepSpeed): the step is skipped, the engine stays
 * usable. DSZ_ERR_STATE before dsz_backward. Blocks until the update is
 * done. Collective when world_size > 1. */
DSZ_API dsz_status dsz_step(dsz_engine *engine, dsz_step_info *info);

/* Growable engine state snapshot. */
typedef struct dsz_engine_state {
    uint32_t size;
    int32_t world_size;
    int32_t rank;
    int32_t zero_stage;
    int32_t dtype_code;     /* DLPack code and bits of the model dtype */
    int32_t dtype_bits;
    int32_t train_batch_size;
    int32_t micro_batch_size;
    int32_t gradient_accumulation_steps;
    int32_t n_params;
    int32_t n_groups;
    int32_t reserved0;
    int64_t n_elements;     /* parameter elements registered */
    int64_t global_steps;
    int64_t micro_steps;
    int64_t skipped_steps;
    int64_t global_samples;
    double loss_scale;
    double grad_norm;
} dsz_engine_state;

DSZ_API dsz_status dsz_engine_state_init(dsz_engine_state *state, size_t size);
DSZ_API dsz_status dsz_get_state(dsz_engine *engine, dsz_engine_state *state);

/* Growable memory and communication figures of this rank. Bytes that dszero
 * allocated, by category; the host's parameter tensors are reported apart
 * (the host owns them). Communication counts elements that entered
 * collectives since the engine was created: an all-reduce of n elements
 * counts 2n (it is a reduce-scatter plus an all-gather), a reduce-scatter or
 * an all-gather of a buffer of n elements counts n. */
typedef struct dsz_memory_stats {
    uint32_t size;
    uint32_t reserved0;
    int64_t host_param_bytes;   /* the registered tensors (host-owned; 0 at stage 3,
                                   where dszero no longer uses them) */
    int64_t master_bytes;       /* fp32 master weights */
    int64_t optimizer_bytes;    /* optimizer states */
    int64_t grad_bytes;         /* fp32 gradient accumulators */
    int64_t comm_buffer_bytes;  /* buckets, reduced partitions, staging */
    int64_t gathered_bytes;     /* stage 3: gathered parameter buffers */
    int64_t total_bytes;        /* sum of the dszero-owned categories, now */
    int64_t peak_total_bytes;   /* highest total_bytes seen */
    int64_t comm_elements;      /* elements through collectives (see above) */
    int64_t collectives;        /* collectives issued */
} dsz_memory_stats;

DSZ_API dsz_status dsz_memory_stats_init(dsz_memory_stats *stats, size_t size);

/* Fills *stats for this rank. Not collective, non-blocking. */
DSZ_API dsz_status dsz_memory_stats_get(dsz_engine *engine, dsz_memory_stats *stats);

/* Current learning rate of a parameter group. */
DSZ_API dsz_status dsz_get_lr(dsz_engine *engine, size_t group, double *lr);

/* ------------------------------------------------------------------------- */
/* ZeRO stage 3: parameters on demand                                         */
/* ------------------------------------------------------------------------- */

/* At ZeRO stage 3 each rank keeps only its partition of the parameters (the
 * fp32 masters; the model-dtype values are made from them when gathered).
 * The host's registered tensors are read once, by dsz_register_params, and
 * never written again: the host may free them after registration. Around
 * each use of parameters (a module's forward, its backward) the host gathers
 * them, uses the buffers dszero hands out, and releases them.
 *
 * Lifetime of a gathered buffer: each dsz_gather counts once per index; the
 * data stays valid, at the same address, until dsz_release has been called
 * as often for that parameter. Parameters with at most
 * zero_optimization.param_persistence_threshold elements (while the
 * persistent total stays within model_persistence_threshold) stay gathered
 * from their first gather until dsz_engine_free. dsz_step, when it updates,
 * and dsz_load refresh every gathered buffer in place. Using a buffer after
 * its last release is a use after free; dsz_param_tensor reports such a
 * parameter instead.
 *
 * Prefetching: dszero records the order of dsz_gather calls between two
 * dsz_step calls; while later micro-batches repeat that order, each gather
 * also starts fetching the parameters that come next, up to
 * prefetch_bucket_size elements and max_live_parameters elements available
 * at once, and a release keeps a parameter that is used again within
 * max_reuse_distance elements of the recorded order. A different order
 * starts a new recording.
 *
 * At stages 0-2 the same calls work without communication: out describes
 * the host's own registered tensor, and the counts are kept, so host code
 * can be written once for every stage. */

/* Makes parameters indices[0..n) available and, when `out` is not NULL,
 * fills out[i] with a DLTensor of parameter indices[i]: at stage 3 its data
 * is owned by dszero (host memory, compact, the model dtype) and its shape
 * by the engine; strides are NULL. An index may repeat (it counts twice).
 * Collective at stage 3 when world_size > 1: every rank gathers the same
 * indices in the same order, else all of them get DSZ_ERR_COMM naming the
 * difference. Fails with nothing gathered on an index out of range. */
DSZ_API dsz_status dsz_gather(dsz_engine *engine, const size_t *indices,
                              size_t n, DLTensor *out);

/* Undoes one dsz_gather of each index. DSZ_ERR_STATE naming the parameter
 * when it is not gathered (nothing is released then). Not collective. */
DSZ_API dsz_status dsz_release(dsz_engine *engine, const size_t *indices,
                               size_t n);

/* Starts gathering indices[0..n) in the background; a later dsz_gather of
 * them waits for it. Does not count as a gather: unless gathered before the
 * next update, the fetched values are dropped. Collective like dsz_gather;
 * no-op at stages 0-2. */
DSZ_API dsz_status dsz_prefetch(dsz_engine *engine, const size_t *indices,
                                size_t n);

/* The tensor of parameter `index` as dsz_gather gave it. At stage 3
 * DSZ_ERR_STATE naming the parameter when it is not gathered. */
DSZ_API dsz_status dsz_param_tensor(dsz_engine *engine, size_t index,
                                    DLTensor *out);

/* ------------------------------------------------------------------------- */
/* Checkpoints                                                                */
/* ------------------------------------------------------------------------- */

/* Writes a checkpoint into dir/<tag>/ (tag NULL: "global_step<N>") and moves
 * dir/latest to it. `client_state_json` (may be NULL) is any JSON value the
 * host wants back from dsz_load. The checkpoint becomes visible, and latest
 * moves, only once every file is complete and synced: a failure or crash
 * leaves the previous checkpoint and latest intact. Format: docs/checkpoint.md.
 * Blocks until written. Collective when world_size > 1. */
DSZ_API dsz_status dsz_save(dsz_engine *engine, const char *dir,
                            const char *tag, const char *client_state_json);

/* Flags of dsz_load (0 loads everything, like DeepSpeed's defaults). */
#define DSZ_LOAD_SKIP_OPTIMIZER_STATES (1u << 0) /* load_optimizer_states=False */
#define DSZ_LOAD_SKIP_LR_SCHEDULER     (1u << 1) /* load_lr_scheduler_states=False */
#define DSZ_LOAD_MODULE_ONLY           (1u << 2) /* load_module_only=True */

/* Loads dir/<tag> (tag NULL: the tag named by dir/latest) into an engine
 * whose parameters are registered, writing the weights into the host's
 * tensors (at stage 3: refreshing the gathered buffers). `client_state_json`
 * may be NULL; otherwise it receives the client state saved with the checkpoint ("null" when none), which the caller
 * releases with dsz_string_free. Every file is verified (checksums, layout,
 * names, shapes, dtypes) before anything is changed: on any error the
 * engine and the host tensors are unchanged. Collective when world_size > 1. */
DSZ_API dsz_status dsz_load(dsz_engine *engine, const char *dir,
                            const char *tag, uint32_t flags,
                            char **client_state_json);

/* ------------------------------------------------------------------------- */
/* Mixture of experts (docs/moe.md)                                           */
/* ------------------------------------------------------------------------- */

/* DeepSpeed's MoE layer split at the host boundary: the host computes the
 * gate logits (x_fp32 . Wg^T) and runs its experts; dszero routes the tokens
 * (top-1 / top-2 / top-k gating with capacities, token dropping, random
 * token selection, the load-balancing loss), moves them into the
 * [experts, capacity, hidden] layout, exchanges that buffer over the
 * expert-parallel group, and combines the expert outputs with the gate
 * weights -- each step with its backward pass. Host memory only in this
 * build (CUDA tensors: DSZ_ERR_UNSUPPORTED). */

typedef struct dsz_moe_group dsz_moe_group;     /* expert-parallel layout */
typedef struct dsz_moe_routing dsz_moe_routing; /* one gate call's routes */

/* dsz_moe_gate_config.noisy_gate_policy (DeepSpeed's noisy_gate_policy). */
#define DSZ_MOE_NOISE_NONE    0
#define DSZ_MOE_NOISE_JITTER  1 /* the host calls dsz_moe_jitter on its gate input */
#define DSZ_MOE_NOISE_RSAMPLE 2 /* top-1: argmax of logits + Gumbel noise */

/* dsz_moe_gate_config.drop_policy (top-k with k > 2). */
#define DSZ_MOE_DROP_PROBS    0 /* per expert keep the tokens with the highest gate */
#define DSZ_MOE_DROP_POSITION 1 /* per expert keep the earliest tokens */

/* Gate settings; fill with dsz_moe_gate_config_init (defaults = DeepSpeed's
 * MoE layer: k 1, capacity factors 1.0, min_capacity 4, training, drop
 * tokens, random token selection, second-expert sampling). */
typedef struct dsz_moe_gate_config {
    uint32_t size;                 /* sizeof(dsz_moe_gate_config), set by _init */
    int32_t k;                     /* experts per token: 1, 2, or up to E */
    double capacity_factor;        /* used when training != 0 */
    double eval_capacity_factor;   /* used when training == 0 */
    int64_t min_capacity;          /* lower bound of the capacity when dropping */
    int32_t training;              /* 0: eval (eval_capacity_factor, no RSample) */
    int32_t drop_tokens;           /* 0: capacity = largest count over the group */
    int32_t use_rts;               /* top-1: random token selection when dropping */
    int32_t noisy_gate_policy;     /* DSZ_MOE_NOISE_* */
    int32_t top2_2nd_expert_sampling; /* top-2: Gumbel-sample the second expert */
    int32_t drop_policy;           /* DSZ_MOE_DROP_* (k > 2) */
    int64_t tensor_parallel_size;  /* no-drop capacity is rounded up to a multiple */
    uint64_t seed;                 /* all gate noise is a pure function of it:
                                      use a new seed for every call */
} dsz_moe_gate_config;

DSZ_API dsz_status dsz_moe_gate_config_init(dsz_moe_gate_config *cfg, size_t size);

/* Creates the expert-parallel layout of ep_size ranks per expert group over
 * the ranks of `engine` (NULL: over the launched ranks, or over *mpi_comm
 * when mpi_comm points to a host MPI_Comm; mpi_comm must be NULL with an
 * engine). Groups follow DeepSpeed's E + D order: expert-parallel groups of
 * consecutive ranks, expert-data groups strided. An engine must outlive the
 * group. Collective over those ranks. *out is released with
 * dsz_moe_group_free (NULL is DSZ_OK). */
DSZ_API dsz_status dsz_moe_group_new(dsz_moe_group **out, dsz_engine *engine,
                                     int32_t ep_size, void *mpi_comm);
DSZ_API dsz_status dsz_moe_group_free(dsz_moe_group *group);

/* This rank's place: sizes and ranks in its expert-parallel and
 * expert-data-parallel groups (any pointer may be NULL). Rank g of an
 * expert-parallel group owns global experts [g * E / ep_size, (g+1) * E / ep_size). */
DSZ_API dsz_status dsz_moe_group_info(dsz_moe_group *group, int32_t *ep_size,
                                      int32_t *ep_rank, int32_t *edp_size,
                                      int32_t *edp_rank);

/* DeepSpeed's multiplicative jitter: x[i] *= u_i, u_i ~ U(1 - epsilon,
 * 1 + epsilon) drawn from `seed`; `x` and/or `multipliers` (n floats, gets
 * u) may be NULL. The gradient of the host's gate input is then d_x * u. */
DSZ_API dsz_status dsz_moe_jitter(float *x, size_t n, double epsilon,
                                  uint64_t seed, float *multipliers);

/* Routes `tokens` tokens over `experts` experts from their fp32 gate logits
 * (row-major [tokens, experts], read during the call). used_token (k = 1
 * only, may be NULL): tokens whose byte is 0 go nowhere. `group` may be
 * NULL (one rank); with drop_tokens == 0 and a group of ep_size > 1 the
 * call is collective over the expert-parallel group (MAX of the counts).
 * *out owns the routes (release with dsz_moe_routing_free); on failure it
 * is NULL. */
DSZ_API dsz_status dsz_moe_gate(dsz_moe_routing **out,
                                const dsz_moe_gate_config *cfg,
                                const float *logits, int64_t tokens,
                                int64_t experts, const uint8_t *used_token,
                                dsz_moe_group *group);
DSZ_API dsz_status dsz_moe_routing_free(dsz_moe_routing *routing);

typedef struct dsz_moe_routing_info {
    uint32_t size;        /* sizeof(dsz_moe_routing_info), set by _init */
    int32_t k;
    int64_t tokens;       /* S */
    int64_t experts;      /* E */
    int64_t capacity;     /* C: the buffers are [E, C, hidden] */
    int64_t dropped;      /* chosen routes dropped for capacity */
    double l_aux;         /* load-balancing loss */
} dsz_moe_routing_info;

DSZ_API dsz_status dsz_moe_routing_info_init(dsz_moe_routing_info *info, size_t size);
DSZ_API dsz_status dsz_moe_routing_get_info(dsz_moe_routing *routing,
                                            dsz_moe_routing_info *info);

/* Copies the routes out; any pointer may be NULL. Route r = s * k + j is
 * choice j of token s (j = 0 best). expert, slot, weight: tokens * k each
 * (slot -1: dropped, weight 0); exp_counts: experts (routes per expert
 * before dropping, DeepSpeed's exp_counts); probs: tokens * experts (the
 * softmax). DeepSpeed's combine_weights[s, e, c] = weight[r] where
 * expert[r] = e and slot[r] = c, and dispatch_mask = combine_weights != 0. */
DSZ_API dsz_status dsz_moe_routing_get(dsz_moe_routing *routing, int32_t *expert,
                                       int32_t *slot, float *weight,
                                       int64_t *exp_counts, float *probs);

/* Backward of the gate: from dL/dweight (tokens * k, may be NULL = 0) and
 * dL/dl_aux, writes dL/dprobs and/or dL/dlogits (tokens * experts each,
 * either may be NULL). Routing decisions stay fixed. */
DSZ_API dsz_status dsz_moe_gate_backward(dsz_moe_routing *routing,
                                         const float *d_weight, double d_l_aux,
                                         float *d_probs, float *d_logits);

/* Tokens [S, M] -> dispatched [E, C, M] (empty slots are zero), and its
 * backward d_dispatched [E, C, M] -> d_tokens [S, M]. float32, float16 or
 * bfloat16, compact, same dtype on both sides; not collective. */
DSZ_API dsz_status dsz_moe_dispatch(dsz_moe_routing *routing,
                                    const DLTensor *tokens, DLTensor *dispatched);
DSZ_API dsz_status dsz_moe_dispatch_backward(dsz_moe_routing *routing,
                                             const DLTensor *d_dispatched,
                                             DLTensor *d_tokens);

/* Expert outputs [E, C, M] -> out [S, M] = sum of weight * expert output
 * over each token's routes; its backward writes d_expert_out [E, C, M]
 * and/or d_weight (tokens * k floats), either may be NULL. Not collective. */
DSZ_API dsz_status dsz_moe_combine(dsz_moe_routing *routing,
                                   const DLTensor *expert_out, DLTensor *out);
DSZ_API dsz_status dsz_moe_combine_backward(dsz_moe_routing *routing,
                                            const DLTensor *expert_out,
                                            const DLTensor *d_out,
                                            DLTensor *d_expert_out,
                                            float *d_weight);

/* The expert-parallel all-to-all of an [E, C, M] buffer (E a multiple of
 * ep_size; `in` and `out` same shape and dtype, not overlapping): chunk g
 * (experts of group rank g) goes to group rank g, and `out` reads as
 * [ep_size, E / ep_size, C, M] -- the tokens of every group rank for this
 * rank's experts. The same call brings expert outputs back and is the
 * backward of both directions. Collective over the expert-parallel group;
 * blocks until done. */
DSZ_API dsz_status dsz_moe_all_to_all(dsz_moe_group *group, const DLTensor *in,
                                      DLTensor *out);

/* ------------------------------------------------------------------------- */
/* Pipeline parallelism (docs/pipeline.md)                                    */
/* ------------------------------------------------------------------------- */

/* Status appended for the pipeline: a host callback returned non-zero. */
enum { DSZ_ERR_CALLBACK = 16 };

/* Instruction kinds of a pipeline schedule: DeepSpeed's PipeInstruction
 * classes (LoadMicroBatch, ForwardPass, ...). */
enum {
    DSZ_PIPE_LOAD_MICRO_BATCH = 0,
    DSZ_PIPE_FORWARD_PASS = 1,
    DSZ_PIPE_BACKWARD_PASS = 2,
    DSZ_PIPE_SEND_ACTIVATION = 3,
    DSZ_PIPE_RECV_ACTIVATION = 4,
    DSZ_PIPE_SEND_GRAD = 5,
    DSZ_PIPE_RECV_GRAD = 6,
    DSZ_PIPE_REDUCE_TIED_GRADS = 7,
    DSZ_PIPE_REDUCE_GRADS = 8,
    DSZ_PIPE_OPTIMIZER_STEP = 9
};

/* Schedules: DeepSpeed's TrainSchedule (synchronous 1F1B) and
 * InferenceSchedule. */
enum {
    DSZ_PIPE_SCHEDULE_TRAIN = 0,
    DSZ_PIPE_SCHEDULE_INFERENCE = 1
};

/* One instruction of a schedule. DeepSpeed's instructions carry only the
 * buffer id; `step` and `micro_batch` make the stream easy to inspect. */
typedef struct dsz_pipe_instr {
    int32_t kind;         /* DSZ_PIPE_* instruction kind */
    int32_t step;         /* the schedule step it belongs to, from 0 */
    int32_t buffer_id;    /* pipeline buffer; -1 for REDUCE_* / OPTIMIZER_STEP */
    int32_t micro_batch;  /* micro-batch it acts on; -1 for REDUCE_* / OPTIMIZER_STEP */
} dsz_pipe_instr;

/* The instruction stream that stage `stage_id` of `stages` runs for a batch
 * of `micro_batches` (schedule `kind`), in order, step by step: exactly
 * DeepSpeed's (reference §8.1-8.2). *n_instr always receives the stream's
 * length; `out` (may be NULL when capacity is 0) receives the stream when
 * `capacity` is large enough, else DSZ_ERR_INVALID_ARGUMENT and nothing is
 * written to `out`. Pure, not collective. */
DSZ_API dsz_status dsz_pipe_schedule(int32_t kind, int32_t micro_batches,
                                     int32_t stages, int32_t stage_id,
                                     dsz_pipe_instr *out, size_t capacity,
                                     size_t *n_instr);

/* Pipeline buffers the stage needs (max(2, min(stages - stage_id,
 * micro_batches)) to train, 2 for inference) and steps of a batch
 * (2 (micro_batches + stages - 1) to train, micro_batches + stages - 1 for
 * inference). Either pointer may be NULL. Pure. */
DSZ_API dsz_status dsz_pipe_schedule_size(int32_t kind, int32_t micro_batches,
                                          int32_t stages, int32_t stage_id,
                                          int32_t *n_buffers, int32_t *n_steps);

/* Splits `n_layers` layers over `stages` stages as DeepSpeed's
 * PipelineModule does; `parts` receives stages + 1 boundaries: stage s owns
 * layers [parts[s], parts[s+1]). `method` (case-insensitive):
 *   "uniform"       equal layer counts (the first n_layers % stages stages
 *                   get one more);
 *   "parameters"    balance `param_counts` (trainable parameters per layer);
 *   "type:<regex>"  balance the layers whose `layer_types[i]` (a class name;
 *                   NULL never matches) matches the regex (ECMAScript,
 *                   searched anywhere, case-insensitive); no match is
 *                   DSZ_ERR_INVALID_ARGUMENT.
 * The balanced methods use DeepSpeed's exact split (minimises heaviest minus
 * lightest part; ties go to later split points). Arrays the method does not
 * use may be NULL. "profile" is DSZ_ERR_UNSUPPORTED. Pure. */
DSZ_API dsz_status dsz_pipe_partition(const char *method, size_t n_layers,
                                      const int64_t *param_counts,
                                      const char **layer_types,
                                      int32_t stages, int64_t *parts);

/* The executor. */
typedef struct dsz_pipe_engine dsz_pipe_engine;

/* Host callbacks. Each returns 0 on success; anything else aborts the batch
 * on every rank (dsz_pipe_train_batch returns DSZ_ERR_CALLBACK naming the
 * stage, the callback, the micro-batch and the value). They run on the
 * thread that called dsz_pipe_train_batch and may call dszero's functions
 * on the stage engine (dsz_grad_ready, dsz_loss_scale, getters), never
 * dsz_pipe_train_batch. `buffer_id` is the schedule's pipeline buffer
 * (0 <= buffer_id < dsz_pipe_info.n_buffers): what a stage keeps between a
 * micro-batch's forward and backward (its inputs, activations, labels) can
 * live in per-buffer slots.
 *
 * load_micro_batch: first stage: fetch the inputs of `micro_batch` into
 *   slot `buffer_id`; last stage: fetch its labels. Not called elsewhere.
 * forward: run this stage's layers on micro-batch `micro_batch`. `input` is
 *   the previous stage's activation (NULL on the first stage; owned by
 *   dszero, valid until this micro-batch's backward returns). A stage that is
 *   not the last describes its output in *output (zeroed before the call):
 *   host memory, compact, float32 / float16 / bfloat16, the same shape and
 *   dtype for every micro-batch of the run; its data must stay untouched
 *   until the next callback on this rank or until dsz_pipe_train_batch
 *   returns (the struct and its shape array are read when the call returns).
 *   The last stage gets output == NULL and writes the micro-batch's loss to
 *   *loss (NULL elsewhere).
 * backward: backpropagate micro-batch `micro_batch` and hand this stage's
 *   parameter gradients to the stage engine with dsz_grad_ready.
 *   `output_grad` is the gradient of this stage's output from the next stage
 *   (NULL on the last stage, which starts from its loss multiplied by
 *   dsz_loss_scale). A stage that is not the first describes the gradient of
 *   its `input` in *input_grad (same shape and dtype as the input; same
 *   lifetime rule as forward's output); the first stage gets NULL. */
typedef int32_t (*dsz_pipe_load_fn)(void *user_data, int32_t buffer_id,
                                    int64_t micro_batch);
typedef int32_t (*dsz_pipe_forward_fn)(void *user_data, int32_t buffer_id,
                                       int64_t micro_batch,
                                       const DLTensor *input,
                                       DLTensor *output, double *loss);
typedef int32_t (*dsz_pipe_backward_fn)(void *user_data, int32_t buffer_id,
                                        int64_t micro_batch,
                                        const DLTensor *output_grad,
                                        DLTensor *input_grad);

/* Fill with dsz_pipe_options_init, then set the stage count and callbacks. */
typedef struct dsz_pipe_options {
    uint32_t size;        /* sizeof(dsz_pipe_options), set by _init */
    int32_t stages;       /* pipeline stages (must divide the world size);
                             0: the config's pipeline.stages (a number) */
    dsz_pipe_load_fn load_micro_batch;  /* may be NULL */
    dsz_pipe_forward_fn forward;        /* required */
    dsz_pipe_backward_fn backward;      /* required */
    void *user_data;      /* passed to every callback */
} dsz_pipe_options;

DSZ_API dsz_status dsz_pipe_options_init(dsz_pipe_options *opts, size_t size);

/* Creates a pipeline executor: the world's ranks form a grid of `stages`
 * stages x (world / stages) data-parallel replicas, world rank =
 * stage * replicas + replica (DeepSpeed's layout), and each rank gets an
 * engine for its stage running over its stage's data-parallel group (ZeRO
 * stage 0 or 1 inside the stage; stages 2 and 3 are refused, as DeepSpeed
 * does; overlap_comm has no effect). gradient_accumulation_steps is the
 * number of micro-batches per batch. Gradient norms (clipping) and fp16
 * overflow checks cover the whole model across stages. `config` and `opts`
 * are as for dsz_init (opts may be NULL); `pipe` is required and copied.
 * Register the stage's parameters on the engine dsz_pipe_stage_engine gives.
 * On failure *out is NULL. Collective over the world. */
DSZ_API dsz_status dsz_pipe_init(dsz_pipe_engine **out, const char *config,
                                 const dsz_init_options *opts,
                                 const dsz_pipe_options *pipe);

/* Releases the executor and its stage engine. NULL is DSZ_OK; a dead handle
 * is DSZ_ERR_INVALID_ARGUMENT. */
DSZ_API dsz_status dsz_pipe_free(dsz_pipe_engine *pipe);

/* The engine of this rank's stage, lent: it lives as long as the executor.
 * Use it to register the stage's parameters, hand over gradients in the
 * backward callback, read the loss multiplier, state and learning rates,
 * and save or load checkpoints (per stage: give each stage its own
 * directory). dsz_backward, dsz_step and dsz_engine_free refuse it
 * (DSZ_ERR_STATE): the executor runs them. */
DSZ_API dsz_status dsz_pipe_stage_engine(dsz_pipe_engine *pipe,
                                         dsz_engine **engine);

/* Where this rank sits and what a batch looks like. */
typedef struct dsz_pipe_info {
    uint32_t size;
    int32_t stages;
    int32_t stage_id;
    int32_t data_parallel_size;   /* replicas of each stage */
    int32_t data_parallel_rank;
    int32_t world_size;
    int32_t rank;                 /* world rank */
    int32_t micro_batches;        /* gradient_accumulation_steps */
    int32_t n_buffers;            /* pipeline buffers of this stage */
    int32_t n_steps;              /* schedule steps per batch */
} dsz_pipe_info;

DSZ_API dsz_status dsz_pipe_info_init(dsz_pipe_info *info, size_t size);
DSZ_API dsz_status dsz_pipe_get_info(dsz_pipe_engine *pipe, dsz_pipe_info *info);

/* What one dsz_pipe_train_batch did on this rank. */
typedef struct dsz_pipe_batch_info {
    uint32_t size;
    int32_t stepped;         /* 1 when the optimizer updated the parameters */
    int32_t skipped;         /* 1 when an fp16/bf16 overflow skipped the update */
    int32_t reserved0;
    double loss;             /* as returned through *loss */
    double grad_norm;        /* global over all stages; -1 when not finite */
    int64_t global_steps;
    double schedule_ms;      /* running the instruction stream */
    double compute_ms;       /* ... of which inside the host's callbacks */
    double transfer_wait_ms; /* ... of which blocked on stage-to-stage messages */
    double step_ms;          /* agreement, gradient reduction, optimizer step */
} dsz_pipe_batch_info;

DSZ_API dsz_status dsz_pipe_batch_info_init(dsz_pipe_batch_info *info, size_t size);

/* Trains one batch: runs the TrainSchedule over gradient_accumulation_steps
 * micro-batches, calling the host's callbacks and moving activations and
 * gradients between adjacent stages; then every rank agrees on the outcome,
 * gradients are reduced within each stage's data-parallel group and the
 * optimizer steps. *loss (may be NULL) receives the mean over micro-batches
 * and data-parallel replicas of the last stage's losses, on every rank;
 * `info` may be NULL. When a callback fails, or a stage's output or input
 * gradient changes shape or dtype, every rank returns the same error naming
 * the stage and what failed (DSZ_ERR_CALLBACK, DSZ_ERR_SHAPE,
 * DSZ_ERR_DTYPE), the batch is abandoned without an update and the executor
 * stays usable. Collective over the world; blocks until the step is done. */
DSZ_API dsz_status dsz_pipe_train_batch(dsz_pipe_engine *pipe, double *loss,
                                        dsz_pipe_batch_info *info);

/* ------------------------------------------------------------------------- */
/* Checkpoint consolidation (docs/checkpoint.md)                              */
/* ------------------------------------------------------------------------- */

/* Writes the full weights of the checkpoint dir/<tag> (tag NULL: the one
 * dir/latest names) as one safetensors file at out_path: every parameter
 * under its registered name and shape, in registration order within each
 * group, from the fp32 master weights converted to `dtype` (float32, float16
 * or bfloat16: DLPack code kDLFloat bits 32/16 or kDLBfloat bits 16, lanes
 * 1; anything else is DSZ_ERR_DTYPE). Readable by the Python safetensors
 * package (safetensors.torch.load_file) and by PyTorch.
 * Streams parameter by parameter: memory stays at a few tens of MiB (read
 * buffers and one 16 MiB piece), whatever the model's size; every byte read is
 * verified against the manifest's checksums. The file is written beside
 * out_path, synced and renamed: on any error out_path is unchanged. Needs no
 * engine; not collective; blocks until written. */
DSZ_API dsz_status dsz_consolidate(const char *dir, const char *tag,
                                   const char *out_path, DLDataType dtype);

#ifdef __cplusplus
}
#endif

#endif /* DSZERO_H */
