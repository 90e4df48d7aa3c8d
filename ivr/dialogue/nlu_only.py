"""`ivr parse`'s engine: only the NLU part of a locale's model.

A model's prediction graph also holds the dialogue policies (TED, rules, memoization),
which understanding an utterance never runs; here only the nodes the NLU target needs
are loaded (Rasa's ``minimal_graph_schema``). And for one utterance the classifier runs
eagerly: tracing DIET's TensorFlow prediction graph takes seconds and pays off only over
many utterances (about 35 ms more per utterance eager, on this machine), so ``eager`` is
for ``ivr parse TEXT``, not for stdin. The result is a ``DialogueEngine`` whose ``parse``
is the engine's own (the locale's utterance preparation included); it cannot ``handle``.
"""

from __future__ import annotations

import contextlib
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ivr.errors import ModelNotFoundError, shown


async def load_nlu_engine(model_path: Path, eager: bool = False) -> Any:
    """A ``DialogueEngine`` that can ``parse`` (only) with the model's NLU pipeline."""
    from ivr.dialogue.engine import DialogueEngine, load_on_dialogue_thread

    # Rasa's parse runs on the engine's dialogue thread and loop, as in a full engine.
    loop, processor = await load_on_dialogue_thread(model_path,
                                                    lambda: _load(model_path, eager))
    return DialogueEngine(SimpleNamespace(processor=processor), model_path, loop)


async def _load(model_path: Path, eager: bool) -> Any:
    from rasa.core.processor import MessageProcessor
    from rasa.engine.graph import ExecutionContext
    from rasa.engine.runner.dask import DaskGraphRunner
    from rasa.engine.storage.local_model_storage import LocalModelStorage

    from ivr.dialogue.model_loading import serve_without_training_step

    serve_without_training_step()
    with tempfile.TemporaryDirectory() as folder, _eager_models(eager):
        try:
            storage, metadata = LocalModelStorage.from_model_archive(Path(folder), model_path)
        except tarfile.ReadError:
            raise ModelNotFoundError(f"{shown(model_path)} is not a model archive") from None
        schema = metadata.predict_schema.minimal_graph_schema([metadata.nlu_target])
        runner = DaskGraphRunner.create(
            graph_schema=schema, model_storage=storage,
            execution_context=ExecutionContext(graph_schema=schema,
                                               model_id=metadata.model_id))
    # Rasa's processor, without its __init__ (which loads the whole graph): parse_message
    # reads only these.
    processor = MessageProcessor.__new__(MessageProcessor)
    processor.model_filename = model_path.name
    processor.model_metadata = metadata
    processor.domain = metadata.domain
    processor.graph_runner = runner
    processor.http_interpreter = None
    processor.action_endpoint = None
    return processor


@contextlib.contextmanager
def _eager_models(eager: bool) -> Iterator[None]:
    """While loading, Rasa's TensorFlow models are compiled to run eagerly (``eager``)."""
    if not eager:
        yield
        return
    from rasa.utils.tensorflow.constants import RUN_EAGERLY
    from rasa.utils.tensorflow.models import RasaModel

    saved = RasaModel.__dict__["load"]  # the classmethod (ivr's serving load, see above)

    def load(cls: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["config"] = {**(kwargs.get("config") or {}), RUN_EAGERLY: True}
        return saved.__func__(cls, *args, **kwargs)

    RasaModel.load = classmethod(load)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        RasaModel.load = saved  # type: ignore[method-assign]
