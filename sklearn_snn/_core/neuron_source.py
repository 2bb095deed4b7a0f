"""The neuron update of one step, written once, as source lines for the compiled kernels.

Both compiled forward loops render their neuron update from :func:`neuron_update`: the time scan
of :mod:`~sklearn_snn._core.numba_backend` (its forward template, specialised by module constants
``CUBA``, ``ALIF``, ``SUBTRACT``) and the population kernel of
:mod:`~sklearn_snn._core.population_kernel` (a lean path with the flags resolved when the source is
generated, and a general one with per-layer run-time flags). The update is the one of
:func:`~sklearn_snn._core.neurons.neuron_step`, which
:func:`~sklearn_snn._core.scan_torch.reference_scan` steps through::

    x   = alpha * syn + x          (cuba; syn = x)
    u   = beta * v + x
    s   = u >= thr (+ adapt * a)   (alif: the adaptation before this step's update)
    v   = u - thr * s              (subtract reset)   or   u * (1 - s)   (zero reset)
    a   = rho * a + s              (alif)

Plain Python, no numba: this module only writes text.
"""

from __future__ import annotations

__all__ = ["neuron_update"]


def _indent(lines, pad):
    return [pad + line if line else line for line in lines]


def _branch(flag, then, other=()):
    """``then`` where ``flag`` holds, ``other`` elsewhere: resolved now for a bool, an ``if`` on the
    name for a string (a module constant the compiler folds, or a run-time variable)."""
    if flag is True:
        return list(then)
    if flag is False:
        return list(other)
    if not isinstance(flag, str):
        raise TypeError(f"A flag must be a bool or the name of a variable, got {flag!r}.")
    out = [f"if {flag}:"] + _indent(then, "    ")
    if other:
        out += ["else:"] + _indent(other, "    ")
    return out


def neuron_update(indent, *, cuba, alif, subtract, x, v, syn, a, beta, alpha, thr, adapt, rho,
                  one="one", zero="zero", on_membrane=(), on_adapt=(), on_spike=(), on_end=()):
    """Source lines of one neuron's update for one step, each prefixed with ``indent`` spaces.

    The lines read the input current ``x`` and update the state in place (``v``, and ``syn`` for
    ``cuba``, ``a`` for ``alif``): every name is an expression of the caller's loop (an element
    such as ``vb[h]`` or ``V[q, b]``, a scalar, a constant). They leave the step's membrane before
    the reset in the local ``u`` and its spike (``one`` or ``zero``) in ``s``; the current after
    the synapse is the local ``xt``.

    Parameters
    ----------
    indent : int
        Spaces before every line.
    cuba, alif, subtract : bool or str
        Synaptic current, adaptive threshold, subtractive (else zero) reset. A bool is resolved
        now (no branch in the source); a string is the name the generated ``if`` tests.
    x, v, syn, a, beta, alpha, thr, adapt, rho, one, zero : str
        Expressions of the input current, the state and the parameters.
    on_membrane, on_adapt, on_spike, on_end : sequence of str
        Lines the caller adds: after ``u`` is known, before an adaptive threshold is read (alif
        only), after ``s`` is known, and at the end.

    Returns
    -------
    str
        The lines, each ending with a newline.

    Examples
    --------
    >>> print(neuron_update(0, cuba=False, alif=False, subtract=True, x="i", v="v", syn="", a="",
    ...                     beta="b", alpha="", thr="th", adapt="", rho=""), end="")
    xt = i
    u = b * v + xt
    s = one if u >= th else zero
    v = u - th * s
    """
    lines = [f"xt = {x}"]
    lines += _branch(cuba, [f"xt = {alpha} * {syn} + xt", f"{syn} = xt"])
    lines += [f"u = {beta} * {v} + xt", *on_membrane]
    lines += _branch(alif, [*on_adapt, f"s = {one} if u >= {thr} + {adapt} * {a} else {zero}"],
                     [f"s = {one} if u >= {thr} else {zero}"])
    lines += list(on_spike)
    lines += _branch(subtract, [f"{v} = u - {thr} * s"], [f"{v} = u * ({one} - s)"])
    lines += _branch(alif, [f"{a} = {rho} * {a} + s"])
    lines += list(on_end)
    pad = " " * indent
    return "".join(pad + line + "\n" for line in lines)
