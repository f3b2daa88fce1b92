"""Chinese text normalization: numbers, dates, times, units, symbols -> Chinese characters, punctuation -> v2 set.

The v2 Chinese G2P only understands CJK characters plus the six v2 punctuation marks, so everything else has to
be spelled out in characters first.  The rules follow the v2 reference reading where it is right (years digit by
digit, long bare integers read digit by digit with 1 -> 幺, ``12.5%`` -> 百分之十二点五) and fix it where it is
plainly wrong (``1,234,567`` is grouped, ``3:2`` is a score 三比二, ``￥120`` is 一百二十元).  The differences are
listed in ``tests/text/test_reference_agreement.py``.
"""

from __future__ import annotations

import re

import cn2an

from gpt_sovits_train.text.errors import DroppedTextWarning, warn_dropped
from gpt_sovits_train.text.symbols import PUNCTUATION

__all__ = ["DroppedTextWarning", "normalize_zh"]

# Measure words / nouns after which a number is read as a quantity (cardinal) instead of digit by digit.
QUANTIFIERS = (
    "小时|分钟|公里|千米|厘米|毫米|公斤|千克|毫升|平方米|立方米|平米|摄氏度|美元|欧元|英镑|日元|港币|人民币|"
    "个|只|本|件|条|张|把|名|人|位|次|元|块|角|毛|分|秒|岁|年|月|天|日|周|星期|斤|两|克|米|吨|升|亿|万|千|百|倍|度|"
    "台|辆|架|艘|部|家|所|座|栋|层|字|词|句|页|篇|章|节|课|题|点|项|份|双|对|套|群|批|种|类|样|碗|杯|瓶|盒|箱|包|袋|"
    "颗|粒|根|支|枝|棵|朵|片|头|匹|口|间|扇|场|届|期|级|遍|趟|回|声|步|圈|轮|局|首|幅|封|顿|辈|代|盘|行|排|列|股|"
    "笔|单|票|集|季|届|多|余|来|几|折|成|克拉|像素|兆|斤|里|寸|尺|丈|亩|公顷|瓦|伏|安|赫兹|帧|楼|号线"
)
# Numbers of value 2 are read 两 before these (两个人, 两小时) and 二 elsewhere (二月, 二号).
LIANG_MEASURES = (
    "小时|分钟|公里|千米|公斤|千克|个|只|本|件|条|张|把|名|位|次|块|岁|天|周|星期|斤|吨|倍|台|辆|架|艘|部|家|所|座|"
    "栋|层|句|页|篇|章|节|课|项|份|双|对|套|群|批|种|类|样|碗|杯|瓶|盒|箱|包|袋|颗|粒|根|支|枝|棵|朵|片|头|匹|口|间|"
    "扇|场|遍|趟|回|声|步|圈|轮|局|首|幅|封|顿|辈|代|盘|行|排|列|股|笔|年|万|千|亿|百|点"
)

UNITS_ZH = {
    "km/h": "千米每小时", "m/s": "米每秒", "kg": "千克", "mg": "毫克", "km": "千米", "cm": "厘米", "mm": "毫米",
    "ml": "毫升", "mL": "毫升", "g": "克", "m": "米", "L": "升", "l": "升", "t": "吨", "h": "小时", "min": "分钟",
    "s": "秒", "GB": "吉字节", "MB": "兆字节", "KB": "千字节", "kB": "千字节", "TB": "太字节", "GHz": "吉赫兹",
    "MHz": "兆赫兹", "kHz": "千赫兹", "Hz": "赫兹", "kW": "千瓦", "W": "瓦", "V": "伏", "mAh": "毫安时",
    "m²": "平方米", "㎡": "平方米", "m³": "立方米", "ft": "英尺", "mph": "英里每小时", "lb": "磅", "lbs": "磅",
    "oz": "盎司", "°C": "摄氏度", "℃": "摄氏度", "°F": "华氏度", "℉": "华氏度",
}
# Longest first so that "km/h" wins over "km" and "kg" over "g".
_UNIT_PATTERN = "|".join(re.escape(unit) for unit in sorted(UNITS_ZH, key=len, reverse=True))
UNIT_AFTER_NUMBER = re.compile(rf"(\d+(?:\.\d+)?)\s?({_UNIT_PATTERN})(?![A-Za-z])")

