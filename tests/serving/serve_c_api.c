/* Runs an exported SavedModel through TensorFlow's C API, with no Python.
 *
 * TF_LoadSessionFromSavedModel is the C++ SavedModel loader (LoadSavedModel,
 * tag "serve") that tensorflow_model_server embeds; TF_SessionRun then feeds
 * encoded images to a signature's input tensor, as a PredictRequest would.
 *
 *   serve_c_api [-r RUNS] EXPORT_DIR INPUT OUTPUTS IMAGE... [-- IMAGE...]...
 *
 * INPUT is the signature's input tensor ("serving_default_image_bytes:0"),
 * OUTPUTS a comma-separated list of key=tensor pairs
 * ("probabilities=StatefulPartitionedCall_1:0,..."), both read from the
 * SignatureDef by the caller. Each IMAGE file's bytes are one element of the
 * [N] TF_STRING input; "--" starts another request (the warm-up ones, then a
 * client's). The requests run in order in one session, the last one RUNS
 * times (default 1); each run's milliseconds go to stderr, the last run's
 * outputs to stdout:
 *
 *   key dtype ndims dim...
 *   value value ...        (floats as %.9g, integers, strings in hex)
 *
 * Any TensorFlow error prints "error: <step>: <message>" and exits 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensorflow/c/c_api.h"
#include "tensorflow/c/tf_tstring.h"

#define MAX_OUTPUTS 16

static void check(TF_Status *status, const char *step) {
  if (TF_GetCode(status) != TF_OK) {
    fprintf(stderr, "error: %s: %s\n", step, TF_Message(status));
    exit(1);
  }
}

static void fail(const char *step, const char *what) {
  fprintf(stderr, "error: %s: %s\n", step, what);
  exit(1);
}

static char *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) fail("reading an image", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *data = malloc(n > 0 ? (size_t)n : 1);
  if (n < 0 || data == NULL || fread(data, 1, (size_t)n, f) != (size_t)n) {
    fail("reading an image", path);
  }
  fclose(f);
  *size = (size_t)n;
  return data;
}

/* "op:index" to a TF_Output of the loaded graph. */
static TF_Output tensor(TF_Graph *graph, const char *name) {
  char op[512];
  const char *colon = strrchr(name, ':');
  size_t len = colon ? (size_t)(colon - name) : strlen(name);
  if (len >= sizeof(op)) fail("a tensor name", name);
  memcpy(op, name, len);
  op[len] = '\0';
  TF_Output out = {TF_GraphOperationByName(graph, op), colon ? atoi(colon + 1) : 0};
  if (out.oper == NULL) fail("no such operation in the graph", op);
  return out;
}

/* The [n] TF_STRING tensor of the images' bytes (TF_TString elements). */
static TF_Tensor *string_tensor(char **paths, int n) {
  int64_t dims[1] = {n};
  TF_Tensor *t = TF_AllocateTensor(TF_STRING, dims, 1, (size_t)n * sizeof(TF_TString));
  TF_TString *elements = (TF_TString *)TF_TensorData(t);
  for (int i = 0; i < n; i++) {
    size_t size;
    char *data = read_file(paths[i], &size);
    TF_StringInit(&elements[i]);
    TF_StringCopy(&elements[i], data, size);
    free(data);
  }
  return t;
}

