"""Built-in experiments (registered through the ``snnjax`` entry-point group)."""

from snnjax.hookspecs import hookimpl


@hookimpl
def snnjax_experiments():
    from .continual import continual
    from .conv_mnist import conv_mnist
    from .diehl_cook import diehl_cook
    from .supervised_stdp import supervised_stdp
    from .use_it_or_lose_it import use_it_or_lose_it

    return {"supervised-stdp": supervised_stdp, "diehl-cook": diehl_cook, "use-it-or-lose-it": use_it_or_lose_it,
            "conv-mnist": conv_mnist, "continual": continual}
