"""Run directories: the config, library versions and results written as they come.

A run directory holds ``config.json`` (the frozen dataclass config),
``versions.json``, and ``results.jsonl`` (one JSON record per finished unit of
work, appended and flushed immediately). Re-running with the same config skips
the units already recorded; a different config in the same directory is an
error unless ``overwrite=True``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import typing
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

__all__ = ["RunDir", "TrainingStore", "ConfigMismatchError", "RunDirInUseError", "SavedRun", "load_run", "from_jsonable",
           "saved_before", "versions", "to_jsonable", "read_records", "write_command", "learning_curve",
           "with_overrides"]


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, numpy/jax arrays and floats (inf/nan as strings) -> JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__type__": type(obj).__name__,
                **{f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):
        return to_jsonable(obj.tolist())
    if isinstance(obj, float):
        if obj != obj:
            return "nan"
        if obj in (float("inf"), float("-inf")):
            return "inf" if obj > 0 else "-inf"
        return obj
    return obj


def _plain(obj: Any) -> Any:
    """JSON values back to Python: lists -> tuples, 'inf' / '-inf' / 'nan' -> floats."""
    if isinstance(obj, list):
        return tuple(_plain(v) for v in obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if obj in ("inf", "-inf", "nan"):
        return float(obj)
    return obj


def from_jsonable(cls: type, obj: dict):
    """A frozen config dataclass ``cls`` from what :func:`to_jsonable` wrote, nested
    dataclasses (found through ``cls``'s field types) included; lists become tuples and
    'inf' / 'nan' strings floats. Inverse of :func:`to_jsonable` for configs:
    ``to_jsonable(from_jsonable(type(c), to_jsonable(c))) == to_jsonable(c)``.

    Raises:
        ValueError: ``obj`` was written by another class, or names a field ``cls`` lacks.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(obj).__name__}")
    typ = obj.get("__type__", cls.__name__)
    if typ != cls.__name__:
        raise ValueError(f"the saved config is a {typ}, not a {cls.__name__}")
    obj = upgrade_saved(cls, obj)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(obj) - set(fields) - {"__type__"})
    if unknown:
        raise ValueError(f"the saved {typ} has fields {unknown} that {cls.__name__} does not define")
    obj = {**saved_before(cls, obj), **obj}
    kwargs = {}
    for name, value in obj.items():
        if name == "__type__":
            continue
        hint = hints.get(name)
        inner = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)] if hint is not None else []
        target = hint if dataclasses.is_dataclass(hint) else (inner[0] if inner else None)
        if isinstance(value, dict) and "__type__" in value and target is not None:
            kwargs[name] = from_jsonable(target, value)
        elif isinstance(value, list) and target is not None and any(
                isinstance(v, dict) and "__type__" in v for v in value):   # tuple[Dataclass, ...]
            kwargs[name] = tuple(from_jsonable(target, v) if isinstance(v, dict) and "__type__" in v
                                 else _plain(v) for v in value)
        else:
            kwargs[name] = _plain(value)
    return cls(**kwargs)


def with_overrides(cfg, assignments):
    """``cfg`` with fields set from ``path=value`` strings (``ntkequi run ... --set``), each value
    parsed as its field's type: a Python literal (``64``, ``1e-3``, ``(0, 1, 2)``, ``None``,
    ``True``, ``'inf'``) or a bare word for a string field. ``path`` is a field name, or a dotted
    path into nested configs and tuples of them (``problems.0.widths``). The config's own checks
    run on the result.

    Args:
        cfg: a frozen config dataclass.
        assignments: ``"path=value"`` strings, applied in order.

    Returns:
        A new config of the same type.

    Raises:
        ValueError: no ``=``, an unknown field (the message lists the known ones), a value that
            is not of the field's type, or one the config refuses; each names the assignment.

    >>> @dataclasses.dataclass(frozen=True)
    ... class C:
    ...     widths: tuple = (8,)
    ...     lr: float = 0.1
    ...     name: str = "a"
    >>> with_overrides(C(), ["widths=(16, 32)", "lr=1", "name=b"])
    C(widths=(16, 32), lr=1.0, name='b')
    """
    assignments = list(assignments)
    if not assignments:
        return cfg
    draft = _Draft.of(cfg)
    for text in assignments:
        if "=" not in text:
            raise ValueError(f"--set takes path=value; got {text!r}")
        path, value = (part.strip() for part in text.split("=", 1))
        draft.set(path.split("."), value, text)
    try:                   # the configs' own checks, once all are set (steps and record_steps together)
        return draft.build()
    except (ValueError, TypeError) as e:
        raise ValueError(f"--set {' '.join(assignments)}: {e}") from None


