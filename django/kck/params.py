"""Typed primer parameters.

A primer declares ``parameters`` as a list of Parameter objects or of dicts in
the original library's form::

    parameters = [{"name": "id", "from_str": int}]        # an int parameter
    parameters = [{"name": "query"}]                       # a str parameter
    parameters = [IntParameter("author_id"), DateParameter("day")]

A dict with ``from_str=int`` is an int parameter, ``from_str=bool`` a bool,
``from_str=datetime.date.fromisoformat`` a date; without from_str (or with
``str``) a str parameter.  Any other from_str makes a str parameter whose key
text is passed through from_str when decoded (and through to_str, when given,
when encoded).  A dict may also say ``"type": "int"|"str"|"bool"|"date"``.
"""

import datetime

from . import codec
from .exceptions import KeyParameterMismatch, PrimerDefinitionError


class Parameter:
    type = None

    def __init__(self, name, from_str=None, to_str=None):
        if not codec.is_valid_primer_name(name):
            raise PrimerDefinitionError(
                "parameter name %s must match [a-z_][a-z0-9_]*" % codec.quote_for_error(str(name)))
        self.name = name
        self.from_str = from_str
        self.to_str = to_str

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self.name)

    def spec(self):
        return {"name": self.name, "type": self.type}

    # value -> canonical text (checked by the codec afterwards)
    def to_text(self, value, primer):
        if self.to_str is not None:
            value = self.to_str(value)
        if isinstance(value, str):
            return value
        return self._to_text(value, primer)

    def _to_text(self, value, primer):
        raise self._type_error(value, primer)

    # canonical text -> Python value
    def from_text(self, text):
        if self.from_str is not None and self.from_str not in _BUILTIN_FROM_STR:
            return self.from_str(text)
        return self._from_text(text)

    def _from_text(self, text):
        return text

    def _type_error(self, value, primer):
        return KeyParameterMismatch("primer %s: parameter %s expects %s, got a value of type %s"
                                    % (codec.quote_for_error(primer), codec.quote_for_error(self.name),
                                       self.type, type(value).__name__))


class IntParameter(Parameter):
    type = "int"

    def _to_text(self, value, primer):
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._type_error(value, primer)
        return str(value)

    def _from_text(self, text):
        return int(text)


class StrParameter(Parameter):
    type = "str"


class BoolParameter(Parameter):
    type = "bool"

    def _to_text(self, value, primer):
        if not isinstance(value, bool):
            raise self._type_error(value, primer)
        return "true" if value else "false"

    def _from_text(self, text):
        return text == "true"


class DateParameter(Parameter):
    type = "date"

    def _to_text(self, value, primer):
        if isinstance(value, datetime.datetime) or not isinstance(value, datetime.date):
            raise self._type_error(value, primer)
        return value.isoformat()

    def _from_text(self, text):
        return datetime.date.fromisoformat(text)


_BY_TYPE = {"int": IntParameter, "str": StrParameter, "bool": BoolParameter, "date": DateParameter}
_BY_FROM_STR = {int: IntParameter, str: StrParameter, bool: BoolParameter,
                datetime.date.fromisoformat: DateParameter}
_BUILTIN_FROM_STR = set(_BY_FROM_STR)


def make_parameter(decl, primer_name="?"):
    """A Parameter from one entry of a primer's ``parameters`` list."""
    if isinstance(decl, Parameter):
        return decl
    if isinstance(decl, str):
        return StrParameter(decl)
    if not isinstance(decl, dict):
        raise PrimerDefinitionError("primer %r: a parameter is a dict or a Parameter, got %r"
                                    % (primer_name, decl))
    unknown = set(decl) - {"name", "from_str", "to_str", "type"}
    if unknown:
        raise PrimerDefinitionError("primer %r: parameter %r has unknown field(s) %s"
                                    % (primer_name, decl.get("name"), ", ".join(sorted(unknown))))
    if "name" not in decl:
        raise PrimerDefinitionError("primer %r: a parameter needs a name" % primer_name)
    from_str, to_str = decl.get("from_str"), decl.get("to_str")
    if "type" in decl:
        cls = _BY_TYPE.get(decl["type"])
        if cls is None:
            raise PrimerDefinitionError("primer %r: parameter %r: type %r is not int, str, bool or date"
                                        % (primer_name, decl["name"], decl["type"]))
    elif from_str is None:
        cls = StrParameter
    else:
        cls = _BY_FROM_STR.get(from_str, StrParameter)
    if from_str is not None and not callable(from_str):
        raise PrimerDefinitionError("primer %r: parameter %r: from_str must be callable"
                                    % (primer_name, decl["name"]))
    return cls(decl["name"], from_str=from_str, to_str=to_str)
