"""Loading a trained model to serve it, without the training step Rasa runs first.

Rasa 3.6 (``RasaModel.load``) builds a model's variables before restoring its weights by
tracing and running one training step: forward pass, loss, gradients, optimiser. That is
what fine-tuning needs; to serve, the variables a prediction reads are enough, and one
eager prediction builds them. On the zh model (DIET with a CRF entity tagger) a load
drops from about 35 s to 7 s, on ko from 8 s to 2 s: an engine restarts, and a promoted
model swaps in, that much sooner. Predictions are the same (``tests/test_engine.py``
compares every held-out utterance's intent ranking and entities); fine-tuning, which
needs the optimiser's state, still loads Rasa's way.
"""

from __future__ import annotations

import threading
from typing import Any

_rasa_load: Any = None  # RasaModel.load as Rasa wrote it, once replaced
_replacing = threading.Lock()  # engines load on threads of their own


def serve_without_training_step() -> None:
    """Make every later ``RasaModel.load`` that is not for fine-tuning build its model with
    a prediction instead of a training step (idempotent)."""
    global _rasa_load
    from rasa.utils.tensorflow.models import RasaModel

    with _replacing:
        if _rasa_load is None:
            _rasa_load = RasaModel.load.__func__  # type: ignore[attr-defined]
            RasaModel.load = classmethod(_load)  # type: ignore[method-assign,assignment]


def rasa_load(cls: Any, *args: Any, **kwargs: Any) -> Any:
    """Rasa's own load (the comparison test loads a model both ways)."""
    return _rasa_load(cls, *args, **kwargs)


def _load(cls: Any, model_file_name: str, model_data_example: Any,
          predict_data_example: Any = None, finetune_mode: bool = False,
          *args: Any, **kwargs: Any) -> Any:
    if finetune_mode or predict_data_example is None:
        return _rasa_load(cls, model_file_name, model_data_example, predict_data_example,
                          finetune_mode, *args, **kwargs)
    import tensorflow as tf
    from rasa.utils.tensorflow.constants import LEARNING_RATE, RUN_EAGERLY
    from rasa.utils.train_utils import create_data_generators

    model = cls(*args, **kwargs)
    config = kwargs.get("config", {})
    model.compile(optimizer=tf.keras.optimizers.Adam(config.get(LEARNING_RATE, 0.001)),
                  run_eagerly=config.get(RUN_EAGERLY))
    batches, _ = create_data_generators(model_data=predict_data_example, batch_sizes=1,
                                        epochs=1, shuffle=False)
    model.predict_step(next(iter(batches))[0])  # eager: builds what a prediction reads
    # The checkpoint also holds the optimiser's slots, which serving never reads.
    model.load_weights(model_file_name).expect_partial()
    model.prepared_for_prediction = False  # its label embeddings came from initial weights
    model.run_inference(predict_data_example)  # traces the prediction graph, as Rasa does
    return model
