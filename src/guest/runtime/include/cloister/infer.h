/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The enclave's ONNX inference runtime.
 *
 * A model is loaded from memory (inside the enclave it arrives decrypted and
 * never touches disk), validated in full before anything runs (types, shapes,
 * topological order, opset, initializer sizes, a cap on total allocation), and
 * executed with plain-C reference kernels. Every tensor the runtime owns --
 * weights and intermediates -- is wiped when it is released, and all of them
 * when the model is unloaded.
 */
#ifndef CLOISTER_INFER_H
#define CLOISTER_INFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types, numbered as ONNX's TensorProto.DataType. */
typedef enum cl_infer_dtype {
    CL_INFER_UNDEFINED = 0,
    CL_INFER_FLOAT = 1,
    CL_INFER_UINT8 = 2,
    CL_INFER_INT8 = 3,
    CL_INFER_UINT16 = 4,
    CL_INFER_INT16 = 5,
    CL_INFER_INT32 = 6,
    CL_INFER_INT64 = 7,
    CL_INFER_BOOL = 9,
    CL_INFER_DOUBLE = 11,
    CL_INFER_UINT32 = 12,
    CL_INFER_UINT64 = 13,
} cl_infer_dtype;

#define CL_INFER_MAX_RANK 8

/* A dense tensor in C (row-major) order. `data` is owned by whoever filled the
 * struct unless `borrowed` is set; cl_infer_tensor_free wipes and releases it. */
typedef struct cl_infer_tensor {
    cl_infer_dtype dtype;
    int rank;
    int64_t dims[CL_INFER_MAX_RANK];
    void *data;
    size_t nbytes;
    bool borrowed;
} cl_infer_tensor;

/* Which kernels run Conv, ConvTranspose, Gemm, MatMul, MaxPool, AveragePool,
 * GlobalAveragePool, Concat, BatchNormalization, the eltwise ops (Relu,
 * LeakyRelu, Sigmoid, Tanh, Exp, Log, Sqrt, Abs, Neg), Clip, Softmax and
 * LogSoftmax (the ops with a oneDNN kernel in the op registry, registry.c).
 * Every other op, and any configuration the oneDNN kernels do not cover, uses
 * the reference kernels. */
typedef enum cl_infer_backend {
    CL_INFER_BACKEND_DEFAULT = 0, /* oneDNN when this build has it */
    CL_INFER_BACKEND_REFERENCE,   /* plain-C reference kernels only */
    CL_INFER_BACKEND_ONEDNN,      /* oneDNN (fails to load if not built in) */
} cl_infer_backend;

typedef struct cl_infer_options {
    size_t max_bytes; /* cap on all memory the model may hold at once; 0 = default */
    int threads;      /* 0 = all cores */
    cl_infer_backend backend;
    bool profile; /* time every node (see cl_infer_model_profile) */
    /* oneDNN's direct convolution only: no Winograd for 3x3 convolutions
     * (faster on large layers, rounds differently; docs/inference.md). */
    bool direct_conv;
    /* Skip the planning run at load (a run on zeros of the declared input
     * shapes, which makes the memory plan and oneDNN's primitives; see
     * docs/inference.md): the first run makes them instead. */
    bool plan_on_first_run;
} cl_infer_options;

/* Whether this build has the oneDNN kernels. */
bool cl_infer_onednn_available(void);

#define CL_INFER_MAX_BYTES_DEFAULT ((size_t)4 << 30)

typedef struct cl_infer_model cl_infer_model;

/* Bytes per element of a supported dtype; 0 for an unsupported one. */
size_t cl_infer_dtype_size(cl_infer_dtype t);
const char *cl_infer_dtype_name(cl_infer_dtype t);

/* Allocates a zeroed tensor of the given shape (at most 1 GiB). */
CL_MUST_USE cl_status cl_infer_tensor_alloc(cl_infer_tensor *t, cl_infer_dtype dtype, int rank, const int64_t *dims);
/* Wipes and releases the data (unless borrowed); leaves an empty tensor. */
void cl_infer_tensor_free(cl_infer_tensor *t);
/* Number of elements (1 for a scalar). */
size_t cl_infer_tensor_count(const cl_infer_tensor *t);

