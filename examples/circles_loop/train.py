"""The article's GradientTape training loop, tuned by autotune.

The loop is the article's, changed only where the search reaches it:

- the model reads the sampled ``hidden_dim``, ``dropout`` and ``batchnorm``;
- ``data.optimizer()`` is the sampled optimizer (sgd, momentum, nesterov, adagrad, rmsprop,
  adam, adamw) at the sampled learning rate with the sampled decay schedule, instead of
  ``Adam(learning_rate=0.001)``;
- ``data.train`` holds the training split in batches of the sampled size, reshuffled every
  epoch, instead of the whole array at once; the step is a ``tf.function``, as the article's
  loop would want once it takes many small steps;
- ``data.epochs`` replaces the fixed 100 epochs;
- after each epoch the loop scores the validation split and reports it; ``report`` returns
  True once early stopping ends training, and raises when the pruner ends the trial;
- ``reporter.resume(model, optimizer)`` hands them to autotune's checkpoints, and says which
  epoch to start from (0, or where a retried trial's earlier attempt left off).

TensorFlow is imported inside ``train``, so that ``autotune show`` answers at once.
"""

SPACE = {
    "hidden_dim": {"low": 4, "high": 64, "log": True},
    "dropout": {"low": 0.0, "high": 0.5},
    "batchnorm": {"choices": [False, True]},
}


def train(params, data, reporter):
    import tensorflow as tf
    from network import NeuralNetwork

    # 初始化神经网络 (initialize the network)
    model = NeuralNetwork(
        input_dim=data.input_shape[0],
        hidden_dim=params["hidden_dim"],
        output_dim=1,
        dropout=params["dropout"],
        batchnorm=params["batchnorm"],
    )

    # 定义损失函数和优化器 (the loss, and the searched optimizer)
    loss_fn = tf.keras.losses.BinaryCrossentropy()
    optimizer = data.optimizer()
    accuracy = tf.keras.metrics.BinaryAccuracy()

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    # 训练神经网络 (train the network), from where an earlier attempt's checkpoint left off
    start = reporter.resume(model, optimizer)
    for epoch in range(start, data.epochs):
        for x, y in data.train:
            loss = step(x, y)
        accuracy.reset_state()
        for x, y in data.validation:
            accuracy.update_state(y, model(x, training=False))
        if reporter.report(epoch, loss=loss, val_accuracy=accuracy.result()):
            break
    return model
