"""Every bound on untrusted input, in one place, with the real files' figures.

A file from the internet, an image in a request or a config a user edits is
read only within these limits; a file past one is refused in one line before
anything large is allocated. Each limit sits well above what the real files
need (the figures in the comments), so only a crafted or broken input meets it.
"""

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "MAX_ARRAY_DIMS",
    "MAX_CAFFE_LAYERS",
    "MAX_CAFFE_REPEATED",
    "MAX_CAFFE_VALUES",
    "MAX_CFG_BYTES",
    "MAX_CHECKPOINT_BYTES",
    "MAX_CLUSTER_TASKS",
    "MAX_GIF_PIXELS",
    "MAX_HEADER_STEPS",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
    "MAX_LABEL_FILE_BYTES",
    "MAX_VAL_IMAGES",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_STRING",
    "MAX_PICKLE_DEPTH",
    "MAX_PICKLE_OPS",
    "MAX_PROTOTXT_DEPTH",
    "MAX_SCHEDULE_STEPS",
    "MAX_RESIZED_PIXELS",
    "MAX_STATE_BYTES",
    "MAX_TF_CONFIG_BYTES",
    "MAX_TRAIN_CONFIG_BYTES",
    "MAX_WALK_DEPTH",
    "MAX_WEIGHTS_CLASSES",
    "MAX_WEIGHTS_DEPTH",
    "MAX_WEIGHTS_FILE_BYTES",
    "MAX_WEIGHTS_OBJECTS",
    "MIN_IMAGE_SIDE",
    "PEER_WAIT_SECONDS",
    "PICKLE_ALLOCATION_FACTOR",
    "PICKLE_ALLOCATION_SLACK",
    "WEIGHTS_READER_BASE_BYTES",
    "WEIGHTS_READ_BYTES_PER_S",
    "WEIGHTS_READ_SECONDS",
    "READ_TIMEOUT_SECONDS",
]

# -- Legacy files (bvlc_alexnet.npy, cuda-convnet checkpoints, batches.meta and cfgs,
# Caffe .caffemodel and .prototxt) --

# Container nesting a pickle may build. bvlc_alexnet.npy nests 4 deep
# (holder array, dict, list, array); a cuda-convnet checkpoint about 8
# (model_state, layers, layer dict, weights list, array; op, options, Option).
MAX_PICKLE_DEPTH = 100
# Opcodes a pickle may run: the pure-Python unpickler runs 2-3 M/s, so the
# cap costs a few seconds. bvlc_alexnet.npy runs 496; a cuda-convnet
# checkpoint is dominated by train_outputs, about 12 opcodes per batch
# trained: CHM's 90 epochs of ImageNet are about 1.4 M.
MAX_PICKLE_OPS = 1 << 23
# Bytes a pickle may allocate besides the strings it reads, as a multiple of
# the file's size on disk (a compressed file's, for a zip or gzip member),
# plus a fixed slack for small files; charged before each allocation. Each
# array counts its bytes, each object and memo entry its CPython size.
# bvlc_alexnet.npy counts 1.0x (243,909,096 bytes for a 243,861,910-byte
# pickle). Object-heavy parts cost more: 112,000 train_outputs entries (CHM's
# 90 ImageNet epochs) count 86 MB for 5.8 MB of pickle, which the slack covers
# even in a checkpoint without large arrays.
PICKLE_ALLOCATION_FACTOR = 4
PICKLE_ALLOCATION_SLACK = 128 << 20
# Decompressed size of a zip or gzip cuda-convnet checkpoint. The largest real
# one, CHM's two-GPU ImageNet net with weights and weight increments
# (2 x 60.9 M float32), unpickles from about 0.49 GB. A member's decompressed
# bytes also count against the allocation budget of its compressed file, so a
# small file is refused long before this limit.
MAX_CHECKPOINT_BYTES = 1 << 30
# A cuda-convnet layer/params cfg or a prototxt: CHM's largest cfg is 4.6 KB,
# Caffe's deploy.prototxt 3.6 KB.
MAX_CFG_BYTES = 1 << 20
# Blocks in a prototxt nest 3 deep in deploy.prototxt (layer, param, filler).
MAX_PROTOTXT_DEPTH = 32
# A .caffemodel: layers (AlexNet has 24, ResNet-152 about 520); values of one
# repeated field of a layer (bottom, top, blobs, kernel_size: GoogLeNet's
# widest concat has 4 bottoms); names and parameter values in the whole file
# (AlexNet about 200: each costs ~60 bytes, so the cap bounds them to ~60 MB).
MAX_CAFFE_LAYERS = 4096
MAX_CAFFE_REPEATED = 256
MAX_CAFFE_VALUES = 1 << 20
# Dimensions of one legacy array, a pickled ndarray or a Caffe blob: real ones
# have at most 4; Caffe's own kMaxBlobAxes is 32 (numpy's limit is 64).
MAX_ARRAY_DIMS = 32

# -- Weights files (.weights.h5) --

