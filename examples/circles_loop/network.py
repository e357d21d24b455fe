"""The article's network: one hidden ReLU layer and one sigmoid output, as a subclassed model.

Changed only as far as the search needs: dropout and BatchNorm (two of the six searched
dimensions) sit after the hidden layer, and ``get_config`` with Keras' registration lets the
exported model be loaded again (``import network`` first, then ``keras.saving.load_model``).
"""

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="circles_loop")
class NeuralNetwork(tf.keras.Model):
    def __init__(self, input_dim, hidden_dim, output_dim, dropout=0.0, batchnorm=False, **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.hidden_dim, self.output_dim = input_dim, hidden_dim, output_dim
        self.dropout_rate, self.use_batchnorm = dropout, batchnorm
        self.dense1 = tf.keras.layers.Dense(hidden_dim, activation="relu")
        self.norm = tf.keras.layers.BatchNormalization() if batchnorm else None
        self.dropout = tf.keras.layers.Dropout(dropout)
        self.dense2 = tf.keras.layers.Dense(output_dim, activation="sigmoid")

    def call(self, x, training=False):
        x = self.dense1(x)
        if self.norm is not None:
            x = self.norm(x, training=training)
        x = self.dropout(x, training=training)
        x = self.dense2(x)
        return x

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "hidden_dim": self.hidden_dim,
            "output_dim": self.output_dim,
            "dropout": self.dropout_rate,
            "batchnorm": self.use_batchnorm,
        }