CURRENCY_ZH = {"￥": "元", "¥": "元", "$": "美元", "€": "欧元", "£": "英镑"}
SYMBOL_WORDS_ZH = {
    "+": "加", "×": "乘", "÷": "除以", "=": "等于", "<": "小于", ">": "大于", "≤": "小于等于", "≥": "大于等于",
    "&": "和", "/": "每", "α": "阿尔法", "β": "贝塔", "γ": "伽玛", "δ": "德尔塔", "π": "派", "λ": "兰布达", "μ": "缪",
    "Ω": "欧米伽", "ω": "欧米伽", "θ": "西塔", "σ": "西格玛", "‰": "千分号",
}
CIRCLED_NUMBERS = {chr(0x2460 + index): cn2an.an2cn(str(index + 1)) for index in range(20)}
DIGIT_READING = dict(zip("0123456789", "零幺二三四五六七八九"))
PLAIN_DIGIT_READING = dict(zip("0123456789", "零一二三四五六七八九"))

# Punctuation -> v2 punctuation (the v2 ``rep_map`` plus the ASCII and full-width marks it leaves out).
PUNCTUATION_MAP_ZH = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",", "...": "…",
    "/": ",", "—": "-", "~": "…", "～": "…", ":": ",", ";": ",", "!": "!", "?": "?", ",": ",", ".": ".",
    "……": "…", "⋯": "…", "「": "", "」": "", "『": "", "』": "",
}
# Characters that carry no sound and are removed without a warning (quotes, brackets, spaces, markup).
SILENT_CHARACTERS = set(" \t\r\u3000\"'“”‘’《》【】〈〉<>{}()（）[]#@^_|\\*`「」『』-–")


def _cardinal(number: str) -> str:
    """Read a (possibly decimal, possibly negative) number as a quantity: 5999 -> 五千九百九十九."""
    negative = number.startswith("-")
    number = number.lstrip("-")
    if "." in number:
        integer, fraction = number.split(".", 1)
        reading = cn2an.an2cn(integer or "0") + "点" + "".join(PLAIN_DIGIT_READING[d] for d in fraction)
    else:
        reading = cn2an.an2cn(str(int(number)))
    return ("负" if negative else "") + reading


def _digits(number: str, one_as_yao: bool = True) -> str:
    """Read a digit string digit by digit (phone numbers, years, codes); 1 is 幺 for codes, 一 for years."""
    table = DIGIT_READING if one_as_yao else PLAIN_DIGIT_READING
    return "".join(table.get(char, char) for char in number)


def _to_half_width(text: str) -> str:
    """Full-width ASCII letters/digits/signs -> half width so that one set of regexes sees every number."""
    out = []
    for char in text:
        code = ord(char)
        if char == "\u3000":
            out.append(" ")
        elif 0xFF01 <= code <= 0xFF5E and (char.isalnum() or char in "％＋－＝．／＜＞"):
            out.append(chr(code - 0xFEE0))
        else:
            out.append(char)
    return "".join(out)


def _replace_dates(text: str) -> str:
    def full_date(match: re.Match) -> str:
        year, month, day = match.group(1), match.group(2), match.group(3)
        return f"{_digits(year, one_as_yao=False)}年{_cardinal(month)}月{_cardinal(day)}日"

    text = re.sub(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)", full_date, text)
    text = re.sub(r"(?<![\d.])(\d{2,4})(?=年)", lambda m: _digits(m.group(1), one_as_yao=False), text)
    text = re.sub(r"(?<![\d.])(\d{1,2})(?=月)", lambda m: _cardinal(m.group(1)), text)
    return re.sub(r"(?<![\d.])(\d{1,2})(?=[日号])", lambda m: _cardinal(m.group(1)), text)