# The `alexnet_keras` metadata attribute: 1,000 ImageNet class names with
# their synset ids make about 40 KB of JSON; a cuda-convnet per-pixel mean
# (224 x 224 x 3, 5 decimals) about 1.4 MB.
MAX_METADATA_BYTES = 4 << 20
# One string in the metadata (a class name, a provenance path): ImageNet's
# longest class name is 121 characters; PATH_MAX is 4,096.
MAX_METADATA_STRING = 4096
# fc8 outputs a weights file may declare: ImageNet-21k's 21,841 classes make a
# 358 MB fc8 and a 590 MB file; every real file has 10 or 1,000.
MAX_WEIGHTS_CLASSES = 32_768
# The whole .weights.h5: BVLC's 1,000-class AlexNet is 227.7 MB (fc6 alone,
# 9216 x 4096 float32, is 151 MB); 32,768 classes would make 0.77 GB.
MAX_WEIGHTS_FILE_BYTES = 1 << 30
# Groups and datasets in one file: Keras writes 58 groups and 16 datasets for
# AlexNet; a cuda-convnet cfg net fewer than 200.
MAX_WEIGHTS_OBJECTS = 2048
# Groups below the root: Keras nests layers/<layer>/vars/<n>, 3 deep.
MAX_WEIGHTS_DEPTH = 8
# The child process that parses a weights file (libhdf5 can crash or loop on
# a corrupt file) gets this many seconds plus one per WEIGHTS_READ_BYTES_PER_S
# of file. A 228 MB file takes about 1.5 s; this allows 33 s.
WEIGHTS_READ_SECONDS = 20
WEIGHTS_READ_BYTES_PER_S = 16 << 20
# Its address space, plus twice the file's size: the interpreter with numpy
# and h5py maps about 115 MB; the largest array is read once, then streamed.
WEIGHTS_READER_BASE_BYTES = 768 << 20

# -- Images (folders, `predict`, the serving graph) --

# Bytes read from one image file. A 50-megapixel phone JPEG is 15-25 MB;
# ImageNet's images average about 110 KB.
MAX_IMAGE_BYTES = 64 << 20
# Decoded pixels: 50 megapixels (8160 x 6120) is a phone's full sensor; it
# decodes to 150 MB of uint8 and 600 MB of float32.
MAX_IMAGE_PIXELS = 50_000_000
# Either side: 8160 is a 50 MP sensor's long side; phone panoramas reach
# about 12,000.
MAX_IMAGE_SIDE = 16_384
# Smaller images are refused: a 1x1 tracking pixel or a 4x4 thumbnail blown up
# to 256 gives a confident-looking answer about nothing. CIFAR's 32x32 passes.
MIN_IMAGE_SIDE = 16
# Pixels after the shorter side is resized to 256: bounds the resize work of
# extreme aspect ratios (a 16x50000 strip would become 256x800000). 256 x 4096
# admits every aspect ratio up to 16:1.
MAX_RESIZED_PIXELS = 256 * 4096
# Pixels of all the frames of a GIF together: the decoder keeps every frame
# (1 byte a pixel) though only the first is used, and LZW codes a frame of
# millions of pixels in a few KB. A 10-second 480 x 270 GIF at 30 fps has 39 MP.
MAX_GIF_PIXELS = 100_000_000
# Steps of a header walk: JPEG segments (and 4 KB windows of stray bytes)
# before the frame header, GIF blocks and sub-blocks. A camera JPEG has about
# 20 segments before it; a 64 MB GIF written in 255-byte sub-blocks has 263,000.
# In the serving graph each step costs about 6 microseconds.
MAX_HEADER_STEPS = 300_000

# -- Folders --

# Nested folders under one class folder; ImageNet's layout needs 1.
MAX_WALK_DEPTH = 32
# An ILSVRC-2012 val label file or synset map (`evaluate --labels`): Caffe's
# val.txt is 1.6 MB, Kaggle's LOC_val_solution.csv 2.2 MB, the devkit's ground
# truth 0.2 MB and meta.mat 0.4 MB (zlib: its decompressed size counts too).
MAX_LABEL_FILE_BYTES = 64 << 20
# Entries of an ILSVRC-2012 val folder or label file: the real set has 50,000.
MAX_VAL_IMAGES = 1_000_000
# `numSteps` of a CHM dexp/jdexp learning-rate schedule: the release's files
# use at most 5; each step is a rate looked up for every weight matrix.
MAX_SCHEDULE_STEPS = 1000

# -- Training (configs, TF_CONFIG, checkpoints) --

# A `--config` YAML or a run's `config.yaml`: the resolved config of a run is
# about 900 bytes (42 keys).
MAX_TRAIN_CONFIG_BYTES = 1 << 20
# The `TF_CONFIG` variable: two workers on one host take 90 bytes; 1,024
# `host:port` entries of 30 characters take about 31 KB.
MAX_TF_CONFIG_BYTES = 1 << 20
# Tasks in a `TF_CONFIG` cluster. Each one is dialled before training starts;
# 128 workers of 8 GPUs each would be a 1,024-GPU job.
MAX_CLUSTER_TASKS = 1024
# Seconds to wait for every `TF_CONFIG` peer to accept a TCP connection before
# the run stops naming the ones that did not (the peers start at their own
# pace; TensorFlow itself would wait forever). `ALEXNET_KERAS_PEER_WAIT`
# overrides it.
PEER_WAIT_SECONDS = 60
# A checkpoint's state side file: the trainer state (about 110 bytes) and
# the size and SHA-256 of each file of the save (about 100 bytes per file).
MAX_STATE_BYTES = 1 << 16

# Downloads (weights releases, TFDS archives). A host that does not accept a TCP
# connection within this many seconds counts as unreachable: without a network
# the error comes at once instead of after the system's own minutes-long SYN
# retries. A real host answers in well under a second, a slow one in a few.
CONNECT_TIMEOUT_SECONDS = 5
# A connected server that sends no byte for this long is given up on (the
# socket timeout of each read, also for the response headers).
READ_TIMEOUT_SECONDS = 30
