r"""Export the trained Diehl & Cook / thesis network to NIR, and run NIR graphs in JAX.

`NIR <https://neuroir.org>`_ (the Neuromorphic Intermediate Representation,
``pip install nir``) describes a spiking network as a graph of continuous-time
primitives. This module writes the **frozen inference graph** of a
:class:`~snnjax_plugins.network.NetworkState` as a :class:`nir.NIRGraph`
(:func:`export_nir`), reads graphs of LIF / CubaLIF / IF neurons with Linear /
Affine / Scale / Delay connections into a small pure-JAX simulator
(:func:`import_nir`, :func:`run_nir`), and says which of our networks cannot be
expressed (:func:`check_exportable`).

The exported graph
------------------

::

    input (784) ─► s1: Linear(Wᵀ) ─► exc: CubaLIF ─► output (n_exc)
    exc ─► [s2_delay: Delay] ─► s2: Linear(w_ei·I) ─► inh: CubaLIF
    inh ─► [s3_delay_k: Delay] ─► s3 (or s3_k): Linear(all-but-self) ─► exc

Units: times in **seconds** (NIR's convention), voltages in mV, weights in our
conductance units (multiples of the leak conductance). ``s1.weight`` is the
trained ``W`` transposed (``[n_exc, 784]``), exactly — or, when the
configuration normalises the columns before every image (``norm_target``), the
normalised ``W`` the network actually uses at test time.

What is approximated (NIR 1.0 has no conductance-based neuron)
--------------------------------------------------------------

Our neurons are conductance-based, ``τ_m dv/dt = (v_rest − v) + ge·(E_exc − v)
+ gi·(E_inh − v)``. Each population becomes a NIR ``CubaLIF``
(``τ_syn dI/dt = −I + w_in·S``, ``τ_mem dv/dt = (v_leak − v) + R·I``) with:

1. **Conductance → current.** The driving force ``E − v`` is frozen at a
   reference voltage ``v_ref`` (default: halfway between ``v_rest`` and the
   threshold, per population): ``R = E_exc − v_ref``, and the synaptic state
   ``I`` is the excitatory conductance itself (``w_in = τ_syn``, so one input
   spike through weight ``w`` raises ``I`` by ``w``, as it raises ``ge``). The
   shunting effect of the conductances on the membrane time constant is lost.
2. **One synaptic time constant per neuron.** ``CubaLIF`` has a single
   ``τ_syn`` (= our ``τ_ge``). Inhibition (``τ_gi``) onto the excitatory neurons
   is mapped to a current through the same synapse, sign and driving force
   ``(E_inh − v_ref)/(E_exc − v_ref)`` folded into the S3 weights, scaled by
   ``τ_gi/τ_ge`` so that the total charge of one inhibitory spike is kept; its
   time course is ``τ_ge`` instead of ``τ_gi``.
3. **No refractory period.** NIR neurons have none; ours (5 ms / 2 ms) are dropped.
4. **Frozen thresholds.** NIR thresholds are constants. ``threshold_form``:
   ``none`` → ``v_th``; ``vt-copy`` (thesis) → ``v_th`` (the thesis' test phase
   fixes the threshold at ``v_th``: −52 mV); ``vt`` → the state's ``vt`` at
   export, frozen (its adaptation is not expressed); ``theta`` (Diehl & Cook) →
   ``v_th + θ`` per neuron, θ frozen (as in D&C's test phase).
5. **Initial state and integration.** NIR fixes neither; :func:`run_nir` starts
   at ``v = v_leak``, ``I = 0`` (ours: ``v_init``) and uses forward Euler.

Every neuron node's ``metadata`` repeats these facts and keeps our original
parameters (``snnjax_*`` keys), so a reader can tell exactly what the numbers mean.

Delays and plasticity
---------------------

NIR 1.0.x **has** a ``Delay`` node (``y(t) = x(t − τ)``, one τ per element of
the signal). S2's delays are one per synapse of a one-to-one pathway, so they
become one ``Delay`` node in front of S2, exactly. S3's delays are one per
synapse of an all-to-all pathway; they are exported exactly as one branch
``Delay(k·dt) → Linear`` per distinct delay ``k`` (at most
``s3_delay_max_ms/dt + 1`` branches). Many NIR back ends do not implement
``Delay``: ``delays="drop"`` exports without them (the spike timing then
differs from the trained network — recorded in the graph metadata), and
``delays="refuse"`` raises if the network has any.

Plasticity is not part of NIR: the export is always the frozen inference graph;
asking for ``learn=True`` raises. The convolutional networks
(:mod:`snnjax_plugins.conv`) cannot be expressed (k-winners-take-all, pointwise
inhibition, max pooling, an argmax decision) and are refused by name.

The simulator's conventions
---------------------------

:func:`run_nir` integrates with forward Euler at step ``dt`` (seconds), one
``lax.scan`` over time. A spike is a Dirac delta of unit area: over one step,
every node input is the integral ``q`` of its signal (``spikes + dt·bias`` for an
``Affine`` bias). Each step (the schedule of Brian 2 and of our network):

A. every neuron integrates from its state, compares with its threshold, emits
   spikes and resets (``v := v_reset``);
B. the spikes of A (and the input raster of the step) flow through the stateless
   nodes (Linear, Affine, Scale, Delay, in topological order) and are added to
   the neurons' states: ``v += R·q/τ`` (LIF), ``v += R·q`` (IF),
   ``I += w_in·q/τ_syn`` (CubaLIF).

So an input reaches a neuron's spikes one step later at the earliest, and
recurrent edges (I→E) need no special case: a cycle through a neuron is a
one-step loop; a cycle of stateless nodes only is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from snnjax.errors import ConfigError, InputError

__all__ = [
    "NIRNetwork",
    "check_exportable",
    "export_nir",
    "import_nir",
    "load_run",
    "run_nir",
    "simulate_nir",
    "write_nir",
]

_MS = 1e-3  # ms → s
DELAY_CHOICES = ("nir", "drop", "refuse")

#: Network kinds and whether NIR can express them (``None``) or why not.
_NOT_EXPRESSIBLE = {
    "k-wta": "k-winners-take-all lateral inhibition (a global sort over maps and positions) has no NIR primitive",
    "kwta": "k-winners-take-all lateral inhibition (a global sort over maps and positions) has no NIR primitive",
    "pointwise-inhibition": "pointwise (earliest-spike-per-position) inhibition has no NIR primitive",
    "max-pool": "max pooling of spike waves has no NIR primitive (NIR 1.0 has only SumPool2d / AvgPool2d)",
    "maxpool": "max pooling of spike waves has no NIR primitive (NIR 1.0 has only SumPool2d / AvgPool2d)",
    "decision-winner": "the R-STDP decision layer's argmax winner has no NIR primitive",
    "dog-latency": "the DoG filter + intensity-to-latency front end is an encoder, not a NIR network",
    "plasticity": "plasticity (STDP, All-LTD, R-STDP, …) is not part of NIR: only frozen inference graphs are exported",
}
_EXPRESSIBLE = ("diehl-cook", "thesis", "network", "lif", "cuba-lif", "linear", "affine", "delay")


def _nir():
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("NIR export needs the 'nir' package: pip install 'snnjax[nir]' (or pip install nir)") from exc
    return nir


# ----------------------------------------------------------------------------------------------
# what can be exported
# ----------------------------------------------------------------------------------------------


def check_exportable(kind: Any) -> None:
    """Raise :class:`~snnjax.errors.ConfigError` naming the part NIR cannot express; return if it can.

    ``kind`` is a name (``"thesis"``, ``"diehl-cook"`` are exportable; ``"k-wta"``,
    ``"max-pool"``, ``"pointwise-inhibition"``, ``"plasticity"``, … are not) or a
    convolutional network object (:class:`snnjax_plugins.conv.networks.NetworkSpec`
    or :class:`~snnjax_plugins.conv.networks.ConvLayerSpec`), which is refused
    with every part that has no NIR counterpart.
    """
    if isinstance(kind, str):
        key = kind.strip().lower().replace("_", "-")
        if key in _NOT_EXPRESSIBLE:
            raise ConfigError(f"cannot export to NIR: {_NOT_EXPRESSIBLE[key]}")
        if key in _EXPRESSIBLE:
            return
        raise ConfigError(f"unknown network kind {kind!r} for NIR export; exportable: the Diehl & Cook / thesis network "
                          f"('thesis', 'diehl-cook'); not exportable: {', '.join(sorted(_NOT_EXPRESSIBLE))}")
    parts = _conv_parts(kind)
    if parts is not None:
        raise ConfigError("cannot export this convolutional network to NIR: " + "; ".join(parts)
                          + ". Only the Diehl & Cook / thesis network (NetworkConfig + NetworkState) is exportable.")
    raise ConfigError(f"cannot export an object of type {type(kind).__name__} to NIR; give a NetworkState and its "
                      f"NetworkConfig (the Diehl & Cook / thesis network)")


def _conv_parts(obj: Any) -> list[str] | None:
    """The non-expressible parts of a conv network / layer spec, or ``None`` if ``obj`` is not one."""
    from .conv import networks as conv_networks

    if isinstance(obj, conv_networks.ConvLayerSpec):
        layers, decision, name = (obj,), None, "layer"
    elif isinstance(obj, conv_networks.NetworkSpec):
        layers, decision, name = obj.layers, obj.decision, obj.name
    else:
        return None
    parts = [f"{name}: the DoG + intensity-to-latency front end (an encoder, no NIR primitive)"] \
        if isinstance(obj, conv_networks.NetworkSpec) else []
    for i, layer in enumerate(layers, 1):
        parts.append(f"layer {i}: k-winners-take-all lateral inhibition (k={layer.k}, radius={layer.radius})")
        parts.append(f"layer {i}: pointwise inhibition of the output maps")
        if layer.pool is not None:
            parts.append(f"layer {i}: max pooling {layer.pool[0]}×{layer.pool[0]} (NIR has only sum/avg pooling)")
    if decision is not None:
        parts.append("decision layer: the argmax winner of R-STDP")
    parts.append("plasticity (STDP / R-STDP) in any layer")
    return parts


# ----------------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------------


def _threshold(model, pop_state, which: str) -> tuple[np.ndarray, str]:
    n = np.asarray(pop_state.v).shape[-1]
    base = np.full((n,), model.v_th_mv, np.float64)
    form = model.threshold_form
    if form == "none":
        return base, "fixed v_th"
    if form == "vt-copy":
        return base, "vt-copy: fixed at v_th, the thesis' test-phase threshold (v2 := v_th)"
    if form == "vt":
        return np.asarray(pop_state.vt, np.float64).reshape(n), "vt: the adaptive threshold frozen at its value at export"
    return base + np.asarray(pop_state.theta, np.float64).reshape(n), "theta: v_th + θ, θ frozen at its value at export"


def _cuba_node(nir, model, pop_state, v_ref_mv, which: str, extra_notes: str = ""):
    thr, thr_note = _threshold(model, pop_state, which)
    n = thr.shape[0]
    v_ref = float(v_ref_mv) if v_ref_mv is not None else 0.5 * (model.v_rest_mv + model.v_th_mv)
    r = model.e_exc_mv - v_ref
    if not r > 0:
        raise ConfigError(f"{which}: the reference voltage v_ref={v_ref} mV must lie below E_exc={model.e_exc_mv} mV")
    ones = np.ones((n,), np.float64)
    tau_syn = model.tau_ge_ms * _MS
    meta = {
        "snnjax_model": "ConductanceLIF",
        "snnjax_population": which,
        "approximation": (
            "conductance-based LIF mapped to CubaLIF: driving force E-v frozen at v_ref (R = E_exc - v_ref, "
            "I = excitatory conductance, w_in = tau_syn so a spike through weight w raises I by w); shunting lost; "
            f"refractory period ({model.refractory_ms} ms) dropped; threshold {thr_note}" + extra_notes
        ),
        "units": "time s, voltage mV, weights and I in leak-conductance units",
        "spike_convention": "Dirac delta of unit area",
        "snnjax_v_ref_mv": v_ref,
        "snnjax_e_exc_mv": float(model.e_exc_mv),
        "snnjax_e_inh_mv": float(model.e_inh_mv),
        "snnjax_tau_ge_ms": float(model.tau_ge_ms),
        "snnjax_tau_gi_ms": float(model.tau_gi_ms),
        "snnjax_refractory_ms": float(model.refractory_ms),
        "snnjax_threshold_form": model.threshold_form,
        "snnjax_v_init_mv": float(model.v_init_mv),
        "snnjax_method": model.method,
    }
    node = nir.CubaLIF(
        tau_syn=tau_syn * ones,
        tau_mem=model.tau_m_ms * _MS * ones,
        r=r * ones,
        v_leak=model.v_rest_mv * ones,
        v_threshold=thr,
        v_reset=model.v_reset_mv * ones,
        w_in=tau_syn * ones,
        metadata=meta,
    )
    return node, v_ref


def export_nir(state, cfg, *, seed_index: int = 0, delays: str = "nir", allow_drop_delays: bool = False,
               learn: bool = False, v_ref_exc_mv: float | None = None, v_ref_inh_mv: float | None = None):
    """The frozen inference graph of the Diehl & Cook / thesis network as a :class:`nir.NIRGraph`.

    Args:
        state: a :class:`~snnjax_plugins.network.NetworkState`, one seed or stacked over seeds
            (``w`` of shape ``[n_seeds, n_input, n_exc]``: ``seed_index`` picks one).
        cfg: its :class:`~snnjax_plugins.network.NetworkConfig` (any other object is refused by
            :func:`check_exportable`, naming what NIR cannot express).
        delays: ``"nir"`` (default: S2/S3 delays as NIR ``Delay`` nodes, exactly), ``"drop"``
            (no delays; recorded in the metadata) or ``"refuse"`` (raise if there are delays).
        allow_drop_delays: shorthand for ``delays="drop"``.
        learn: must be ``False``: NIR has no plasticity; the frozen graph is exported.
        v_ref_exc_mv, v_ref_inh_mv: the reference voltages of the conductance → current
            mapping (default: halfway between ``v_rest`` and ``v_th``).

    See the module docstring for exactly what is approximated.
    """
    from .network import NetworkConfig

    if learn:
        raise ConfigError("NIR describes frozen networks: plasticity (the learning rule) cannot be exported. Export "
                          "the trained inference graph with learn=False.")
    if not isinstance(cfg, NetworkConfig):
        check_exportable(cfg)
    if allow_drop_delays:
        delays = "drop"
    if delays not in DELAY_CHOICES:
        raise ConfigError(f"delays must be one of {', '.join(DELAY_CHOICES)}, got {delays!r}")
    nir = _nir()
    st = _select_seed(state, cfg, seed_index)
    n_in, n = cfg.n_input, cfg.n_exc
    w = np.asarray(st.w, np.float64)
    if cfg.norm_target is not None:
        w = w * cfg.norm_target / w.sum(axis=0, keepdims=True)
    d2 = np.asarray(st.d2, np.int64).reshape(n)
    d3 = np.asarray(st.d3, np.int64)
    d3 = np.where(np.eye(n, dtype=bool), -1, 0) if d3.size == 0 else d3.reshape(n, n)  # [0, 0]: no S3 delays
    off = ~np.eye(n, dtype=bool)
    has_delays = bool(d2.max(initial=0) > 0 or d3[off].max(initial=0) > 0)
    if has_delays and delays == "refuse":
        raise ConfigError(f"this network has synaptic delays (S2 up to {cfg.s2_delay_max_ms} ms, S3 up to "
                          f"{cfg.s3_delay_max_ms} ms); export them as NIR Delay nodes (delays='nir'), or drop them "
                          f"(delays='drop' / allow_drop_delays=True / --drop-delays), which changes the spike timing")
    use_delays = has_delays and delays == "nir"

    exc, v_ref_e = _cuba_node(nir, cfg.exc, st.exc, v_ref_exc_mv, "excitatory",
                              "; inhibition (tau_gi) enters through the same synapse (tau_ge), charge kept: "
                              "S3 weights scaled by (E_inh - v_ref)/(E_exc - v_ref) * tau_gi/tau_ge")
    inh, _ = _cuba_node(nir, cfg.inh, st.inh, v_ref_inh_mv, "inhibitory")
    e = cfg.exc
    w_ie_eff = cfg.w_ie * (e.e_inh_mv - v_ref_e) / (e.e_exc_mv - v_ref_e) * (e.tau_gi_ms / e.tau_ge_ms)
    nodes: dict[str, Any] = {
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "s1": nir.Linear(weight=w.T.copy(), metadata={
            "snnjax_pathway": "S1 input -> excitatory (trained weights, transposed: [n_exc, n_input])",
            "snnjax_normalised": cfg.norm_target is not None}),
        "exc": exc,
        "s2": nir.Linear(weight=cfg.w_ei * np.eye(n), metadata={"snnjax_pathway": "S2 excitatory j -> inhibitory j",
                                                                "snnjax_w_ei": float(cfg.w_ei)}),
        "inh": inh,
        "output": nir.Output(output_type={"output": np.array([n])}),
    }
    edges = [("input", "s1"), ("s1", "exc"), ("s2", "inh"), ("exc", "output")]
    if use_delays and d2.max() > 0:
        nodes["s2_delay"] = nir.Delay(delay=d2 * cfg.dt_ms * _MS)
        edges += [("exc", "s2_delay"), ("s2_delay", "s2")]
    else:
        edges.append(("exc", "s2"))
    s3_meta = {"snnjax_pathway": "S3 inhibitory i -> excitatory j != i", "snnjax_w_ie": float(cfg.w_ie),
               "approximation": "inhibitory conductance mapped to a current through the excitatory synapse: "
                                "w = w_ie * (E_inh - v_ref)/(E_exc - v_ref) * tau_gi/tau_ge"}
    if use_delays and d3[off].max() > 0:
        for k in sorted(set(d3[off].tolist())):
            mask = off & (d3 == k)  # [inh i, exc j]
            lin = f"s3_{k}"
            nodes[lin] = nir.Linear(weight=(w_ie_eff * mask.T).astype(np.float64),
                                    metadata={**s3_meta, "snnjax_delay_steps": int(k)})
            if k > 0:
                nodes[f"s3_delay_{k}"] = nir.Delay(delay=np.full((n,), k * cfg.dt_ms * _MS))
                edges += [("inh", f"s3_delay_{k}"), (f"s3_delay_{k}", lin)]
            else:
                edges.append(("inh", lin))
            edges.append((lin, "exc"))
    else:
        nodes["s3"] = nir.Linear(weight=w_ie_eff * off.T.astype(np.float64), metadata=s3_meta)
        edges += [("inh", "s3"), ("s3", "exc")]
    meta = {
        "snnjax_network": "Diehl & Cook / thesis network, frozen inference graph (no plasticity)",
        "snnjax_dt_s": cfg.dt_ms * _MS,
        "snnjax_t_present_s": cfg.t_present_ms * _MS,
        "snnjax_t_rest_s": cfg.t_rest_ms * _MS,
        "snnjax_seed_index": int(seed_index),
        "snnjax_delays": ("exported as NIR Delay nodes" if use_delays else
                          "dropped (the trained network has delays; spike timing differs)" if has_delays else "none"),
        "units": "time s, voltage mV",
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def _select_seed(state, cfg, seed_index: int):
    w = np.asarray(state.w)
    if w.ndim == 2:
        if seed_index not in (0, -1):
            raise ConfigError(f"seed_index={seed_index} but the state holds a single seed")
        return state
    if w.ndim != 3 or w.shape[1:] != (cfg.n_input, cfg.n_exc):
        raise InputError(f"state.w must be [n_input, n_exc] or [n_seeds, n_input, n_exc] = [*, {cfg.n_input}, "
                         f"{cfg.n_exc}], got {w.shape}")
    if not -w.shape[0] <= seed_index < w.shape[0]:
        raise ConfigError(f"seed_index={seed_index} but the state holds {w.shape[0]} seed(s)")
    return jax.tree_util.tree_map(lambda x: x[seed_index], state)


def write_nir(graph, path) -> None:
    """Write ``graph`` to ``path`` (HDF5, with ``nir.write``)."""
    _nir().write(path, graph)


# ----------------------------------------------------------------------------------------------
# a run directory → (state, cfg)
# ----------------------------------------------------------------------------------------------


def load_run(run_dir, seed_index: int = 0):
    """``(state, cfg)`` of seed ``seed_index`` of a finished run of ``supervised-stdp`` or ``diehl-cook``.

    Reads ``config.json`` and ``weights.npz`` (``W`` ``[n_seeds, 784, n_exc]``; an optional
    ``theta`` ``[n_seeds, n_exc]`` for the θ threshold). The delays, which the run does
    not store, are redrawn exactly as the run drew them (same seed keys, same
    :func:`~snnjax_plugins.network.init_network`).
    """
    import json
    from pathlib import Path

    from snnjax.plasticity import identity
    from snnjax.seeds import seed_keys

    from . import network as net

    run_dir = Path(run_dir)
    cfg_path, w_path = run_dir / "config.json", run_dir / "weights.npz"
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise ConfigError(f"{run_dir}: no {p.name}; give the output directory of a finished supervised-stdp or "
                              f"diehl-cook run (it holds config.json and weights.npz)")
    try:
        saved = json.loads(cfg_path.read_text())
        name, config = saved["experiment"], saved["config"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{cfg_path} is not the config.json of a snnjax run ({exc})") from exc
    with np.load(w_path) as z:
        if "W" not in z:
            raise ConfigError(f"{w_path} has no array 'W'")
        w_all = np.asarray(z["W"])
        theta_all = np.asarray(z["theta"]) if "theta" in z else None
    if w_all.ndim == 2:
        w_all = w_all[None]
    n_seeds = w_all.shape[0]
    if not 0 <= seed_index < n_seeds:
        raise ConfigError(f"--seed {seed_index}: {run_dir} holds {n_seeds} seed(s) (0…{n_seeds - 1})")
    n_exc = w_all.shape[2]
    dt = float(config.get("dt_ms", 0.1))
    if name == "supervised-stdp":
        cfg = net.thesis_config(n_exc=n_exc, dt_ms=dt)
        form = "vt-copy" if config.get("adaptive_threshold", True) else "none"
        cfg = dataclasses.replace(cfg, exc=dataclasses.replace(cfg.exc, threshold_form=form))
    elif name == "diehl-cook":
        if theta_all is None:
            raise ConfigError(f"{run_dir} is a diehl-cook run, whose threshold is v_th + θ per neuron, but its "
                              f"weights.npz stores no 'theta': the exported thresholds would be wrong")
        cfg = net.dc15_config(n_exc=n_exc, dt_ms=dt)
    else:
        raise ConfigError(f"{run_dir} is a run of {name!r}; NIR export knows the Diehl & Cook / thesis network "
                          f"(runs of supervised-stdp, diehl-cook)")
    key = seed_keys(int(config.get("seed", 0)), n_seeds, int(saved.get("first_seed", 0)))[seed_index]
    init_key = jax.random.split(key, 2)[0]
    st = net.init_network(init_key, cfg, identity())
    st = st._replace(w=jnp.asarray(w_all[seed_index], st.w.dtype))
    if theta_all is not None:
        st = st._replace(exc=st.exc._replace(theta=jnp.asarray(theta_all[seed_index], st.w.dtype)))
    return st, cfg


# ----------------------------------------------------------------------------------------------
# import and simulation
# ----------------------------------------------------------------------------------------------

_NEURONS = ("LIF", "CubaLIF", "IF")
_STATELESS = ("Linear", "Affine", "Scale", "Delay")


@dataclasses.dataclass(frozen=True)
class NIRNetwork:
    """Static structure of an imported NIR graph (hashable: a static argument of ``jax.jit``).

    Attributes:
        dt: the Euler time step, seconds.
        kinds: ``(name, NIR type)`` of every node.
        sizes: ``(name, n)``: the (flat) output size of every node.
        edges: ``(source, target)`` pairs.
        inputs, outputs, neurons: node names of each role.
        stateless: the Linear / Affine / Scale / Delay nodes in evaluation (topological) order.
        delay_slots: ``(name, ring length)`` of every Delay node (max delay in steps + 1).
    """

    dt: float
    kinds: tuple[tuple[str, str], ...]
    sizes: tuple[tuple[str, int], ...]
    edges: tuple[tuple[str, str], ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    neurons: tuple[str, ...]
    stateless: tuple[str, ...]
    delay_slots: tuple[tuple[str, int], ...]

    def kind(self, name: str) -> str:
        return dict(self.kinds)[name]

    def size(self, name: str) -> int:
        return dict(self.sizes)[name]

    def sources(self, name: str) -> tuple[str, ...]:
        return tuple(a for a, b in self.edges if b == name)


def _flat_size(shape) -> int:
    shape = np.atleast_1d(np.asarray(shape)).astype(int)
    if shape.size != 1:
        raise ConfigError(f"the NIR simulator handles 1-D signals only, got shape {tuple(shape)}")
    return int(shape[0])


def _arr(x, n=None):
    a = np.asarray(x, np.float64)
    if n is not None:
        a = np.broadcast_to(a, (n,)).copy() if a.ndim == 0 else a.reshape(-1)
    return a


def import_nir(graph, *, dt: float = 1e-4):
    """Read a NIR graph of LIF / CubaLIF / IF neurons and Linear / Affine / Scale / Delay nodes.

    Args:
        graph: a :class:`nir.NIRGraph` (e.g. from :func:`export_nir` or ``nir.read``).
        dt: the simulation time step in seconds (NIR's time unit).

    Returns:
        ``(net, params)``: the static :class:`NIRNetwork` and a pytree of the nodes' parameters
        (``jnp`` arrays), to give to :func:`run_nir`. Any other node type (conv, pooling,
        nested graphs, …) is refused with its name.
    """
    if not dt > 0:
        raise ConfigError(f"dt must be a positive number of seconds, got {dt!r}")
    kinds, sizes, params, slots = [], [], {}, []
    inputs, outputs, neurons, stateless = [], [], [], []
    for name in sorted(graph.nodes):  # sorted: a graph and its read-back copy share one compiled program
        node = graph.nodes[name]
        t = type(node).__name__
        kinds.append((name, t))
        if t == "Input":
            n = _flat_size(node.input_type["input"])
            inputs.append(name)
        elif t == "Output":
            n = _flat_size(node.output_type["output"])
            outputs.append(name)
        elif t in ("Linear", "Affine"):
            wt = np.asarray(node.weight, np.float64)
            if wt.ndim != 2:
                raise ConfigError(f"node {name!r}: only 2-D {t} weights are supported, got shape {wt.shape}")
            n = wt.shape[0]
            p = {"weight": jnp.asarray(wt)}
            if t == "Affine":
                p["bias"] = jnp.asarray(_arr(node.bias, n))
            params[name] = p
            stateless.append(name)
        elif t == "Scale":
            s = _arr(node.scale).reshape(-1)
            n = s.shape[0]
            params[name] = {"scale": jnp.asarray(s)}
            stateless.append(name)
        elif t == "Delay":
            d = _arr(node.delay).reshape(-1)
            n = d.shape[0]
            if np.any(d < 0):
                raise ConfigError(f"node {name!r}: negative delays")
            steps = np.floor(d / dt + 0.5).astype(np.int32)
            params[name] = {"steps": jnp.asarray(steps)}
            slots.append((name, int(steps.max(initial=0)) + 1))
            stateless.append(name)
        elif t in _NEURONS:
            n = _flat_size(node.output_type["output"])
            p = {"v_threshold": _arr(node.v_threshold, n), "v_reset": _arr(node.v_reset, n), "r": _arr(node.r, n)}
            if t == "LIF":
                p.update(tau=_arr(node.tau, n), v_leak=_arr(node.v_leak, n))
            elif t == "CubaLIF":
                p.update(tau_mem=_arr(node.tau_mem, n), tau_syn=_arr(node.tau_syn, n), v_leak=_arr(node.v_leak, n),
                         w_in=_arr(node.w_in, n))
            for key in ("tau", "tau_mem", "tau_syn"):
                if key in p and not np.all(p[key] > 0):
                    raise ConfigError(f"node {name!r}: {key} must be > 0")
            params[name] = {k: jnp.asarray(v) for k, v in p.items()}
            neurons.append(name)
        else:
            raise ConfigError(f"node {name!r} is a NIR {t}, which this simulator does not run (supported: Input, "
                              f"Output, {', '.join(_STATELESS)}, {', '.join(_NEURONS)})")
        sizes.append((name, int(n)))
    names = set(graph.nodes)
    edges = tuple(sorted((str(a), str(b)) for a, b in graph.edges))
    for a, b in edges:
        if a not in names or b not in names:
            raise ConfigError(f"edge ({a!r}, {b!r}) names a node that is not in the graph")
    order = _topological(stateless, edges)
    net = NIRNetwork(dt=float(dt), kinds=tuple(kinds), sizes=tuple(sizes), edges=edges, inputs=tuple(inputs),
                     outputs=tuple(outputs), neurons=tuple(neurons), stateless=tuple(order), delay_slots=tuple(slots))
    for name in (*net.stateless, *net.neurons, *net.outputs):
        for src in net.sources(name):
            if net.size(src) != _in_size(net, params, name):
                raise ConfigError(f"edge ({src!r}, {name!r}): {src!r} gives {net.size(src)} values, {name!r} takes "
                                  f"{_in_size(net, params, name)}")
    return net, params


def _in_size(net, params, name):
    t = net.kind(name)
    if t in ("Linear", "Affine"):
        return int(params[name]["weight"].shape[1])
    return net.size(name)


def _topological(stateless, edges):
    pending = list(stateless)
    deps = {n: {a for a, b in edges if b == n and a in pending} for n in pending}
    order = []
    while pending:
        ready = [n for n in pending if not (deps[n] - set(order))]
        if not ready:
            raise ConfigError(f"the stateless nodes {sorted(pending)} form a cycle with no neuron in it; a NIR "
                              f"recurrence must pass through a neuron")
        order.extend(ready)
        pending = [n for n in pending if n not in ready]
    return order


def _init_state(net: NIRNetwork, params, dtype):
    neurons = {}
    for name in net.neurons:
        p = params[name]
        n = net.size(name)
        v0 = p["v_leak"] if "v_leak" in p else jnp.zeros((n,))
        s = {"v": jnp.asarray(v0, dtype)}
        if net.kind(name) == "CubaLIF":
            s["i"] = jnp.zeros((n,), dtype)
        neurons[name] = s
    bufs = {name: jnp.zeros((k, net.size(name)), dtype) for name, k in net.delay_slots}
    return neurons, bufs


def run_nir(net: NIRNetwork, params, inputs, *, dtype=jnp.float32):
    """Simulate an imported graph on given input spikes; returns ``{output name: spikes float[T, n]}``.

    ``inputs``: an array ``[T, n]`` (one Input node) or ``{input name: [T, n]}``: the spike
    count of each input per step (0/1 for a raster). Pure and jit-compatible
    (``jax.jit(run_nir, static_argnums=0)``); one ``lax.scan`` over the ``T`` steps.
    """
    if not isinstance(inputs, Mapping):
        if len(net.inputs) != 1:
            raise InputError(f"the graph has inputs {list(net.inputs)}: give a dict of rasters")
        inputs = {net.inputs[0]: inputs}
    missing = set(net.inputs) - set(inputs)
    if missing:
        raise InputError(f"no raster for input node(s) {sorted(missing)}")
    xs = {}
    for name in net.inputs:
        x = jnp.asarray(inputs[name], dtype)
        if x.ndim != 2 or x.shape[1] != net.size(name):
            raise InputError(f"input {name!r} must be [T, {net.size(name)}], got shape {x.shape}")
        xs[name] = x
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                                    params)
    dt = net.dt
    neurons0, bufs0 = _init_state(net, params, dtype)

    def step(carry, x_t):
        neurons, bufs, n = carry
        imp, cont = {}, {}
        # A: neurons integrate from their state, fire, reset
        new_neurons = {}
        for name in net.neurons:
            p, s = params[name], neurons[name]
            kind = net.kind(name)
            v = s["v"]
            if kind == "LIF":
                v = v + dt / p["tau"] * (p["v_leak"] - v)
            elif kind == "CubaLIF":
                i = s["i"]
                v = v + dt / p["tau_mem"] * (p["v_leak"] - v + p["r"] * i)
                s = {**s, "i": i - dt / p["tau_syn"] * i}
            z = v > p["v_threshold"]
            v = jnp.where(z, p["v_reset"], v)
            new_neurons[name] = {**s, "v": v}
            imp[name] = z.astype(dtype)
            cont[name] = jnp.zeros_like(v)
        for name in net.inputs:
            imp[name] = x_t[name]
            cont[name] = jnp.zeros_like(x_t[name])

        def gather(name):
            srcs = net.sources(name)
            a = sum((imp[s_] for s_ in srcs), jnp.zeros((_in_size(net, params, name),), dtype))
            b = sum((cont[s_] for s_ in srcs), jnp.zeros((_in_size(net, params, name),), dtype))
            return a, b

        # B: stateless nodes in topological order
        new_bufs = dict(bufs)
        for name in net.stateless:
            a, b = gather(name)
            kind, p = net.kind(name), params[name]
            if kind in ("Linear", "Affine"):
                a, b = p["weight"] @ a, p["weight"] @ b
                if kind == "Affine":
                    b = b + p["bias"]
            elif kind == "Scale":
                a, b = p["scale"] * a, p["scale"] * b
            else:  # Delay: a ring of per-step integrals q = a + dt·b
                buf = new_bufs[name]
                k = buf.shape[0]
                cols = jnp.arange(buf.shape[1])
                buf = buf.at[(n + p["steps"]) % k, cols].add(a + dt * b)
                a, b = buf[n % k], jnp.zeros_like(b)
                new_bufs[name] = buf.at[n % k].set(0)
            imp[name], cont[name] = a, b
        for name in net.neurons:
            a, b = gather(name)
            q = a + dt * b
            p, s = params[name], new_neurons[name]
            kind = net.kind(name)
            if kind == "LIF":
                s = {**s, "v": s["v"] + p["r"] * q / p["tau"]}
            elif kind == "IF":
                s = {**s, "v": s["v"] + p["r"] * q}
            else:
                s = {**s, "i": s["i"] + p["w_in"] * q / p["tau_syn"]}
            new_neurons[name] = s
        out = {name: gather(name)[0] for name in net.outputs}
        return (new_neurons, new_bufs, n + 1), out

    T = next(iter(xs.values())).shape[0]
    if any(x.shape[0] != T for x in xs.values()):
        raise InputError("all input rasters must have the same number of steps")
    _, outs = lax.scan(step, (neurons0, bufs0, jnp.zeros((), jnp.int32)), xs)
    return outs


def simulate_nir(graph, inputs, *, dt: float = 1e-4, dtype=jnp.float32):
    """:func:`import_nir` then :func:`run_nir` (jitted): ``{output name: spikes float[T, n]}``."""
    net, params = import_nir(graph, dt=dt)
    return _run_nir_jit(net, params, inputs, dtype=dtype)


_run_nir_jit = jax.jit(run_nir, static_argnums=(0,), static_argnames=("dtype",))
