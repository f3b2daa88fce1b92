"""Agreement with the v2 reference frontend output (``g2p_v2_public.jsonl``).

Every row must either match the reference phone sequence exactly or be listed in ``DELIBERATE_DIFFERENCES`` with
the reason we differ.  A listed row that starts matching fails too, so the list never goes stale.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

from gpt_sovits_train.text.frontend import phonemize
from gpt_sovits_train.text.symbols import symbols_to_ids

_JA_DICTIONARY = (
    "pyopenjtalk-plus ships a newer dictionary than the open_jtalk 1.11 NAIST-jdic the reference used, so "
    "accent-phrase boundaries / pitch marks differ; the phonemes themselves agree"
)
_EN_COMMA_KEPT = "full-width comma after an English word is kept as a pause ',' (v2 deletes it in the English segment)"

DELIBERATE_DIFFERENCES: dict[str, str] = {
    # Chinese
    "public-zh-015": "1,234,567 is a grouped number (一百二十三万...), not 一,二三四,五六七",
    "public-zh-021": "3:2 is a score: 三比二 (v2 drops the colon: 三二)",
    "public-zh-022": "￥120 is 一百二十元; v2 turns ￥ into SP2 pauses and reads 120 digit by digit",
    # English
    "public-en-026": "7:45 is 'seven forty-five'; v2 invents 'a.m.' and reads it as 'AH0 . EH1 M .'",
    "public-en-028": "NASA is said as a word (N AE1 S AH0), not spelled; the dots of U.S. are not pauses",
    "public-en-030": "Dr. is 'Doctor'; v2 reads it as 'drive' followed by a full stop",
    "public-en-033": "£4.2 million is 'four point two million pounds'; v2 says 'four pounds and twenty pence million'",
    "public-en-034": "';' is a pause ','; 'Please read' is present (R IY1 D), 'I read ... yesterday' past (R EH1 D); "
                     "v2 deletes ';' and swaps both readings",
    "public-en-036": "OOV 'zorblax' comes from the g2p_en neural model; v2 splits it with wordsegment (both guesses)",
    "public-en-038": "555-0123 is a phone number read digit by digit; v2 reads 'five hundred fifty-five-one...'",
    "public-en-040": "9:00 is 'nine o'clock'; v2 appends an invented 'a.m.'",
    "public-en-042": "-12 is 'minus twelve' as its own word; v2 glues 'tonegative'",
    "public-en-044": "'people live nearby' is the verb L IH1 V; v2 says L AY1 V",
    "public-en-045": "Mr./Mrs. are 'Mister'/'Missus' without a full-stop pause, $32,500 has no comma pause inside "
                     "the number, 'thirty-two' is thirty + two (v2's dictionary entry has T OW0)",
    "public-en-049": "10:30 a.m. is said once ('ten thirty A M.'); v2 says 'a.m.' twice",
    # Mixed Chinese + English
    "public-mixed-051": _EN_COMMA_KEPT + "; MacBook is the cmudict word (B UH2 K), v2 splits it into Mac Book",
    "public-mixed-052": "no ',' is put in front of a short English word inside a sentence (v2: ', B AH1 G')",
    "public-mixed-053": _EN_COMMA_KEPT + "; Wi-Fi is the word W AY1 F AY2, not spelled 'W I - F I'",
    "public-mixed-055": _EN_COMMA_KEPT,
    "public-mixed-057": _EN_COMMA_KEPT,
    "public-mixed-060": _EN_COMMA_KEPT + "; and no ',' is put in front of the short word 'OK'",
    # Japanese
    "public-ja-061": _JA_DICTIONARY,
    "public-ja-062": _JA_DICTIONARY,
    "public-ja-065": _JA_DICTIONARY,
    "public-ja-066": _JA_DICTIONARY,
    "public-ja-067": _JA_DICTIONARY,
    "public-ja-068": _JA_DICTIONARY,
    "public-ja-070": _JA_DICTIONARY,
}


def _reference_file(ref_dir: Path) -> Path:
    path = Path(os.environ.get("GST_G2P_REFERENCE", ref_dir / "g2p_v2_public.jsonl"))
    if not path.is_file():
        pytest.fail(f"G2P reference rows not found at {path}; set GST_G2P_REFERENCE to the g2p_v2_public.jsonl file")
    return path


@pytest.fixture(scope="module")
def reference_rows(ref_dir: Path) -> list[dict]:
    with _reference_file(ref_dir).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_reference_ids_are_our_ids(reference_rows: list[dict]) -> None:
    """The reference's own phones map to its own ids through our table (the table is the same)."""
    for row in reference_rows:
        assert symbols_to_ids(row["phones"]) == row["phone_ids"], row["id"]


def test_agreement_with_v2_reference(reference_rows: list[dict]) -> None:
    matches: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    unexplained, stale = [], []
    for row in reference_rows:
        # Mixed rows were made with the v2 "zh" mixed mode: our zh hint reads Latin words as English the same way.
        result = phonemize(row["text"], language=row["language"])
        same = result.phones == row["phones"]
        matches[row["category"]][0] += same
        matches[row["category"]][1] += 1
        if not same and row["id"] not in DELIBERATE_DIFFERENCES:
            unexplained.append(f"{row['id']}: {row['text']}\n  ours: {' '.join(result.phones)}\n"
                               f"  v2:   {' '.join(row['phones'])}")
        if same and row["id"] in DELIBERATE_DIFFERENCES:
            stale.append(row["id"])
        if same and row.get("word2ph") is not None:
            assert result.word2ph == row["word2ph"], row["id"]
    for category, (same, total) in sorted(matches.items()):
        print(f"v2 reference agreement [{category}]: {same}/{total} = {same / total:.0%} phone sequences identical")
    assert not unexplained, "unlisted differences from the v2 reference:\n" + "\n".join(unexplained)
    assert not stale, f"rows listed as deliberate differences now match the reference; unlist them: {stale}"


def test_every_listed_difference_is_a_reference_row(reference_rows: list[dict]) -> None:
    ids = {row["id"] for row in reference_rows}
    assert set(DELIBERATE_DIFFERENCES) <= ids