/* Parses and validates an ONNX model. `bytes` is only read during the call. */
CL_MUST_USE cl_status cl_infer_model_load(const void *bytes, size_t len, const cl_infer_options *opts,
                                          cl_infer_model **out);
/* Wipes every weight and intermediate and releases the model. NULL is fine. */
void cl_infer_model_free(cl_infer_model *m);

size_t cl_infer_model_input_count(const cl_infer_model *m);
size_t cl_infer_model_output_count(const cl_infer_model *m);
/* Name, dtype and declared shape of an input (dims -1 where symbolic). */
CL_MUST_USE cl_status cl_infer_model_input_info(const cl_infer_model *m, size_t i, const char **name,
                                                cl_infer_dtype *dtype, int *rank, int64_t dims[CL_INFER_MAX_RANK]);
const char *cl_infer_model_output_name(const cl_infer_model *m, size_t i);
/* With options.profile: the i-th op type run so far, its node executions and
 * total wall time in ms, and how many of them oneDNN ran. Returns false past
 * the last op type. */
bool cl_infer_model_profile(const cl_infer_model *m, size_t i, const char **op, size_t *runs, double *ms,
                            size_t *fast_runs);
/* Largest number of bytes held at once (weights included) so far. */
size_t cl_infer_model_peak_bytes(const cl_infer_model *m);

/* Runs the model, one inference at a time (the model holds the run's
 * intermediates: use one model per thread). `inputs` are the graph inputs that
 * are not initializers, in declaration order; the caller's tensors are only read. On success `outputs`
 * (n_outputs == cl_infer_model_output_count) receive fresh tensors the caller
 * frees with cl_infer_tensor_free. */
CL_MUST_USE cl_status cl_infer_run(cl_infer_model *m, const cl_infer_tensor *inputs, size_t n_inputs,
                                   cl_infer_tensor *outputs, size_t n_outputs);

/* Parses one serialised ONNX TensorProto (the backend tests' .pb files). */
CL_MUST_USE cl_status cl_infer_tensor_parse(const void *bytes, size_t len, cl_infer_tensor *out);

/* NumPy .npy (format 1.0 to 3.0, C order, little-endian or byte-sized
 * elements) to and from tensors. Parsing is bounded: the header is at most
 * 64 KiB and the data must be exactly what the shape says. */
CL_MUST_USE cl_status cl_infer_npy_parse(const void *bytes, size_t len, cl_infer_tensor *out);
/* Appends the tensor as a format 1.0 .npy file to out. */
CL_MUST_USE cl_status cl_infer_npy_write(const cl_infer_tensor *t, cl_buf *out);

/* Decodes a PNG (8- or 16-bit, gray or RGB, alpha dropped, palette expanded)
 * into a float32 [1, channels, H, W] tensor for a model input: gray is
 * replicated to 3 channels or RGB averaged to 1 as `channels` asks; the image
 * is resized bilinearly (half-pixel centres) to out_h x out_w when those are
 * positive and differ; then normalised per image to zero mean and unit
 * standard deviation (z-score over all pixels and channels). */
CL_MUST_USE cl_status cl_infer_png_read(const void *bytes, size_t len, int channels, int64_t out_h, int64_t out_w,
                                        cl_infer_tensor *out);
/* Encodes a probability map ([H, W] or [1, 1, H, W] float32) as an 8-bit gray
 * PNG mask: 255 where p >= threshold, 0 elsewhere. Appends to out. */
CL_MUST_USE cl_status cl_infer_png_write_mask(const cl_infer_tensor *prob, float threshold, cl_buf *out);

/* The value of a model's metadata_props entry `key`, or NULL when absent. */
const char *cl_infer_model_metadata(const cl_infer_model *m, const char *key);

/*
 * Classifier I/O: one record of named measurements in, class probabilities
 * out, for any model that says it is a classifier in its metadata_props
 * (cloister train-local writes them; so can any exporter):
 *   cloister.classifier.labels    "benign,malignant": one label per output column, in order (required)
 *   cloister.classifier.features  "f1,f2,...": the input columns, in order (optional; without it only
 *                                 arrays are accepted and the count comes from the input's shape)
 *   cloister.classifier.input     the input's name (optional; checked against the graph when present)
 * The model's only input is float [N, F]; its first output float [N, K] holds
 * probabilities for the K labels. The CLI and the enclave worker share this code.
 */
