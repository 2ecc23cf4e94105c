/* The C API of libserving_processor.so (user guide §3.38.3).
 *
 * Serves a SavedModel (with EmbeddingVariables) behind any RPC framework:
 * call initialize() once, then process() from any number of threads.
 * Requests and responses are serialized messages of predict.proto
 * (package tensorflow.eas). Every buffer returned through output_data is
 * allocated with malloc() and owned by the caller: release it with
 * free_output_data() (or free()).
 */

#ifndef SERVING_PROCESSOR_SERVING_PROCESSOR_H_
#define SERVING_PROCESSOR_SERVING_PROCESSOR_H_

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes of process() and get_serving_model_info(). */
#define PROCESSOR_STATUS_OK 200
#define PROCESSOR_STATUS_ERROR 500

/* Loads the model described by `model_config` (a JSON object, see
 * docs/serving_processor.md). `model_entry` is unused (pass "").
 *
 * Returns the model handle for process(), with *state = 0; on failure
 * returns NULL with *state = -1 and writes the reason, which names the bad
 * config key or value, to stderr. */
void* initialize(const char* model_entry, const char* model_config, int* state);

/* Runs one request: `input_data` holds `input_size` bytes of a serialized
 * PredictRequest. Returns 200 with a serialized PredictResponse in
 * *output_data (*output_size bytes), or 500 with a NUL-terminated error
 * message there (*output_size = its length, without the NUL). The model
 * stays usable after an error. Thread-safe. */
int process(void* model_buf, const void* input_data, int input_size,
            void** output_data, int* output_size);

/* Returns 200 with a serialized ServingModelInfo (model_path: the checkpoint,
 * or the SavedModel directory, whose variables are being served), or 500
 * with an error message, as process() does. */
int get_serving_model_info(void* model_buf, void** output_data,
                           int* output_size);

/* Frees a buffer returned through output_data. NULL is ignored. */
void free_output_data(void* output_data);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif /* SERVING_PROCESSOR_SERVING_PROCESSOR_H_ */
