"""The normaliser as a Rasa 3 graph component, first in the NLU pipeline.

It rewrites each message's text before the tokenizer sees it, and adds ``normalized`` and
``dialect`` to the parse result. Its data is persisted inside the trained model, so a model
is self-contained and an old call can be replayed against it unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import jieba
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from ivr.nlu.normalizer import Normalizer
from ivr.project import find_root

_DATA_FILE = "normalizer.json"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER], is_trainable=True)
class DialectNormalizer(GraphComponent):
    """Rewrites dialect phrases and ASR near-homophones to Mandarin banking language."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        # Paths relative to the project root ($IVR_HOME while `ivr train` runs).
        return {"dialects": None, "lexicon": None}

    def __init__(
        self, normalizer: Normalizer | None, model_storage: ModelStorage, resource: Resource,
        config: dict[str, Any],
    ) -> None:
        self._normalizer = normalizer
        self._storage = model_storage
        self._resource = resource
        self._config = config
        if normalizer:
            _teach_tokenizer(normalizer)

    @classmethod
    def create(
        cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
        execution_context: ExecutionContext,
    ) -> DialectNormalizer:
        return cls(None, model_storage, resource, config)

    @classmethod
    def load(
        cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
        execution_context: ExecutionContext, **kwargs: Any,
    ) -> DialectNormalizer:
        with model_storage.read_from(resource) as directory:
            data = json.loads((directory / _DATA_FILE).read_text(encoding="utf-8"))
        return cls(Normalizer.from_data(data), model_storage, resource, config)

    def train(self, training_data: TrainingData) -> Resource:
        root = find_root()
        normalizer = Normalizer.from_files(
            root / self._config["dialects"], root / self._config["lexicon"]
        )
        with self._storage.write_to(self._resource) as directory:
            (directory / _DATA_FILE).write_text(
                json.dumps(normalizer.as_data(), ensure_ascii=False), encoding="utf-8"
            )
        return self._resource

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for example in training_data.training_examples:
            if example.get(TEXT):
                self._normalize(example)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            if message.get(TEXT):
                self._normalize(message)
        return messages

    def _normalize(self, message: Message) -> None:
        assert self._normalizer, "normaliser used before training or loading"
        result = self._normalizer.normalize(message.get(TEXT))
        for entity in message.get(ENTITIES) or []:
            entity["start"] = result.map_offset(entity["start"])
            entity["end"] = result.map_offset(entity["end"])
        message.set(TEXT, result.text)
        message.set("normalized", result.text, add_to_output=True)
        message.set("dialect", result.dialect, add_to_output=True)


def _teach_tokenizer(normalizer: Normalizer) -> None:
    # Rasa's JiebaTokenizer uses jieba's global dictionary: banking terms added here are
    # kept whole (信用卡 rather than 信用/卡) by the tokenizer that runs next.
    for term in normalizer.terms:
        jieba.add_word(term)