#define CL_INFER_CLASSIFIER_MAX_FEATURES 4096
#define CL_INFER_CLASSIFIER_MAX_LABELS 256
#define CL_INFER_CLASSIFIER_MAX_NAME 64
/* Largest input record, in bytes: one patient's measurements are well under 1 KiB. */
#define CL_INFER_CLASSIFIER_MAX_INPUT ((size_t)1 << 20)

typedef struct cl_infer_classifier cl_infer_classifier;

typedef enum cl_infer_record_format {
    CL_INFER_RECORD_JSON, /* an object keyed by feature name, or an array of F numbers */
    CL_INFER_RECORD_CSV,  /* one row of F numbers, optionally after a header row naming the features */
} cl_infer_record_format;

/* CL_ERR_NOT_FOUND when the model carries no cloister.classifier.labels. */
CL_MUST_USE cl_status cl_infer_classifier_from_model(const cl_infer_model *m, cl_infer_classifier **out);
/* From the metadata strings themselves; `features` may be NULL when n_features > 0 is given. */
CL_MUST_USE cl_status cl_infer_classifier_make(const char *labels, const char *features, size_t n_features,
                                               cl_infer_classifier **out);
void cl_infer_classifier_free(cl_infer_classifier *c);
size_t cl_infer_classifier_feature_count(const cl_infer_classifier *c);
/* Parses one record into a float [1, F] tensor. Bounded and strict: every
 * feature exactly once, finite numbers within float range; errors name the
 * feature (or line and column) at fault. */
CL_MUST_USE cl_status cl_infer_classifier_parse(const cl_infer_classifier *c, cl_infer_record_format fmt,
                                                const void *bytes, size_t len, cl_infer_tensor *out);
/* Appends {"label": L, "probabilities": {"l1": p1, ...}} for the first row of
 * a float [N, K] probability tensor; L is the most probable label. */
CL_MUST_USE cl_status cl_infer_classifier_format(const cl_infer_classifier *c, const cl_infer_tensor *probs,
                                                 cl_buf *out);
/* Parse, run, format: one record through the model. */
CL_MUST_USE cl_status cl_infer_classifier_run(cl_infer_model *m, const cl_infer_classifier *c,
                                              cl_infer_record_format fmt, const void *bytes, size_t len, cl_buf *out);

/*
 * Segmentation I/O: an image in, a mask and its summary out, for any model
 * that says it is a segmenter in its metadata_props:
 *   cloister.kind                     "segmentation" (required)
 *   cloister.name                     the model's name for the summary: 1-64 of A-Z a-z 0-9 _ . - (optional)
 *   cloister.note                     provenance shown with every result, printable ASCII, at most
 *                                     1024 bytes (optional; the phantom demo model says it is not
 *                                     clinically trained here)
 *   cloister.segmentation.threshold   probability at or above which a pixel is in the mask, in (0, 1)
 *                                     (optional; 0.5)
 *   cloister.segmentation.channel     0, 1 or 2: for a model with a one-channel input, the channel of
 *                                     an RGB image it reads (the walk-through's MRI slices hold three
 *                                     sequences as R, G, B; a FLAIR model says 1); optional: without
 *                                     it an RGB image is averaged to one channel. A gray image is
 *                                     taken as it is either way.
 * The model's only input is float32 [1, 1 or 3, H, W] (H, W fixed, or symbolic
 * to take the image's own size); its first output float32 [1, 1, h, w] (or
 * [1, h, w], [h, w]) holds per-pixel probabilities. The PNG goes through
 * cl_infer_png_read at the model's input size; the probability map is resized
 * back to the image's size (bilinear, half-pixel centres) and thresholded
 * there, so the mask has the size of the image that came in. The CLI and the
 * enclave worker share this code; nothing touches a file.
 */
/* Largest PNG accepted, in bytes (one slice is well under 1 MiB). */
#define CL_INFER_SEGMENT_MAX_INPUT ((size_t)64 << 20)
/* Largest image segmented, in pixels (4096 x 4096; a slice is 256 x 256 to
 * 1024 x 1024): the image, the probability map at its size and the mask are
 * all held at once, inside the enclave's memory. */
#define CL_INFER_SEGMENT_MAX_PIXELS ((size_t)1 << 24)

