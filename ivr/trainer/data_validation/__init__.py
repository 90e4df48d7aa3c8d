"""`ivr data validate`: the domain, training data, rules, locale files and knowledge base
checked against each other, and the live models against the data they were trained on.

Every problem names a file and a line (``path:line: message``). Lines come from the YAML
node marks (``yaml.compose``), which Rasa's own validator does not give; it also imports
TensorFlow (seconds) and reports through warnings, so its checks are redone here, and
only Rasa's domain loader is reused (its structural checks of responses and slots).

Per kind of file: ``rasa_data`` (domain, training data, rules) and ``locale_files``
(locales/*.yml, knowledge bases); ``yaml_nodes`` reads the files, ``report`` holds what
was found; the live models are checked here.
"""

from __future__ import annotations

from ivr.project import Project
from ivr.trainer.data_validation.locale_files import check_knowledge, check_locale_file
from ivr.trainer.data_validation.rasa_data import check_domain, check_nlu, check_rules
from ivr.trainer.data_validation.report import Report
from ivr.trainer.data_validation.yaml_nodes import YamlFiles, node_items


def validate(project: Project) -> Report:
    """Every problem found, sorted by file and line."""
    report = Report()
    files = YamlFiles(project, report)
    domain = check_domain(project, files)
    locales = project.locales()
    used: set[str] = set()  # intents with examples (any locale) or in a rule
    for locale in locales:
        used |= check_nlu(project.with_locale(locale), files, domain)
    used |= check_rules(project, files, domain)
    name = files.name(project.domain)
    from rasa.shared.core.constants import DEFAULT_INTENTS

    for intent, node in domain.intents.items():
        if intent not in used and intent not in DEFAULT_INTENTS:
            report.add(name, node, f"intent {intent!r} is in the domain but in no training "
                       "data and no rule")
    for path in sorted((project.root / "locales").glob("*.yml")):
        check_locale_file(path, files, domain)
    for locale in locales:
        check_knowledge(project.with_locale(locale), files, domain)
    _check_models(project, files, locales)
    report.problems.sort()
    report.counts.update(locales=len(locales), intents=len(domain.intents),
                         responses=len(domain.responses))
    return report


def _check_models(project: Project, files: YamlFiles, locales: list[str]) -> None:
    """Each locale's live model was trained on the data as it is now (its file name ends
    in the fingerprint of its inputs)."""
    from ivr.errors import IvrError

    pointer = project.live_pointer
    lines: dict[str, int] = {}
    if pointer.is_file():
        for key, _ in node_items(files.node(pointer)):
            lines[key.value] = key.start_mark.line + 1
    for locale in locales:
        each = project.with_locale(locale)
        try:
            live = each.live_model()
        except IvrError:
            continue  # no model yet: nothing to be out of date (`ivr models` says so)
        current = each.fingerprint()
        if live.name != each.model_for(current).name:
            fresh = each.model_for(current)
            fix = (f"`ivr promote {fresh.name}`" if fresh.is_file()
                   else "`ivr train`, then `ivr promote`")
            where = files.name(pointer) if locale in lines else files.name(
                each.promotions_log)
            files.report.add(where, lines.get(locale, 1),
                             f"the live {locale} model {live.name} is out of date with its "
                             f"data (fingerprint now {current}): {fix}")


def summary(report: Report) -> str:
    c = report.counts
    examples = ", ".join(f"{k.removeprefix('examples_')} {v}" for k, v in sorted(c.items())
                         if k.startswith("examples_"))
    return (f"valid: {c.get('intents', 0)} intents, {c.get('responses', 0)} responses, "
            f"{c.get('locales', 0)} locale(s); training examples {examples or 'none'}; live "
            "models up to date")
