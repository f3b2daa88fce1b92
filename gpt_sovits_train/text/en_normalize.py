"""English text normalization: numbers, money, times, units, abbreviations and symbols -> words.

Follows the v2 reading where it is right and fixes the v2 mistakes that change meaning (``10:30 a.m.`` read with
the a.m. twice, ``-12`` glued to the previous word, ``$1,250`` read like a year, ``£4.2 million`` read as pence,
``;``/``:`` deleted).  Output contains only ``[A-Za-z' .,?!-]`` so the G2P never sees a digit.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import inflect

from gpt_sovits_train.text.errors import warn_dropped

ABBREVIATIONS = {
    "Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "Dr.": "Doctor", "Prof.": "Professor", "Jr.": "Junior",
    "Sr.": "Senior", "St.": "Saint", "vs.": "versus", "etc.": "et cetera", "e.g.": "for example", "i.e.": "that is",
    "approx.": "approximately", "Mt.": "Mount", "No.": "number", "Inc.": "Incorporated", "Ltd.": "Limited",
}
UNITS_EN = {
    "km/h": ("kilometer per hour", "kilometers per hour"), "mph": ("mile per hour", "miles per hour"),
    "kg": ("kilogram", "kilograms"), "mg": ("milligram", "milligrams"), "g": ("gram", "grams"),
    "km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"), "mm": ("millimeter", "millimeters"),
    "m": ("meter", "meters"), "ft": ("foot", "feet"), "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"), "ml": ("milliliter", "milliliters"), "mL": ("milliliter", "milliliters"),
    "L": ("liter", "liters"), "tbsp": ("tablespoon", "tablespoons"), "tsp": ("teaspoon", "teaspoons"),
    "h": ("hour", "hours"), "hr": ("hour", "hours"), "min": ("minute", "minutes"), "s": ("second", "seconds"),
    "ms": ("millisecond", "milliseconds"), "GB": ("gigabyte", "gigabytes"), "MB": ("megabyte", "megabytes"),
    "KB": ("kilobyte", "kilobytes"), "TB": ("terabyte", "terabytes"), "GHz": ("gigahertz", "gigahertz"),
    "MHz": ("megahertz", "megahertz"), "kHz": ("kilohertz", "kilohertz"), "Hz": ("hertz", "hertz"),
    "kW": ("kilowatt", "kilowatts"), "W": ("watt", "watts"), "V": ("volt", "volts"),
    "°C": ("degree Celsius", "degrees Celsius"), "℃": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"), "℉": ("degree Fahrenheit", "degrees Fahrenheit"),
}
_UNIT_PATTERN = "|".join(re.escape(unit) for unit in sorted(UNITS_EN, key=len, reverse=True))
CURRENCIES = {  # symbol -> (major singular, major plural, minor singular, minor plural)
    "$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "sen", "sen"), "￥": ("yuan", "yuan", "fen", "fen"),
}
SCALE_WORDS = r"(?:hundred|thousand|million|billion|trillion)"
PUNCTUATION_MAP_EN = {
    "；": ",", ";": ",", "：": ",", ":": ",", "，": ",", "、": ",", "。": ".", "！": "!", "？": "?", "…": "...",
    "—": " - ", "–": " - ", "’": "'", "‘": "'", "`": "'", "（": " ", "）": " ", "(": " ", ")": " ", "“": " ", "”": " ",
    '"': " ", "&": " and ", "@": " at ", "+": " plus ", "=": " equals ", "×": " times ", "÷": " divided by ",
    "/": " slash ",
}
# Markup and brackets carry no sound: removed without a warning.
SILENT_EN = "[]{}<>*_|\\^~#`"
GREEK_EN = {"α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "π": "pi", "λ": "lambda", "μ": "mu", "Ω": "omega",
            "ω": "omega", "θ": "theta", "σ": "sigma", "Δ": "delta", "Σ": "sigma"}
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@cache
def _inflect() -> inflect.engine:
    return inflect.engine()


def cardinal(number: int | str) -> str:
    """1234 -> 'one thousand two hundred thirty-four' (no 'and', no commas: commas would become pauses)."""
    return _inflect().number_to_words(str(int(number)), andword="", comma="").replace(",", "")


def ordinal(number: int | str) -> str:
    return _inflect().number_to_words(_inflect().ordinal(str(int(number))), andword="", comma="").replace(",", "")


def year(number: str) -> str:
    """Read a four-digit year: 1998 -> nineteen ninety-eight, 2008 -> two thousand eight, 1900 -> nineteen hundred."""
    value = int(number)
    century, rest = divmod(value, 100)
    if 2000 <= value <= 2009:
        return cardinal(value)
    if rest == 0:
        return cardinal(century) + " hundred"
    return cardinal(century) + " " + (f"oh {cardinal(rest)}" if rest < 10 else cardinal(rest))


def decimal(number: str) -> str:
    integer, _, fraction = number.partition(".")
    words = cardinal(integer or "0")
    if fraction:
        words += " point " + " ".join(DIGIT_NAMES[int(d)] for d in fraction)
    return words


def _money(match: re.Match) -> str:
    symbol, amount, scale = match.group(1), match.group(2).replace(",", ""), match.group(3)
    major_one, major_many, minor_one, minor_many = CURRENCIES[symbol]
    if scale:  # £4.2 million -> four point two million pounds
        return f"{decimal(amount)} {scale} {major_many}"
    integer, _, fraction = amount.partition(".")
    dollars = int(integer or 0)
    cents = int((fraction + "0")[:2]) if fraction else 0
    parts = []
    if dollars or not cents:
        parts.append(f"{cardinal(dollars)} {major_one if dollars == 1 else major_many}")
    if cents:
        parts.append(f"{cardinal(cents)} {minor_one if cents == 1 else minor_many}")
    return " and ".join(parts)


def _meridiem(suffix: str, match: re.Match) -> str:
    """a.m. -> 'A M' (spelled, no pauses); a sentence-final 'a.m.' keeps its full stop."""
    words = " ".join(suffix.replace(".", "").upper())
    at_end = suffix.endswith(".") and not match.string[match.end():].strip()
    return words + ("." if at_end else "")


def _clock(match: re.Match) -> str:
    hour, minute, suffix = int(match.group(1)), int(match.group(2)), match.group(3)
    words = cardinal(hour)
    if minute == 0:
        words += " o'clock" if not suffix else ""
    elif minute < 10:
        words += f" oh {cardinal(minute)}"
    else:
        words += f" {cardinal(minute)}"
    if suffix:
        words += " " + _meridiem(suffix, match)
    return words


def _fraction(match: re.Match) -> str:
    numerator, denominator = int(match.group(1)), int(match.group(2))
    if denominator == 2:
        name = "half" if numerator == 1 else "halves"
    elif denominator == 4:
        name = "quarter" if numerator == 1 else "quarters"
    else:
        name = ordinal(denominator) + ("" if numerator == 1 else "s")
    return f"{cardinal(numerator)} {name}"


def _unit(match: re.Match) -> str:
    amount, unit = match.group(1), match.group(2)
    singular, plural = UNITS_EN[unit]
    return f"{decimal(amount)} {singular if amount == '1' else plural}"


def _integer(match: re.Match) -> str:
    number = match.group(0)
    if len(number) > 1 and number.startswith("0"):
        return " ".join(DIGIT_NAMES[int(d)] for d in number)  # 007, 0123: codes are read digit by digit
    if len(number) == 4 and 1100 <= int(number) <= 2099:
        return year(number)
    return cardinal(number)


def _initialism(match: re.Match) -> str:
    """U.S.A. -> 'U S A' (spelled, the dots are not pauses); a sentence-final one keeps its full stop."""
    letters = " ".join(match.group(1).replace(".", "").upper())
    rest = match.string[match.end():]
    return letters + ("." if not rest.strip() or re.match(r"\s+[A-Z]", rest) else "")


def _decade(match: re.Match) -> str:
    """1990s -> nineteen nineties, 80s -> eighties."""
    number = match.group(1)
    words = year(number) if len(number) == 4 else cardinal(number)
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def normalize_en(text: str) -> str:
    """English text -> words and ``.,?!-`` only (the ``norm_text`` of an English segment)."""
    text = unicodedata.normalize("NFKC", text)
    for abbreviation, expansion in ABBREVIATIONS.items():
        text = re.sub(rf"(?<![A-Za-z]){re.escape(abbreviation)}", expansion, text)
    text = re.sub(r"#\s?(?=\d)", " number ", text)
    text = re.sub(r"~\s?(?=\d)", " about ", text)
    text = re.sub(r"(?<![A-Za-z.])((?:[A-Za-z]\.){2,})", _initialism, text)
    text = re.sub(r"(?<![\d.,])(\d{4}|\d0)'?s\b", _decade, text)
    text = re.sub(r"(\d)%?\s*[-–~]\s*(\d+(?:\.\d+)?)\s*%", r"\1 to \2%", text)
    text = re.sub(r"(\d+(?:\.\d+)?)\s*%", r"\1 percent", text)
    text = re.sub(r"(?<!\d)(\d{3})-(\d{3})-(\d{4})(?!\d)|(?<!\d)(\d{3})-(\d{4})(?!\d)",
                  lambda m: ", ".join(" ".join(DIGIT_NAMES[int(d)] for d in group) for group in m.groups() if group),
                  text)
    text = re.sub(r"(?<!\d)(\d{1,2}):(\d{2})(?:\s*([AaPp]\.?[Mm]\.?)(?![A-Za-z]))?", _clock, text)
    text = re.sub(r"(?<![\d:])(\d{1,2})\s*([AaPp]\.?[Mm]\.?)(?![A-Za-z])",
                  lambda m: f"{cardinal(m.group(1))} {_meridiem(m.group(2), m)}", text)
    text = re.sub(rf"([$£€¥￥])\s?(\d[\d,]*(?:\.\d+)?)(?:\s+({SCALE_WORDS}))?", _money, text)
    # A comma-grouped number is a quantity, never a year: 1,234 -> one thousand two hundred thirty-four.
    text = re.sub(r"(?<![\d.])(\d{1,3}(?:,\d{3})+(?:\.\d+)?)(?![\d])", lambda m: decimal(m.group(1).replace(",", "")),
                  text)
    text = re.sub(r"(\d+)(st|nd|rd|th)\b", lambda m: ordinal(m.group(1)), text)
    text = re.sub(r"(?<![\d/])(\d+)/(\d+)(?![\d/])", _fraction, text)
    text = re.sub(rf"(\d+(?:\.\d+)?)\s?({_UNIT_PATTERN})(?![A-Za-z])", _unit, text)
    text = re.sub(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", " ", text)  # H2O, x86, 5G: letters and digits apart
    text = re.sub(r"(?<![\w\d])-(\d)", r"minus \1", text)
    text = re.sub(r"(\d)\s*-\s*(\d)", r"\1 to \2", text)
    text = re.sub(r"\d+\.\d+", lambda m: decimal(m.group(0)), text)
    text = re.sub(r"\d+", _integer, text)
    text = text.translate({ord(char): " " for char in SILENT_EN})
    for letter, name in GREEK_EN.items():
        text = text.replace(letter, f" {name} ")
    for mark, replacement in PUNCTUATION_MAP_EN.items():
        text = text.replace(mark, replacement)
    text = "".join(char for char in unicodedata.normalize("NFD", text) if unicodedata.category(char) != "Mn")
    warn_dropped(re.findall(r"[^A-Za-z'.,?!\-\s]", text), "English")
    text = re.sub(r"[^A-Za-z'.,?!\- ]", " ", text)
    text = re.sub(r"\.{3,}", "…", text)
    # A run of marks is one pause; spaces before marks are not pauses.
    text = re.sub(r"\s+([.,?!…])", r"\1", text)
    text = re.sub(r"([.,?!…])[.,?!…\-]+", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()
