"""BVLC Caffe and caffe-tensorflow releases: readers, the mapping to Keras, a numpy Caffe.

`.caffemodel` (protobuf, no protobuf library needed), `deploy.prototxt`,
caffe-tensorflow's `bvlc_alexnet.npy`, the mapping of their arrays to the
Keras AlexNet, an independent numpy Caffe forward pass, and `convert_file`.
Nothing here imports Keras or TensorFlow.
"""
