"""Built-in experiments (registered through the ``snnjax`` entry-point group)."""

from snnjax.hookspecs import hookimpl


@hookimpl
def snnjax_experiments():
    from .diehl_cook import diehl_cook
    from .supervised_stdp import supervised_stdp

    return {"supervised-stdp": supervised_stdp, "diehl-cook": diehl_cook}