static void print_tensor(const char *key, const TF_Tensor *t) {
  int ndims = TF_NumDims(t);
  int64_t count = TF_TensorElementCount(t);
  TF_DataType type = TF_TensorType(t);
  printf("%s %d %d", key, (int)type, ndims);
  for (int d = 0; d < ndims; d++) printf(" %lld", (long long)TF_Dim(t, d));
  printf("\n");
  const void *data = TF_TensorData(t);
  for (int64_t i = 0; i < count; i++) {
    if (i > 0) printf(" ");
    if (type == TF_FLOAT) {
      printf("%.9g", ((const float *)data)[i]);
    } else if (type == TF_INT32) {
      printf("%d", ((const int32_t *)data)[i]);
    } else if (type == TF_STRING) {
      const TF_TString *s = &((const TF_TString *)data)[i];
      const unsigned char *p = (const unsigned char *)TF_StringGetDataPointer(s);
      for (size_t j = 0; j < TF_StringGetSize(s); j++) printf("%02x", p[j]);
    } else {
      fail("printing an output", "unexpected dtype");
    }
  }
  printf("\n");
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs one request `runs` times; its outputs are left in `values`. */
static void run_request(TF_Session *session, TF_Output input, const TF_Output *outputs,
                        TF_Tensor **values, int n_outputs, char **paths, int n, int request,
                        int runs) {
  TF_Status *status = TF_NewStatus();
  TF_Tensor *images = string_tensor(paths, n);
  for (int r = 0; r < runs; r++) {
    for (int i = 0; i < n_outputs; i++) {
      if (values[i] != NULL) TF_DeleteTensor(values[i]);
      values[i] = NULL;
    }
    double start = now_ms();
    TF_SessionRun(session, NULL, &input, &images, 1, outputs, values, n_outputs, NULL, 0, NULL,
                  status);
    check(status, "TF_SessionRun");
    fprintf(stderr, "request %d run %d: %.1f ms\n", request, r + 1, now_ms() - start);
  }
  TF_TString *elements = (TF_TString *)TF_TensorData(images);
  for (int i = 0; i < n; i++) TF_StringDealloc(&elements[i]);
  TF_DeleteTensor(images);
  TF_DeleteStatus(status);
}

int main(int argc, char **argv) {
  int runs = 1, first = 1;
  if (argc > 2 && strcmp(argv[1], "-r") == 0) {
    runs = atoi(argv[2]);
    first = 3;
  }
  if (argc - first < 4 || runs < 1) {
    fprintf(stderr, "usage: %s [-r RUNS] EXPORT_DIR INPUT OUTPUTS IMAGE... [-- IMAGE...]...\n",
            argv[0]);
    return 2;
  }
  const char *export_dir = argv[first], *input_name = argv[first + 1];
  char *outputs_arg = argv[first + 2];

  TF_Status *status = TF_NewStatus();
  TF_Graph *graph = TF_NewGraph();
  TF_SessionOptions *options = TF_NewSessionOptions();
  const char *tags[] = {"serve"};
  TF_Session *session =
      TF_LoadSessionFromSavedModel(options, NULL, export_dir, tags, 1, graph, NULL, status);
  check(status, "TF_LoadSessionFromSavedModel");

  char *keys[MAX_OUTPUTS];
  TF_Output outputs[MAX_OUTPUTS];
  int n_outputs = 0;
  for (char *item = strtok(outputs_arg, ","); item != NULL; item = strtok(NULL, ",")) {
    char *eq = strchr(item, '=');
    if (eq == NULL || n_outputs == MAX_OUTPUTS) fail("OUTPUTS", item);
    *eq = '\0';
    keys[n_outputs] = item;
    outputs[n_outputs++] = tensor(graph, eq + 1);
  }
  TF_Output input = tensor(graph, input_name);
  TF_Tensor *values[MAX_OUTPUTS] = {NULL};
  /* Each "--"-separated group of images is one request, in order; the last runs `runs` times. */
  int request = 0;
  for (int begin = first + 3; begin < argc;) {
    int end = begin;
    while (end < argc && strcmp(argv[end], "--") != 0) end++;
    if (end == begin) fail("IMAGE", "an empty request");
    run_request(session, input, outputs, values, n_outputs, argv + begin, end - begin,
                ++request, end == argc ? runs : 1);
    begin = end + 1;
  }
  for (int i = 0; i < n_outputs; i++) {
    print_tensor(keys[i], values[i]);
    TF_DeleteTensor(values[i]);
  }
  TF_CloseSession(session, status);
  check(status, "TF_CloseSession");
  TF_DeleteSession(session, status);
  TF_DeleteSessionOptions(options);
  TF_DeleteGraph(graph);
  TF_DeleteStatus(status);
  return 0;
}