def _read_clock(hour: str, minute: str, second: str | None) -> str:
    reading = ("两" if int(hour) == 2 else _cardinal(hour)) + "点"
    if second is None and minute == "30":
        return reading + "半"
    if minute != "00" or second:
        reading += ("零" if minute.startswith("0") and minute != "00" else "") + _cardinal(minute) + "分"
    if second:
        reading += _cardinal(second) + "秒"
    return reading


def _replace_times(text: str) -> str:
    clock = r"([01]?\d|2[0-4]):([0-5]\d)(?::([0-5]\d))?"

    def time_range(match: re.Match) -> str:
        return _read_clock(*match.group(1, 2, 3)) + "到" + _read_clock(*match.group(4, 5, 6))

    text = re.sub(rf"(?<!\d){clock}\s*[-~～至到]\s*{clock}(?!\d)", time_range, text)
    text = re.sub(rf"(?<!\d){clock}(?!\d)", lambda m: _read_clock(*m.group(1, 2, 3)), text)
    # Any other a:b between numbers is a score or ratio: 3:2 -> 三比二.
    return re.sub(r"(?<!\d)(\d+)\s*[:：]\s*(\d+)(?!\d)", lambda m: _cardinal(m.group(1)) + "比" + _cardinal(m.group(2)),
                  text)


def _replace_phone_numbers(text: str) -> str:
    text = re.sub(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)",
                  lambda m: _digits("".join(m.groups())), text)
    return re.sub(r"(?<!\d)(0\d{2,3})-(\d{7,8})(?!\d)", lambda m: _digits(m.group(1)) + "," + _digits(m.group(2)), text)


def _replace_measures(text: str) -> str:
    def temperature(match: re.Match) -> str:
        sign, value, scale = match.group(1), match.group(2), match.group(3)
        prefix = "零下" if sign else ""
        return prefix + _cardinal(value) + ("华氏度" if scale in ("°F", "℉") else "度")

    def temperature_range(match: re.Match) -> str:  # 10-20℃ is 十到二十度, not 十零下二十度
        low, high, scale = match.group(1), match.group(2), match.group(3)
        return _cardinal(low) + "到" + temperature(re.match(r"(-?)(\d+(?:\.\d+)?)(.*)", high + scale))

    text = re.sub(r"(?<![\d.])(\d+(?:\.\d+)?)\s*[-~～至到]\s*(-?\d+(?:\.\d+)?)\s?(°C|℃|°F|℉)", temperature_range, text)
    text = re.sub(r"(-?)(\d+(?:\.\d+)?)\s?(°C|℃|°F|℉)", lambda m: temperature(m), text)
    # A signed number of 度 after a non-digit is a temperature (v2 reads 度 so too): 温度-3.5度 -> 零下三点五度.
    text = re.sub(r"(?<![\dA-Za-z.])(-)(\d+(?:\.\d+)?)(度)(?!角)", temperature, text)
    text = re.sub(r"(\d+(?:\.\d+)?)%?\s*[-~～至到]\s*(\d+(?:\.\d+)?)\s?%",
                  lambda m: "百分之" + _cardinal(m.group(1)) + "到百分之" + _cardinal(m.group(2)), text)  # 10%-20%
    text = re.sub(r"(-?\d+(?:\.\d+)?)\s?%", lambda m: "百分之" + _cardinal(m.group(1)), text)
    text = re.sub(r"(-?\d+(?:\.\d+)?)\s?‰", lambda m: "千分之" + _cardinal(m.group(1)), text)
    text = UNIT_AFTER_NUMBER.sub(lambda m: _cardinal(m.group(1)) + UNITS_ZH[m.group(2)], text)

    def currency(match: re.Match) -> str:
        symbol, amount = match.group(1), match.group(2).replace(",", "")
        return _cardinal(amount) + CURRENCY_ZH[symbol]

    return re.sub(r"([￥¥$€£])\s?(\d[\d,]*(?:\.\d+)?)", currency, text)