/* Whether the model's metadata says cloister.kind = segmentation. */
bool cl_infer_segmenter_detect(const cl_infer_model *m);
/* Validates the segmentation metadata and the input's shape: CL_ERR_NOT_FOUND
 * when the model does not say it is a segmenter, CL_ERR_FORMAT on bad metadata
 * or an input that is not an image. */
CL_MUST_USE cl_status cl_infer_segmenter_check(const cl_infer_model *m);
/* Appends the summary of a probability map (float32 [H, W] or [1, 1, H, W]) at
 * `threshold` (pixels with p >= threshold are in the mask):
 *   {"kind": "segmentation", "model": NAME, ["note": NOTE,] "width": W, "height": H,
 *    "threshold": T, "area_pixels": N, "area_fraction": N / (W H),
 *    "bounding_box": {"x": X, "y": Y, "width": BW, "height": BH} or null when the mask is empty}
 * x, y are the top-left pixel's column and row. `note` may be NULL. */
CL_MUST_USE cl_status cl_infer_segment_summary(const cl_infer_tensor *prob, float threshold, const char *model,
                                               const char *note, cl_buf *out);
/* The model's input prepared from PNG bytes exactly as cl_infer_segment_png
 * prepares it (channel selection, resize, z-score), into a fresh tensor the
 * caller frees: for printing or saving what the model saw, or the raw map. */
CL_MUST_USE cl_status cl_infer_segment_input(const cl_infer_model *m, const void *png, size_t len,
                                             cl_infer_tensor *out);
/* Decode, run, resize back, threshold: appends the mask (8-bit gray PNG, 255
 * in the mask, 0 elsewhere, the input image's size) to mask_png and the
 * summary JSON to summary_json. All of `png` is untrusted. */
CL_MUST_USE cl_status cl_infer_segment_png(cl_infer_model *m, const void *png, size_t len, cl_buf *mask_png,
                                           cl_buf *summary_json);
/* The same as one JSON document: the summary with the mask PNG in it as
 * "mask_png_base64" (RFC 4648 base64, padded) -- what the worker returns. */
CL_MUST_USE cl_status cl_infer_segment_png_json(cl_infer_model *m, const void *png, size_t len, cl_buf *out);

/*
 * Service: one model behind one entry point, what the enclave worker runs for every request
 * (whatever path it came by) and what bench/e2e times as local inference. The model's
 * metadata says its kind: a classifier (cloister.classifier.labels) reads one record, JSON
 * if its first non-blank byte is { or [, else CSV, and answers cl_infer_classifier_format's
 * JSON; a segmenter (cloister.kind = segmentation) reads a PNG and answers
 * cl_infer_segment_png_json's JSON, the mask in it as base64.
 */
typedef enum cl_infer_kind {
    CL_INFER_KIND_CLASSIFIER = 1,
    CL_INFER_KIND_SEGMENTER,
} cl_infer_kind;
typedef struct cl_infer_service cl_infer_service;

const char *cl_infer_kind_name(cl_infer_kind k);
/* Loads and checks the model; CL_ERR_UNSUPPORTED when its metadata names no kind. */
CL_MUST_USE cl_status cl_infer_service_open(const void *onnx, size_t len, const cl_infer_options *opts,
                                            cl_infer_service **out);
void cl_infer_service_free(cl_infer_service *s);
cl_infer_kind cl_infer_service_kind(const cl_infer_service *s);
const cl_infer_model *cl_infer_service_model(const cl_infer_service *s);
/* One input through the model; appends the result JSON to out. Thread-safe (one
 * inference at a time; the model holds a run's intermediates). Errors may quote the
 * input: a caller whose errors cross a trust boundary says less. */
CL_MUST_USE cl_status cl_infer_service_run(cl_infer_service *s, const uint8_t *in, size_t n, cl_buf *out);
/* A segmentation result (untrusted bytes): its JSON without "mask_png_base64" appended to
 * summary, the decoded mask PNG to mask_png. CL_ERR_FORMAT when it is not one. */
CL_MUST_USE cl_status cl_infer_result_split_mask(const uint8_t *result, size_t n, cl_buf *summary, cl_buf *mask_png);

#ifdef __cplusplus
}
#endif
#endif
