"""The CHM 2012 release and cuda-convnet: cfg files, checkpoints, cfg nets in Keras.

- cfg files: `cfg_text` (the ConfigParser dialect), `cfg_rules` (per-layer
  rules), `cfg_params` (the parameter file), `cfg_net` (`read_net`: a
  validated `ChmNet`);
- checkpoints: `checkpoint_io` (pickle/zip/gzip through `safe_pickle`),
  `checkpoint` (`read_checkpoint`, `batches.meta`);
- mappers: `chm2012_mapper` (layers-145 to `AlexNet(variant="chm2012")`),
  `cfg_mapper` (any net to its cfg model);
- `reference`: an independent numpy cuda-convnet forward pass;
- Keras: `layers` (cuda-convnet pooling, neurons, dropout), `cfg_model`
  (`build_model`), `cfg_weights` (the self-contained cfg-model weights file);
- training: `cifar_provider` (cuda-convnet's CIFAR provider), `update_rule`;
- `convert`: a checkpoint to a weights file.
"""
