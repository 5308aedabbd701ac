"""Training (the only package that imports torch): the CV-UGCN refiner and its weak supervision.

- :mod:`training.graph`: the cross-view skeleton graph (five neighbour kinds) and pooling groups.
- :mod:`training.cvugcn`: the network; :mod:`training.losses`: seed 000's weak losses.
- :mod:`training.data`: synthetic training data, triangulated once.
- :mod:`training.train_refiner`: ``train(config) -> run_dir``; :mod:`training.export`: ONNX + model
  card; :mod:`training.evaluate`: triangulation versus refinement on the CMU test split.
"""