def _replace_arithmetic(text: str) -> str:
    text = re.sub(r"(?<![\d/])(\d+)/(\d+)(?![\d/])", lambda m: _cardinal(m.group(2)) + "分之" + _cardinal(m.group(1)),
                  text)
    text = re.sub(r"(\d)\s*-\s*(?=\d[\d.]*\s*=)", r"\1减", text)  # 5-3=2: subtraction only when an '=' follows
    text = re.sub(r"(\d+(?:\.\d+)?)\s*[-~～]\s*(\d+(?:\.\d+)?)", r"\1到\2", text)  # 3-5个 / 3~5: a range
    # -3 -> 负三, also right after a Chinese character (余额-200元); after a Latin letter it is a hyphen (COVID-19)
    text = re.sub(r"(?<![\dA-Za-z_])-(\d)", r"负\1", text)
    for symbol, word in SYMBOL_WORDS_ZH.items():
        text = text.replace(symbol, word)
    return text


def _replace_numbers(text: str) -> str:
    text = re.sub(r"(?<!\d)(\d{1,3}(?:,\d{3})+)(?![\d,])", lambda m: m.group(1).replace(",", ""), text)
    text = re.sub(r"(?<![\d.])(\d+\.\d+)", lambda m: _cardinal(m.group(1)), text)

    def with_quantifier(match: re.Match) -> str:
        number, measure = match.group(1), match.group(2)
        ordinal = match.string[match.start() - 1: match.start()] == "第"  # 第2名 is 第二名, never 第两名
        grade = match.string[match.end(): match.end() + 1] == "级"  # 2年级 is 二年级
        exception = number.startswith("0") or ordinal or grade
        if int(number) == 2 and re.fullmatch(LIANG_MEASURES, measure) and not exception:
            return "两" + measure
        return _cardinal(number) + measure

    text = re.sub(rf"(\d+)({QUANTIFIERS})", with_quantifier, text)
    text = re.sub(r"\d{3,}", lambda m: _digits(m.group(0)), text)  # codes, room numbers: 502室 -> 五零二室
    return re.sub(r"\d+", lambda m: _cardinal(m.group(0)), text)


def _map_punctuation_and_filter(text: str) -> str:
    text = text.replace("嗯", "恩").replace("呣", "母")
    for mark in ("……", "...", "⋯"):
        text = text.replace(mark, "…")
    out: list[str] = []
    dropped: list[str] = []
    for char in text:
        mapped = PUNCTUATION_MAP_ZH.get(char, char)
        if mapped == "" or char in SILENT_CHARACTERS:
            continue
        if mapped in PUNCTUATION or "\u4e00" <= mapped <= "\u9fa5":
            out.append(mapped)
        else:
            dropped.append(char)
    warn_dropped(dropped, "Chinese")
    # A run of punctuation is one pause: keep its first mark (the v2 rule).
    return re.sub(r"([!?…,.\-])[!?…,.\-]+", r"\1", "".join(out))


def normalize_zh(text: str) -> str:
    """Chinese text -> CJK characters plus v2 punctuation only (the ``norm_text`` the G2P and BERT both see)."""
    text = _to_half_width(text)
    for circled, reading in CIRCLED_NUMBERS.items():
        text = text.replace(circled, reading)
    text = _replace_dates(text)
    text = _replace_times(text)
    text = _replace_phone_numbers(text)
    text = _replace_measures(text)
    text = _replace_arithmetic(text)
    text = _replace_numbers(text)
    return _map_punctuation_and_filter(text)
