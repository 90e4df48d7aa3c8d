"""Commands for the models: ``train``, ``evaluate`` (and ``--candidate``), ``promote``,
and ``models`` (each locale's dialogue, speech and TTS models: found, or what to do)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path

from ivr.cli.common import EXIT_ERROR, open_engine
from ivr.cli.printing import format_evaluation, print_json
from ivr.errors import IvrError
from ivr.project import Project


async def cmd_train(args: argparse.Namespace) -> int:
    from ivr.trainer.training import check_inputs, train, up_to_date

    project: Project = args.project_obj
    # No --locale: every locale with a config/<locale>.yml (scripts/setup.sh relies on it).
    projects = [project.with_locale(locale)
                for locale in ([args.locale] if args.locale else project.locales())]
    for each in projects:  # a broken file in any locale fails before minutes of training
        if args.force or not up_to_date(each):
            check_inputs(each)
    for each in projects:
        result = train(each, force=args.force, finetune=args.finetune)
        state = "trained" if result.trained else "up to date (inputs unchanged)"
        print(f"model {state}: {result.model}", flush=True)
        if result.made_live:
            print(f"  live: the first {each.locale} model (models/live.yml); later ones are "
                  "candidates for `ivr promote`", flush=True)
        elif result.trained:
            print("  a candidate: `ivr evaluate --candidate`, then `ivr promote`", flush=True)
    return 0


async def cmd_evaluate(args: argparse.Namespace) -> int:
    from ivr.dialogue.confidence import ConfidenceBands
    from ivr.dialogue.engine_factory import stand_in_bank
    from ivr.trainer.calibration import save_reliability_diagram
    from ivr.trainer.evaluation import evaluate, evaluate_calls, load_heldout, save_confusion_matrix

    project = args.project_obj
    if args.candidate is not None:
        return await _evaluate_candidate(args)
    examples = load_heldout(Path(args.test) if args.test else project.heldout)
    bank = stand_in_bank()  # the held-out calls are the demo customers'
    engine = await open_engine(project, args.model, bank)
    report = await evaluate(engine, examples, ConfidenceBands.for_locale(project.locale_file))
    scripts = sorted(project.heldout_calls.glob("*.yml")) if not args.test else []
    if scripts:
        report["heldout_calls"] = await evaluate_calls(engine, scripts, bank.reset)
    out_dir = Path(args.out) if args.out else Path("reports") / project.locale
    image = save_confusion_matrix(report.pop("pairs"), out_dir / "confusion_matrix.png")
    report["confusion_matrix"] = str(image)
    calibration = report["calibration"]
    diagram = save_reliability_diagram(calibration["bins"], calibration["ece"],
                                       out_dir / "reliability.png")
    report["reliability_diagram"] = str(diagram)
    (out_dir / "evaluation.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    if args.json:
        print_json(report)
        return 0
    for line in format_evaluation(report):
        print(line)
    print(f"confusion matrix: {image}; reliability diagram: {diagram}; full report: "
          f"{out_dir / 'evaluation.json'}")
    return 0


async def _evaluate_candidate(args: argparse.Namespace) -> int:
    """``evaluate --candidate``: the candidate and the live model (or --model) side by side
    on the held-out set and on the trainers' labelled utterances."""
    from ivr.trainer.evaluation import compare_models, format_comparison

    project = args.project_obj
    live = (args.model or project.live_model()).resolve()
    candidate = Path(args.candidate).resolve() if args.candidate else project.latest_model()
    if candidate == live:
        raise IvrError(f"the newest model {candidate.name} is the live one: name a candidate "
                       "(--candidate PATH) or train one")
    results = await compare_models(project, live, candidate)
    out_dir = Path(args.out) if args.out else Path("reports") / project.locale
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.json").write_text(
        json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    if args.json:
        print_json(results)
        return 0
    print(f"live: {live.name}   candidate: {candidate.name}")
    for name, result in results.items():
        print("\n".join(format_comparison(name, result["comparison"])))
    if "labelled" not in results:
        print(f"(no labelled utterances yet: {project.labelled})")
    print(f"full report: {out_dir / 'comparison.json'}")
    return 0


async def cmd_promote(args: argparse.Namespace) -> int:
    """Make a model live if it is no worse on the held-out set; tell a server to load it."""
    from ivr.trainer.promotion import promote, tell_server

    project = args.project_obj
    done = await promote(project, args.model_file, force=args.force, by=args.by)
    if done.previous == done.model:
        print(f"{done.model} is already live")
    else:
        figures = done.heldout
        gate = (f"held-out accuracy {figures['live']:.3f} -> {figures['candidate']:.3f} "
                f"({figures['delta']:+.3f})" if figures else "no live model to compare with")
        print(f"promoted {done.model} (was {done.previous or 'none'}): {gate}"
              + ("  [forced]" if done.forced and figures and figures["delta"] < 0 else ""))
    if args.server:
        reply = await tell_server(args.server, project.locale, os.environ.get("IVR_WS_TOKEN"))
        print(f"{args.server}: now serving {reply['reloaded'][0]['model']}")
    else:
        print("a running `ivr serve` picks it up within seconds (models/live.yml)")
    return 0


async def cmd_models(args: argparse.Namespace) -> int:
    """Each locale's dialogue model, speech model and TTS voice: found, or what to do."""
    from ivr.dialogue.engine_factory import load_speech_model
    from ivr.errors import ModelNotFoundError
    from ivr.voice.tts import EspeakTts, TtsError
    from ivr.voice.voice_locale import load_voice_locales
    from ivr.voice.vosk_model import SpeechModelError

    root = args.project_obj.root
    try:
        installed = EspeakTts().installed_voices()
    except TtsError:
        installed = frozenset()
    missing = 0
    for name, voice in load_voice_locales(root / "locales").items():
        print(f"{name}:")
        try:
            print(f"  dialogue model  {args.project_obj.with_locale(name).live_model()}")
        except ModelNotFoundError as e:
            missing += 1
            print(f"  dialogue model  MISSING: {e}")
        keys = "callers get its key menu" if voice.keypad else "calls take keys only"
        try:
            model = await asyncio.get_running_loop().run_in_executor(
                None, load_speech_model, name, voice)
        except SpeechModelError as e:
            missing += 1
            print(f"  speech model    MISSING: {e}; {keys} (docs/voice.md)")
        else:
            if model is None:
                print(f"  speech model    none configured: {keys}")
            else:
                print(f"  speech model    {model.path} ({len(model.vocabulary)} words, "
                      f"unknown word {model.unknown_word or 'none'})")
                unsayable = model.missing_words(voice.all_phrases())
                if unsayable:
                    missing += 1
                    print(f"  grammars        NOT IN VOCABULARY: {', '.join(unsayable)}")
        found = voice.tts_voice.split("+")[0] in installed
        if not found:
            missing += 1
        print(f"  tts voice       espeak-ng {voice.tts_voice}: "
              f"{'ok' if found else 'MISSING (scripts/setup.sh installs espeak-ng)'}")
    return EXIT_ERROR if missing else 0
