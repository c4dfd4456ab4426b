"""Every bound on untrusted input, in one place, with the real files' figures.

A file from the internet, an image in a request or a config a user edits is
read only within these limits; a file past one is refused in one line before
anything large is allocated. Each limit sits well above what the real files
need (the figures in the comments), so only a crafted or broken input meets it.
"""

__all__ = [
    "MAX_CFG_BYTES",
    "MAX_CHECKPOINT_BYTES",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
    "MAX_METADATA_BYTES",
    "MAX_PICKLE_DEPTH",
    "MAX_RESIZED_PIXELS",
    "MIN_IMAGE_SIDE",
    "PICKLE_ALLOCATION_FACTOR",
    "PICKLE_ALLOCATION_SLACK",
    "MAX_WALK_DEPTH",
]

# -- Legacy pickles (bvlc_alexnet.npy, cuda-convnet checkpoints, batches.meta) --

# Container nesting a pickle may build. bvlc_alexnet.npy nests 4 deep
# (holder array, dict, list, array); a cuda-convnet checkpoint about 8
# (model_state, layers, layer dict, weights list, array; op, options, Option).
MAX_PICKLE_DEPTH = 100
# Bytes a pickle may allocate, as a multiple of the bytes it is read from, plus
# a fixed slack for tiny files. Array data is copied once from the pickle's
# byte strings (x2); bvlc_alexnet.npy (243,861,814 bytes) needs about 2.0x.
PICKLE_ALLOCATION_FACTOR = 4
PICKLE_ALLOCATION_SLACK = 64 << 20
# Decompressed size of a zip or gzip cuda-convnet checkpoint. The largest real
# one, CHM's two-GPU ImageNet net with weights and weight increments
# (2 x 60.9 M float32), unpickles from about 0.49 GB.
MAX_CHECKPOINT_BYTES = 2 << 30
# A cuda-convnet layer/params cfg or a prototxt: CHM's largest cfg is 4.6 KB,
# Caffe's deploy.prototxt 3.6 KB.
MAX_CFG_BYTES = 1 << 20

# -- Weights files (.weights.h5) --

# The `alexnet_keras` metadata attribute: 1,000 ImageNet class names with
# their synset ids make about 40 KB of JSON.
MAX_METADATA_BYTES = 4 << 20

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

# -- Folders --

# Nested folders under one class folder; ImageNet's layout needs 1.
MAX_WALK_DEPTH = 32
