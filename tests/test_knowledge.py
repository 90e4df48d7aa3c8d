"""The knowledge base file ops edit."""

import pytest

from ivr.errors import DataFileError
from ivr.knowledge import KnowledgeBase


def test_shipped_knowledge_base_loads(project):
    kb = KnowledgeBase.load(project.knowledge)
    assert {"美元", "欧元", "日元", "港币"} <= kb.exchange_rates.keys()
    assert [b.city for b in kb.branches_in("上海哪里有网点")] == ["上海"]
    assert len(kb.branches_in("最近的网点")) == len(kb.branches)


@pytest.mark.parametrize(("content", "fragment"), [
    ("branches: [\n", "not valid YAML"),
    ("branches: []\n", "malformed knowledge base"),
    ("- just a list\n", "expected a mapping"),
])
def test_broken_knowledge_base_is_a_clear_error(tmp_path, content, fragment):
    path = tmp_path / "kb.yml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFileError, match=fragment):
        KnowledgeBase.load(path)
