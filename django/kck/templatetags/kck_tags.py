"""{% load kck_tags %} {% product 'title_list' author.id as titles %}

The key is built from the primer's name and its parameters (positional in declared order,
or by name) with the key codec, then read with Cache.get (a miss is computed and stored).
Without ``as name`` the tag renders the product.
"""

from typing import Any

from django import template

from ..exceptions import KeyParameterMismatch
from ..primer import registry

register = template.Library()


def product_key(name: str, *args: Any, **kwargs: Any) -> str:
    """The canonical key of primer ``name`` for positional and named parameter values."""
    primer = registry().get(name)
    names = [p.name for p in primer._kck_params]
    if len(args) > len(names):
        raise KeyParameterMismatch("{%% product %r %%}: %d values given, primer %r has %d parameter(s)"
                                   % (name, len(args), name, len(names)))
    params = dict(zip(names, args))
    params.update(kwargs)
    return primer.param_dict_to_key(params)


@register.simple_tag
def product(name: str, *args: Any, **kwargs: Any) -> Any:
    from ..cache import Cache

    return Cache.get_instance().get(product_key(name, *args, **kwargs))
