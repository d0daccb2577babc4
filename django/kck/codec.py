"""The key codec: the one text form of "primer name + parameter values".

A key is ``name/p1/p2...``: the primer's name, then its parameters in declared
order, each after a ``/``.  In a str value ``%`` is written ``%25`` and ``/``
is written ``%2F``; no other escape exists.  Every value has exactly one text
form, so a key that is not canonical is rejected, never repaired.

This is a line-by-line port of the C++ codec (primers/key_codec.cc); both must
agree on tests/key_vectors.json, error messages included.
"""

import re

from .exceptions import InvalidKey, KeyParameterMismatch

TYPES = ("int", "str", "bool", "date")

_MAX_QUOTED_BYTES = 80
_NAME_RE = re.compile(r"[a-z_][a-z0-9_]*")
_INT_RE = re.compile(r"-?[0-9]+")
_SIGNED_INT_RE = re.compile(r"[+-]?[0-9]+")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _utf8(text):
    """UTF-8 bytes of a str; lone surrogates become the (invalid) bytes they would be."""
    if isinstance(text, bytes):
        return text
    return text.encode("utf-8", "surrogatepass")


def _sequence_length(data, i):
    """Length of the well-formed UTF-8 sequence at data[i], or 0 (as in key_codec.cc)."""
    b0 = data[i]
    if b0 < 0x80:
        return 1
    lo, hi = 0x80, 0xBF
    if 0xC2 <= b0 <= 0xDF:
        length = 2
    elif 0xE0 <= b0 <= 0xEF:
        length = 3
        if b0 == 0xE0:
            lo = 0xA0
        if b0 == 0xED:
            hi = 0x9F
    elif 0xF0 <= b0 <= 0xF4:
        length = 4
        if b0 == 0xF0:
            lo = 0x90
        if b0 == 0xF4:
            hi = 0x8F
    else:
        return 0
    if i + length > len(data):
        return 0
    if not lo <= data[i + 1] <= hi:
        return 0
    for k in range(2, length):
        if not 0x80 <= data[i + k] <= 0xBF:
            return 0
    return length


def quote_for_error(text):
    """``text`` in double quotes for an error message, kept to one line of valid UTF-8."""
    data = _utf8(text)
    out = ['"']
    i = 0
    while i < len(data) and i < _MAX_QUOTED_BYTES:
        c = data[i]
        length = _sequence_length(data, i)
        if c in (0x22, 0x5C):
            out.append("\\" + chr(c))
        elif length == 0 or c < 0x20 or c == 0x7F:
            out.append("\\x%02x" % c)
            length = 1
        else:
            out.append(data[i:i + length].decode("utf-8"))
        i += length
    out.append('"')
    if i < len(data):
        out.append("...")
    return "".join(out)


def is_valid_primer_name(name):
    return (isinstance(name, str) and 0 < len(name.encode("utf-8", "surrogatepass")) <= 63
            and _NAME_RE.fullmatch(name) is not None)


def validate_primer_name(name):
    if not is_valid_primer_name(name):
        raise InvalidKey("primer name %s is not valid (expected [a-z_][a-z0-9_]*, at most 63 bytes)"
                         % quote_for_error(name if isinstance(name, str) else str(name)))


def key_primer_name(key):
    """The primer name of a key: the text before the first '/', or the whole key."""
    if not isinstance(key, str):
        raise InvalidKey("a key must be a str, got %s" % type(key).__name__)
    name = key.split("/", 1)[0]
    try:
        validate_primer_name(name)
    except InvalidKey as e:
        raise InvalidKey("key %s: %s" % (quote_for_error(key), e)) from None
    return name


def _is_canonical_int(text):
    if _INT_RE.fullmatch(text) is None:
        return False
    digits = text[1:] if text.startswith("-") else text
    # "0" is the only number that starts with '0', and it has no sign.
    if digits[0] == "0" and (len(digits) > 1 or len(digits) != len(text)):
        return False
    return True


def _canonical_int(text):
    """The canonical text of an int written with a sign or leading zeros ("05", "+5", "-0"), else None."""
    if _SIGNED_INT_RE.fullmatch(text) is None:
        return None
    value = int(text)
    return str(value) if _INT64_MIN <= value <= _INT64_MAX else None


def _canonical_ints_key(primer, params, parts):
    """``parts`` joined into a key after ``primer``, each int part canonical."""
    canonical = [(_canonical_int(part) or part) if ptype == "int" else part
                 for (_, ptype), part in zip(params, parts)]
    return "/".join([primer] + canonical)


def _is_leap(year):
    return (year % 4 == 0 and year % 100 != 0) or year % 400 == 0


def _is_canonical_date(text):
    if _DATE_RE.fullmatch(text) is None:
        return False
    year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
    if year < 1 or month < 1 or month > 12 or day < 1:
        return False
    days = _DAYS_IN_MONTH[month - 1] + (1 if month == 2 and _is_leap(year) else 0)
    return day <= days


def _value_error(primer, name, type_, got):
    return KeyParameterMismatch("primer %s: parameter %s expects %s, got %s"
                                % (quote_for_error(primer), quote_for_error(name), type_, got))


