"""Your own fit, for an imbalanced data set: fraud is rare, so each class is weighted by how
rare it is, and the search is scored on the validation AUC rather than on accuracy (a model
that never says "fraud" is right 96% of the time).

autotune calls ``fit(params, model, data, callbacks)`` once per trial with:

- ``params``: the sampled parameters;
- ``model``: the family's model (here the built-in MLP), compiled by autotune with the sampled
  optimizer, learning rate and decay;
- ``data``: the splits as batched, shuffled ``tf.data`` pipelines at the sampled batch size
  (``data.train``, ``data.validation``), the same as arrays (``data.x_train``, ``data.y_train``,
  ...), and ``data.epochs``, how many epochs to train;
- ``callbacks``: autotune's, which score each epoch, prune and stop early. Pass them on.

It returns what ``model.fit`` returns.
"""


def fit(params, model, data, callbacks):
    import numpy as np

    counts = np.bincount(data.y_train, minlength=data.n_outputs)
    class_weight = {c: len(data.y_train) / (data.n_outputs * n) for c, n in enumerate(counts)}
    return model.fit(
        data.train,
        validation_data=data.validation,
        epochs=data.epochs,
        class_weight=class_weight,
        shuffle=False,  # data.train is shuffled already, by the trial's seed
        callbacks=callbacks,
        verbose=0,
    )
