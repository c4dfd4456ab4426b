"""`convert`: any legacy release (a name, a Caffe file, a cuda-convnet checkpoint) to Keras weights.

The readers live with their source (`alexnet_keras.caffe`, `alexnet_keras.cuda_convnet`);
this package dispatches by release name and format, and verifies the result against
the source's independent numpy reference.
"""
