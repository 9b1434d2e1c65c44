"""Experiments: one module per experiment, each following :mod:`.protocol`, and the
registry that lists them.

>>> from ntkequi import experiments
>>> experiments.get("demo").NAME
'demo'
>>> "toy_ensembles" in experiments.NAMES
True

:func:`run_experiment` is the one runner (``ntkequi run NAME`` and the scripts in
``experiments/`` call it): it switches float64 on from the config, runs or resumes the
experiment into its run directory and records the command that made it.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Union

from ..runs import check_saved_config, with_overrides, write_command

__all__ = ["NAMES", "get", "all_modules", "config_class", "default_out", "run_experiment", "fill_tiles", "tiled"]

#: every experiment, in the order the report and ``ntkequi list`` show them
NAMES = ("demo", "toy_ensembles", "ising", "fmnist_ntk", "ntk_convergence", "linearised_width", "gcnn_correspondence", "fmnist_ntk_scale", "gcnn_ntk_scale", "partial_augmentation",
         "fmnist_osp_table", "toy_heatmaps", "width_convergence", "kernel_symmetry", "force_fields", "molecules", "cross_product",
         "baseline_invariance")
#: modules of this package that are not experiments: what experiments share (the protocol and
#: its Figure/Table types; the ensemble-vs-NTK sweep of toy_ensembles, ising and fmnist_ntk)
HELPERS = ("protocol", "sweep")


def tiled() -> tuple:
    """The experiments whose runs share kernel tiles with workers (a module-level ``tiles``)."""
    return tuple(n for n in NAMES if hasattr(get(n), "tiles"))


def get(name: str) -> ModuleType:
    """The experiment module ``name``; ``KeyError`` naming the known ones otherwise."""
    if name not in NAMES:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")


def all_modules() -> list:
    """Every experiment module, in :data:`NAMES` order."""
    return [get(n) for n in NAMES]


def config_class(module: ModuleType) -> type:
    """The frozen config dataclass of an experiment (the type of its presets)."""
    return module.Config


def default_out(name: str, preset: str) -> Path:
    """``runs/<name>`` for the 'small' preset, ``runs/<name>-<preset>`` otherwise."""
    return Path(f"runs/{name}" + ("" if preset == "small" else f"-{preset}"))


def _prepare(module, name: str, preset: str, cfg, overrides, out, data_dir) -> tuple:
    """``(cfg, out, data_dir)`` of a run: the preset (or ``cfg``) with the overrides, float64 switched
    on if the config asks (before any data exist), the run directory and the data directory."""
    if cfg is None:
        if preset not in module.PRESETS:
            raise KeyError(f"experiment {name!r} has no preset {preset!r}; presets: {', '.join(module.PRESETS)}")
        cfg = module.PRESETS[preset]
    elif not isinstance(cfg, config_class(module)):
        raise TypeError(f"cfg must be a {name}.Config; got {type(cfg).__name__}")
    cfg = with_overrides(cfg, overrides)
    if getattr(cfg, "x64", False):
        import jax
        jax.config.update("jax_enable_x64", True)
    if data_dir is None:
        data_dir = os.environ.get("NTKEQUI_DATA_DIR") or None
    return cfg, (Path(out) if out is not None else default_out(name, preset)), data_dir


def run_experiment(name: str, preset: str = "small", out: Union[str, Path, None] = None, *,
                   cfg=None, data_dir=None, progress: bool = True, overwrite: bool = False, argv=None,
                   overrides=()):
    """Run (or resume) experiment ``name`` and record its command.

    Args:
        name: a name in :data:`NAMES`.
        preset: a key of the module's ``PRESETS`` (ignored when ``cfg`` is given).
        out: the run directory (default :func:`default_out`).
        cfg: a config of the experiment's ``Config`` type instead of a preset.
        data_dir: folder with the FashionMNIST/MNIST IDX files; default ``$NTKEQUI_DATA_DIR``.
        progress: progress bars.
        overwrite: discard results in ``out`` made with another config (else that is an error).
        argv: the command line recorded in ``command.json`` (default ``sys.argv``).
        overrides: ``"path=value"`` strings applied to the preset (or ``cfg``) by
            :func:`ntkequi.runs.with_overrides`, recorded in ``command.json``.

    Returns:
        ``(cfg, out, done)``: the config, the run directory and the records ``{key: record}``.

    Raises:
        KeyError: unknown experiment or preset (the message names the known ones).
        ValueError: a bad override (the message names it).
    """
    module = get(name)
    cfg, out, data_dir = _prepare(module, name, preset, cfg, overrides, out, data_dir)
    done = module.run(cfg, out, data_dir=data_dir, progress=progress, overwrite=overwrite)
    write_command(out, preset if cfg == module.PRESETS.get(preset) else "custom", argv, overrides)
    return cfg, out, done


def fill_tiles(name: str, preset: str = "small", out: Union[str, Path, None] = None, *, worker: tuple = (1, 1),
               data_dir=None, progress: bool = True, overrides=()) -> int:
    """Run one worker of experiment ``name``'s run ``out``: fill the run's kernel tiles beside
    other workers (on this machine or other nodes sharing the file system) and the run itself,
    until every tile is on disk (the experiment's ``tiles``). Takes no run-directory lock.

    Args:
        name: an experiment whose module has ``tiles`` (:func:`tiled`).
        preset, out, data_dir, progress, overrides: as for :func:`run_experiment` (the run's own).
        worker: ``(k, K)``, this worker's number and the number of workers (``1 <= k <= K``):
            worker ``k`` starts at the fraction ``(k - 1) / K`` of the tile list.

    Returns:
        The number of tiles this worker computed.

    Raises:
        ValueError: an experiment without tiles, or a bad ``worker``.
        ConfigMismatchError: ``out`` holds a run of another config (both named).
    """
    module = get(name)
    if not hasattr(module, "tiles"):
        raise ValueError(f"experiment {name!r} computes no shared kernel tiles; workers run for: {', '.join(tiled())}")
    k, total = (int(v) for v in worker)
    if not 1 <= k <= total:
        raise ValueError(f"worker must be k/K with 1 <= k <= K; got {k}/{total}")
    cfg, out, data_dir = _prepare(module, name, preset, None, overrides, out, data_dir)
    check_saved_config(out, cfg)
    return module.tiles(cfg, out, data_dir=data_dir, progress=progress, start=(k - 1) / total)