class _Draft:
    """A config (or a tuple of configs) being edited: its fields as a dict, nested configs as drafts."""

    def __init__(self, cls, items):
        self.cls, self.items = cls, items

    @classmethod
    def of(cls, obj):
        if dataclasses.is_dataclass(obj):
            return cls(type(obj), {f.name: cls.of(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init})
        if isinstance(obj, tuple) and any(dataclasses.is_dataclass(v) for v in obj):
            return cls(tuple, [cls.of(v) for v in obj])
        return obj

    def build(self):
        if self.cls is tuple:
            return tuple(v.build() if isinstance(v, _Draft) else v for v in self.items)
        return self.cls(**{k: v.build() if isinstance(v, _Draft) else v for k, v in self.items.items()})

    def set(self, keys, value: str, text: str):
        if self.cls is tuple:
            if not keys[0].isdigit() or not int(keys[0]) < len(self.items):
                raise ValueError(f"--set {text}: {keys[0]!r} is not an index of the {len(self.items)} entries there")
            name, hint = int(keys[0]), None
        else:
            name = keys[0]
            if name not in self.items:
                raise ValueError(f"--set {text}: {self.cls.__name__} has no field {name!r}; its fields: "
                                 f"{', '.join(self.items)}")
            hint = typing.get_type_hints(self.cls).get(name)
        current = self.items[name]
        if len(keys) > 1:
            if not isinstance(current, _Draft):
                raise ValueError(f"--set {text}: {keys[0]!r} holds a {type(current).__name__}, which has no "
                                 f"field {keys[1]!r}")
            current.set(keys[1:], value, text)
        elif isinstance(current, _Draft):
            raise ValueError(f"--set {text}: that field is a nested config; set its fields (path.field=value)")
        else:
            self.items[name] = _parse_value(value, hint, current, text)


def _parse_value(value: str, hint, current, text: str):
    """``value`` (a string) as the type ``hint`` says (else as ``current``'s type)."""
    import ast
    try:
        literal = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        literal = value                                      # a bare word: a string
    args = typing.get_args(hint)
    if hint is not None and type(None) in args:              # Optional[X]
        if literal is None:
            return None
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else None
    if dataclasses.is_dataclass(hint) or dataclasses.is_dataclass(current):
        raise ValueError(f"--set {text}: that field is a nested config; set its fields "
                         f"(path.field=value)")
    origin = typing.get_origin(hint) or hint
    if hint is None or hint is typing.Any:
        origin = type(current) if current is not None else None
    if origin is tuple:
        if not isinstance(literal, (tuple, list)):
            raise ValueError(f"--set {text}: a tuple is expected, e.g. (1, 2); got {value!r}")
        inner = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if len(inner) == 1:
            elem = inner[0]
        elif current:
            elem = type(current[0])
        else:
            elem = None
        return tuple(_coerce(v, elem, text) for v in literal)
    return _coerce(literal, origin, text)


def _coerce(v, typ, text: str):
    if typ is None or typ is typing.Any or isinstance(typ, str):
        return v
    if typ is bool:
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"
    elif typ is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
    elif typ is float:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        if isinstance(v, str) and v.lower() in ("inf", "-inf", "nan"):
            return float(v)
    elif typ is str:
        return v if isinstance(v, str) else str(v)
    elif isinstance(v, typ):
        return v
    raise ValueError(f"--set {text}: expected {getattr(typ, '__name__', typ)}, got {v!r}")


def upgrade_saved(cls: type, obj: dict) -> dict:
    """``obj`` (a saved config of ``cls``, JSON) in ``cls``'s current layout: what
    ``cls.upgrade_saved(obj)`` (a staticmethod, for a config whose fields were regrouped) makes
    of it, or ``obj`` itself for a class without one. :func:`from_jsonable` and the comparison
    of a resumed :class:`RunDir` read older configs through it."""
    hook = getattr(cls, "upgrade_saved", None)
    return obj if hook is None else hook(obj)


def saved_before(cls: type, obj: dict) -> dict:
    """The values that fields added to ``cls`` after ``obj`` was saved had then: the
    entries of ``cls.SAVED_BEFORE`` (a ``ClassVar`` dict, field -> value) that ``obj`` lacks.

    A field added with a new default (e.g. members trained in float32) must not change
    what an older run directory means: its config is read back, and compared on resumption,
    with the value the field stood for when it was written (float64).

    >>> @dataclasses.dataclass(frozen=True)
    ... class C:
    ...     SAVED_BEFORE: typing.ClassVar[dict] = {"dtype": "float64"}
    ...     n: int = 1
    ...     dtype: str = "float32"
    >>> saved_before(C, {"n": 2}), from_jsonable(C, {"n": 2}).dtype
    ({'dtype': 'float64'}, 'float64')
    """
    legacy = getattr(cls, "SAVED_BEFORE", {}) or {}
    return {k: to_jsonable(v) for k, v in legacy.items() if k not in obj}


def _complete_saved(saved, config):
    """``saved`` (the JSON of a config written earlier) with the :func:`saved_before` values
    of the dataclasses of ``config`` (the config now) filled in, recursively."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type) and isinstance(saved, dict):
        if saved.get("__type__", type(config).__name__) != type(config).__name__:
            return saved
        saved = upgrade_saved(type(config), saved)
        out = {**saved_before(type(config), saved), **saved}
        return {k: (_complete_saved(v, getattr(config, k)) if hasattr(config, k) else v) for k, v in out.items()}
    if isinstance(config, dict) and isinstance(saved, dict):
        return {k: (_complete_saved(v, config[k]) if k in config else v) for k, v in saved.items()}
    if isinstance(config, (list, tuple)) and isinstance(saved, list) and len(saved) == len(config):
        return [_complete_saved(v, c) for v, c in zip(saved, config)]
    return saved


def versions() -> dict:
    """Versions of Python, the libraries ntkequi uses, and the JAX backend."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("ntkequi", "jax", "jaxlib", "neural-tangents", "flax", "optax", "numpy", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    try:
        import jax
        out["jax_backend"] = jax.default_backend()
        out["devices"] = [str(d) for d in jax.devices()]
        out["x64"] = bool(jax.config.jax_enable_x64)
    except Exception as e:  # pragma: no cover
        out["jax_backend"] = f"unavailable: {e}"
    return out


def read_records(path) -> Iterator[dict]:
    """The records of a ``results.jsonl`` (none if it does not exist; a truncated last
    line from a crash is skipped)."""
    path = Path(path)
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


def write_command(out, preset: str, argv=None, overrides=()) -> Path:
    """Record in run directory ``out`` the command line and preset that wrote it
    (``command.json``, with the ``--set`` ``overrides`` applied to the preset), for figure
    captions: ``argv`` (default ``sys.argv``) with data
    paths replaced by ``DIR``; a Python script is recorded as ``python <its path as given>``,
    made relative to the working directory when it lies inside it."""
    import datetime
    argv = list(sys.argv if argv is None else argv)
    for i, a in enumerate(argv):          # data paths are machine-specific: write DIR
        if a.startswith("--data-dir="):
            argv[i] = "--data-dir=DIR"
        elif i and argv[i - 1] == "--data-dir":
            argv[i] = "DIR"
    prog = argv[0] if argv else "?"
    if prog.endswith(".py"):
        path = Path(prog)
        try:
            path = path.resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            pass
        script = f"python {path.as_posix()}"
    else:
        script = Path(prog).name
    rec = {"command": " ".join([script] + argv[1:]), "preset": preset,
           "finished": datetime.datetime.now().isoformat(timespec="seconds")}
    if overrides:
        rec["overrides"] = list(overrides)
    target = Path(out) / "command.json"
    target.write_text(json.dumps(rec, indent=2) + "\n")
    return target


def learning_curve(done: dict, prefix: str, metric: str, counts: bool = False):
    """``(ns, mean, std)`` numpy arrays of ``metric`` over the records whose key starts with
    ``prefix``, grouped by their ``n`` field (training-set size), ``ns`` ascending (``std``
    with ``ddof=0``); with ``counts``, also the number of records behind each mean."""
    import numpy as np
    recs = [r for k, r in done.items() if k.startswith(prefix)]
    ns = sorted({r["n"] for r in recs})
    vals = [[float(r[metric]) for r in recs if r["n"] == n] for n in ns]
    out = np.array(ns), np.array([np.mean(v) for v in vals]), np.array([np.std(v) for v in vals])
    return out + (np.array([len(v) for v in vals]),) if counts else out


class ConfigMismatchError(RuntimeError):
    """The run directory holds results of a different configuration."""


class RunDirInUseError(RuntimeError):
    """Another process holds the run directory (its lock file names the process)."""


LOCK_FILE = ".lock"
_held: dict = {}            # resolved path -> [open lock file, number of RunDirs of this process using it]


def _acquire(path: Path):
    """Take the OS-level lock of run directory ``path`` for this process (shared by the
    RunDirs of one process; refused for a second process). An exclusive ``flock`` on
    ``path/.lock``, which the kernel releases when the holder exits or is killed, so a
    killed run can always be resumed."""
    key = str(path.resolve())
    if key in _held:
        _held[key][1] += 1
        return
    import fcntl
    f = open(path / LOCK_FILE, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "unknown process"
        f.close()
        raise RunDirInUseError(
            f"run directory {path} is in use by {holder}; wait for that run to finish or stop it "
            f"(a stopped run releases the directory and resumes from its saved results), "
            f"or use another output directory") from None
    f.seek(0)
    f.truncate()
    f.write(f"process {os.getpid()} on {platform.node()}: {' '.join(sys.argv)[:200]}\n")
    f.flush()
    _held[key] = [f, 1]


def _release(key: str) -> None:
    entry = _held.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del _held[key]
        entry[0].close()            # closing the file releases the flock


def check_saved_config(path, config) -> None:
    """Refuse a run directory whose saved ``config.json`` is not ``config`` (nothing saved yet:
    fine), without taking its lock: what a worker sharing a run's tiles checks.

    Raises:
        ConfigMismatchError: naming each differing field with the saved and the given value.
    """
    cfg_file = Path(path) / "config.json"
    if not cfg_file.exists():
        return
    old, cfg = _complete_saved(json.loads(cfg_file.read_text()), config), to_jsonable(config)
    if old != cfg:
        diff = sorted(k for k in set(old) | set(cfg) if old.get(k) != cfg.get(k))
        raise ConfigMismatchError(
            f"{cfg_file} holds a different config: " + "; ".join(
                f"{k}: saved {json.dumps(old.get(k))}, given {json.dumps(cfg.get(k))}" for k in diff)
            + ". Start the worker with the run's preset and --set overrides")


class RunDir:
    """A directory for one run's config, versions and incremental results.

    The directory is locked while a RunDir of it is alive (or until :meth:`close`): a
    second process opening it gets :class:`RunDirInUseError` at once, naming the process
    that holds it; the lock is the kernel's (``flock``), released when that process
    exits or is killed.
    """

    def __init__(self, path, config, overwrite: bool = False):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        _acquire(self.path)
        self._lock_key = str(self.path.resolve())
        self.config = config
        cfg = to_jsonable(config)
        cfg_file = self.path / "config.json"
        if cfg_file.exists():
            old = _complete_saved(json.loads(cfg_file.read_text()), config)
            if old != cfg:
                if not overwrite:
                    diff = sorted(k for k in set(old) | set(cfg) if old.get(k) != cfg.get(k))
                    raise ConfigMismatchError(
                        f"{cfg_file} holds a different config (fields {diff} differ); "
                        f"use another output directory or overwrite=True / --overwrite")
                self.results_file.unlink(missing_ok=True)
        self._write_json("config.json", cfg)
        self._write_json("versions.json", versions())

    def close(self) -> None:
        """Release this RunDir's hold on the directory lock (also on garbage collection)."""
        key, self._lock_key = getattr(self, "_lock_key", None), None
        if key is not None:
            _release(key)

    def __del__(self):
        try:
            self.close()
        except Exception:           # interpreter shutdown: the process exit releases the lock anyway
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def results_file(self) -> Path:
        """``results.jsonl`` of this run directory."""
        return self.path / "results.jsonl"

    def _write_json(self, name: str, obj) -> Path:
        target = self.path / name
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, target)
        return target

    def records(self) -> Iterator[dict]:
        """Records written so far (a truncated last line from a crash is skipped)."""
        return read_records(self.results_file)

    def done(self) -> dict:
        """``{key: record}`` of finished units of work."""
        return {r["key"]: r for r in self.records() if "key" in r}

    def pending(self, units: Iterable, key: Callable[[Any], str] = str) -> list:
        """The resume loop's one rule: ``[(key(u), u) for u in units]`` without the units whose
        record is already written, in their order (read once, when called).

        Args:
            units: the experiment's units of work (any objects).
            key: a unit's record key (default ``str``).

        Returns:
            ``[(key, unit), ...]`` still to do: run each, then :meth:`record` it under its key.

        >>> import tempfile
        >>> rd = RunDir(tempfile.mkdtemp(), {"widths": [8, 16]})
        >>> _ = rd.record("width8", error=0.1)
        >>> rd.pending([8, 16, 32], "width{}".format)
        [('width16', 16), ('width32', 32)]
        """
        done = self.done()
        return [(k, u) for k, u in ((key(u), u) for u in units) if k not in done]

    def record(self, key: str, **payload) -> dict:
        """Append one finished unit of work and flush it to disk."""
        rec = {"key": key, **to_jsonable(payload)}
        torn = False
        if self.results_file.exists() and self.results_file.stat().st_size:
            with open(self.results_file, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"      # a crash mid-write left a partial line
        with open(self.results_file, "a") as f:
            f.write(("\n" if torn else "") + json.dumps(rec, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return rec


class TrainingStore:
    """A training run's resumable state in a run directory (:class:`RunDir`): the latest
    checkpoint of its state (a pytree, msgpack, replaced atomically) and the arrays recorded at
    given steps (``{name}_step{S}.npy``, written atomically before the record that points at
    it, so a record always has its file), read back on resume.

    Args:
        path: the run directory.
        config: what the run is (saved; a resumed run must match it, see :class:`RunDir`).
        overwrite: discard a directory written with another config.
        name: the recorded arrays' file prefix.

    >>> import tempfile, numpy as np
    >>> store = TrainingStore(tempfile.mkdtemp(), {"steps": 3})
    >>> store.save_array(2, np.ones((2, 3), np.float32))
    >>> store.save_state({"w": np.zeros(2)}, 3)
    >>> state, step, arrays = store.restore({"w": np.ones(2)})
    >>> step, sorted(arrays), state["w"].tolist()
    (3, [2], [0.0, 0.0])
    """

    def __init__(self, path, config, overwrite: bool = False, name: str = "predictions"):
        self.run_dir = RunDir(path, config, overwrite=overwrite)
        self.path, self.name = self.run_dir.path, name
        self._ckpt = self.path / "checkpoint.msgpack"

    def restore(self, template):
        """``(state, step, {step: float64 array})``: the checkpointed state (shaped like
        ``template``; ``template`` itself at step 0 when there is none) and the arrays recorded
        up to that step."""
        import numpy as np
        from flax import serialization
        state, step = template, 0
        if self._ckpt.exists():
            saved = serialization.msgpack_restore(self._ckpt.read_bytes())
            state, step = serialization.from_state_dict(template, saved["state"]), int(saved["step"])
        arrays = {rec["step"]: np.load(self.path / rec["file"]).astype(np.float64)
                  for rec in self.run_dir.records() if rec.get("kind") == self.name and rec["step"] <= step}
        return state, step, arrays

    def save_state(self, state, step: int) -> None:
        """Replace the checkpoint by ``state`` (device arrays fetched) at ``step``."""
        import jax
        from flax import serialization
        data = serialization.msgpack_serialize({"state": serialization.to_state_dict(jax.device_get(state)),
                                                "step": int(step)})
        tmp = self._ckpt.with_suffix(".msgpack.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self._ckpt)

    def save_array(self, step: int, array) -> None:
        """Save ``array`` recorded at ``step`` (its own dtype) and append the record that points at it."""
        import numpy as np
        fname = f"{self.name}_step{int(step)}.npy"
        with open(self.path / (fname + ".tmp"), "wb") as f:
            np.save(f, np.asarray(array))
        os.replace(self.path / (fname + ".tmp"), self.path / fname)
        self.run_dir.record(f"step/{int(step)}", kind=self.name, step=int(step), file=fname,
                            shape=list(np.shape(array)))


@dataclasses.dataclass
class SavedRun:
    """A run directory read back: ``config`` (the frozen config dataclass, or the raw JSON
    dict when no class was given), ``versions``, ``command`` (command line and preset, if
    recorded) and ``done`` (``{key: record}``)."""
    path: Path
    config: Any
    versions: dict
    command: dict
    done: dict


def load_run(path, config_cls: Optional[type] = None) -> SavedRun:
    """Read a run directory written by :class:`RunDir`; with ``config_cls``, the config
    comes back as that dataclass (:func:`from_jsonable`).

    Raises:
        FileNotFoundError: ``config.json`` or ``results.jsonl`` is missing.
        ValueError: no finished record, or the config is not a ``config_cls``.
    """
    path = Path(path)
    missing = [f for f in ("config.json", "results.jsonl") if not (path / f).exists()]
    if missing:
        raise FileNotFoundError(f"{path} is not a saved run: {', '.join(missing)} missing")
    cfg = json.loads((path / "config.json").read_text())
    if config_cls is not None:
        cfg = from_jsonable(config_cls, cfg)
    read = lambda f: json.loads((path / f).read_text()) if (path / f).exists() else {}
    done = {r["key"]: r for r in read_records(path / "results.jsonl") if "key" in r}
    if not done:
        raise ValueError(f"{path / 'results.jsonl'} holds no finished results")
    return SavedRun(path, cfg, read("versions.json"), read("command.json"), done)