def check_canonical(primer, name, type_, text):
    """Raises KeyParameterMismatch unless ``text`` is the canonical text of a ``type_`` value."""
    if type_ == "int":
        if not _is_canonical_int(text):
            raise _value_error(primer, name, type_, quote_for_error(text))
        if not _INT64_MIN <= int(text) <= _INT64_MAX:
            raise _value_error(primer, name, type_, quote_for_error(text) + " (out of 64-bit range)")
    elif type_ == "bool":
        if text not in ("true", "false"):
            raise _value_error(primer, name, type_, quote_for_error(text))
    elif type_ == "date":
        if not _is_canonical_date(text):
            raise _value_error(primer, name, type_,
                               quote_for_error(text) + " (expected YYYY-MM-DD, a real date)")
    elif type_ == "str":
        data = _utf8(text)
        nul = data.find(b"\0")
        bad = None
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            bad = e.start
        if nul >= 0 and (bad is None or nul < bad):
            raise _value_error(primer, name, type_, "a NUL byte at offset %d" % nul)
        if bad is not None:
            raise _value_error(primer, name, type_, "invalid UTF-8 at offset %d" % bad)
    else:
        raise _value_error(primer, name, type_, quote_for_error(text))


def escape_part(value):
    """``value`` with '%' written "%25" and '/' written "%2F". Does not validate."""
    return value.replace("%", "%25").replace("/", "%2F")


def _unescape_str(primer, name, key, part):
    # Works on bytes, as key_codec.cc does, so error messages agree byte for byte.
    data = _utf8(part)
    out = bytearray()
    i = 0
    while i < len(data):
        c = data[i]
        if c != 0x25:  # '%'
            out.append(c)
            i += 1
            continue
        escape = data[i:i + 3]
        if escape == b"%25":
            out += b"%"
        elif escape == b"%2F":
            out += b"/"
        else:
            raise KeyParameterMismatch(
                "primer %s: parameter %s has invalid escape %s in key %s (only %%25 and %%2F are allowed)"
                % (quote_for_error(primer), quote_for_error(name), quote_for_error(escape),
                   quote_for_error(key)))
        i += 3
    return bytes(out).decode("utf-8", "surrogatepass")


def _names(params):
    if not params:
        return ""
    return " (" + ", ".join(name for name, _ in params) + ")"


def _count(n):
    return "%d %s" % (n, "parameter" if n == 1 else "parameters")


# The longest key in bytes (UTF-8) that any entry point accepts: keys are the
# primary key of kck.cache, whose btree rows hold at most ~2700 bytes.
MAX_KEY_BYTES = 2048


def _check_length(context, key):
    """``context`` is a function giving the error's prefix (built only on an error)."""
    if len(key) * 4 <= MAX_KEY_BYTES:  # cannot be too long: skip the encode
        return
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise InvalidKey("%s: key %s is %d bytes long; keys are at most %d bytes"
                         % (context(), quote_for_error(key), size, MAX_KEY_BYTES))


def decode_key(key, primer, params):
    """Splits ``key`` into the (unescaped, canonical) text values of ``params``.

    ``params`` is a sequence of (name, type) pairs in declared order.
    Raises InvalidKey / KeyParameterMismatch with the C++ codec's messages.
    """
    validate_primer_name(primer)

    def context():  # built only for an error: decode runs on every Cache.get
        return "primer " + quote_for_error(primer)

    _check_length(context, key)
    try:
        name = key_primer_name(key)
    except InvalidKey as e:
        raise InvalidKey("%s: %s" % (context(), e)) from None
    if name != primer:
        raise KeyParameterMismatch("%s: key %s belongs to primer %s"
                                   % (context(), quote_for_error(key), quote_for_error(name)))
    parts = key.split("/")[1:]
    if len(parts) != len(params):
        raise KeyParameterMismatch("%s: key %s has %s, expected %d%s"
                                   % (context(), quote_for_error(key), _count(len(parts)), len(params),
                                      _names(params)))
    return [_decode_part(key, primer, params, parts, i) for i in range(len(params))]


def _decode_part(key, primer, params, parts, i):
    """Part ``i`` of a key as a value; an int written otherwise is named with the canonical key."""
    pname, ptype = params[i]
    value = parts[i]
    if ptype == "str":
        value = _unescape_str(primer, pname, key, value)
    canonical = _canonical_int(value) if ptype == "int" and not _is_canonical_int(value) else None
    if canonical is not None:
        raise KeyParameterMismatch(
            "primer %s: parameter %s is written %s in its canonical form, not %s (key %s)"
            % (quote_for_error(primer), quote_for_error(pname), quote_for_error(canonical), quote_for_error(value),
               quote_for_error(_canonical_ints_key(primer, params, parts))))
    # Types other than str have no escapes: a '%' there fails check_canonical.
    check_canonical(primer, pname, ptype, value)
    return value


def encode_key(primer, params, values):
    """The canonical key of ``values`` (canonical text, unescaped, one per param)."""
    validate_primer_name(primer)
    if len(values) != len(params):
        raise KeyParameterMismatch("primer %s: got %d %s, expected %d%s"
                                   % (quote_for_error(primer), len(values),
                                      "value" if len(values) == 1 else "values", len(params),
                                      _names(params)))
    key = [primer]
    for (pname, ptype), value in zip(params, values):
        check_canonical(primer, pname, ptype, value)
        key.append(escape_part(value) if ptype == "str" else value)
    key = "/".join(key)
    _check_length(lambda: "primer " + quote_for_error(primer), key)
    return key
