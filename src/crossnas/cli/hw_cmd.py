"""``crossnas hw``: latency, energy, area and power of a network on a PIM accelerator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import typer

from crossnas.errors import CrossnasError
from crossnas.metrics import HW_METRICS


def _load_network_arg(network: str) -> dict[str, Any]:
    from crossnas.hw.examples import EXAMPLES, example_network

    p = Path(network)
    if p.is_file():
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CrossnasError(f"network file {p}: not valid JSON: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise CrossnasError(f"network file {p}: must hold one JSON object with input_shape and layers")
        return data
    if network in EXAMPLES:
        return example_network(network)
    return example_network(network)  # raises the one-line error naming the built-ins


def _render(report: dict[str, Any], title: str) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    # Piped output gets a wide console so the per-layer table is not cut to 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=140)
    t = Table(title=f"{title}: totals ({report['cost_mode']} mode)")
    for col in (*HW_METRICS, "tiles", "crossbars"):
        t.add_column(col, justify="right")
    t.add_row(*(f"{report[k]:.6g}" if isinstance(report[k], float) else str(report[k]) for k in
                (*HW_METRICS, "tiles", "crossbars")))
    console.print(t)
    lt = Table(title="per layer")
    for col in ("layer", "type", "out shape", "w/a bits", "crossbars", "tiles", "finish ms", "energy mJ", "area mm2"):
        lt.add_column(col, justify="right")
    for ly in report["layers"]:
        bits = f"{ly['w_bits']}/{ly['a_bits']}" if ly["w_bits"] else f"-/{ly['a_bits']}"
        lt.add_row(ly["name"], ly["type"], "x".join(map(str, ly["out_shape"])), bits, str(ly["crossbars"]),
                   str(ly["tiles"]), f"{ly['finish_ms']:.4f}", f"{ly['energy_mJ']:.4g}", f"{ly['area_mm2']:.4g}")
    console.print(lt)
    ct = Table(title="per component")
    ct.add_column("component")
    for col in ("energy_mJ", "area_mm2", "power_W"):
        ct.add_column(col, justify="right")
    comps = report["components"]
    for name in comps["energy_mJ"]:
        ct.add_row(name, *(f"{comps[k].get(name, 0.0):.4g}" for k in ("energy_mJ", "area_mm2", "power_W")))
    console.print(ct)


_HARDWARE = typer.Option(None, "--hardware", help="Hardware config (YAML/JSON).")
_MNSIM_INI = typer.Option(None, "--mnsim-ini", help="Read an MNSIM-2.0 SimConfig.ini.")
_SET = typer.Option(None, "--set", help="Override a hardware field, e.g. --set adc.choice=3 --set crossbar.rows=128.")
_BATCH = typer.Option(
    None, "--batch", help="JSON-lines file: one network per line, optionally with a 'hardware' object of overrides."
)


def _batch_cost(lines: list[tuple[int, bytes]], hw0: Any, name: str) -> tuple[Any, list[int]]:
    """Parses and costs numbered JSON lines (one network each, optional ``hardware`` overrides).

    Raises:
        CrossnasError: the first bad line, named by its number.
    """
    from crossnas.hw.build import build_hardware
    from crossnas.hw.cost import cost_networks
    from crossnas.hw.network import network_from_dict

    nets, hws, line_no = [], [], []
    hw_cache: dict[bytes, Any] = {}  # lines of a hardware sweep share their configurations
    for n_line, line in lines:
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise CrossnasError(f"--batch {name} line {n_line}: not valid JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise CrossnasError(f"--batch {name} line {n_line}: must be a JSON object")
        line_no.append(n_line)
        try:
            nets.append(network_from_dict(data))
            line_hw = data.get("hardware")
            if not line_hw:
                hws.append(hw0)
                continue
            key = orjson.dumps(line_hw, option=orjson.OPT_SORT_KEYS)
            if key not in hw_cache:
                hw_cache[key] = build_hardware(hw0, line_hw, {}, source="hardware")
            hws.append(hw_cache[key])
        except CrossnasError as exc:
            raise CrossnasError(f"--batch {name} line {n_line}: {exc}") from None
    res = cost_networks(nets, hws, strict=False)
    if res.errors:
        first = min(res.errors)
        raise CrossnasError(f"--batch {name} line {line_no[first]}: {res.errors[first]}")
    return res, line_no


def _batch_chunk(args: tuple[list[tuple[int, bytes]], Any, str]) -> tuple[bytes, str | None]:
    """A share of a batch: (JSON lines, None) or (b"", the one-line error)."""
    try:
        res, _ = _batch_cost(*args)
    except CrossnasError as exc:
        return b"", str(exc)
    dumps, nl = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    return b"".join(dumps(res.report(i), option=nl) for i in range(len(res))), None


_FORKED_BATCH: tuple[list[tuple[int, bytes]], Any, str] | None = None
"""The batch a forked worker reads its share of (inherited at fork: only the bounds of a
share and its JSON output cross a pipe)."""


def _forked_chunk(bounds: tuple[int, int]) -> tuple[bytes, str | None]:
    assert _FORKED_BATCH is not None
    numbered, hw0, name = _FORKED_BATCH
    return _batch_chunk((numbered[bounds[0]:bounds[1]], hw0, name))


PARALLEL_MIN_LINES = 1024
"""``--batch --json`` with at least this many lines is split over forked workers (the
compiled cost kernel is loaded first, so every worker inherits it) when :func:`_workers`
allows more than one."""


def _workers() -> int:
    """Forked workers for a large batch: ``CROSSNAS_WORKERS`` if set, else the CPUs this
    process may use, at most 8. On this project's 2-core machine two workers took a
    10,000-line batch from 0.4-0.6 to 0.2-0.3 ms per line (``benchmarks/hw_cost.py``).

    Raises:
        CrossnasError: ``CROSSNAS_WORKERS`` is not a positive integer.
    """
    import os

    env = os.environ.get("CROSSNAS_WORKERS")
    if env is not None:
        if not env.strip().isdigit() or int(env) < 1:
            raise CrossnasError(f"CROSSNAS_WORKERS: {env!r} is not a positive integer (1 = no worker processes)")
        return int(env)
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return min(n, 8)


def _batch_json(lines: list[bytes], hw0: Any, name: str) -> None:
    """Costs a batch and prints one JSON line per network, in order; nothing is printed when
    any line is bad (the first bad line's error is raised)."""
    import gc
    import sys

    # Tens of thousands of small layer objects per thousand lines, none of them cyclic:
    # the cyclic collector's passes over them cost more than the parsing (measured). Its
    # state is restored afterwards (the CLI also runs inside other programs and tests).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        out, err = _batch_output(list(enumerate(lines, start=1)), hw0, name)
    finally:
        if was_enabled:
            gc.enable()
    if err:
        raise CrossnasError(err)
    sys.stdout.flush()
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()


def _batch_output(numbered: list[tuple[int, bytes]], hw0: Any, name: str) -> tuple[bytes, str | None]:
    """The JSON lines of a batch (forked workers for a large one), or the first error."""
    import multiprocessing as mp

    global _FORKED_BATCH
    workers = _workers()
    if len(numbered) < PARALLEL_MIN_LINES or workers < 2 or "fork" not in mp.get_all_start_methods():
        return _batch_chunk((numbered, hw0, name))
    from crossnas.hw import kernel

    kernel.load()  # compile / load once, before forking
    size = -(-len(numbered) // (workers * 4))
    _FORKED_BATCH = (numbered, hw0, name)
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_forked_chunk, [(i, i + size) for i in range(0, len(numbered), size)])
    finally:
        _FORKED_BATCH = None
    errors = [e for _, e in parts if e]
    return b"".join(o for o, _ in parts), (errors[0] if errors else None)


def register(app: typer.Typer) -> None:
    @app.command("hw")
    def hw(
        network: str | None = typer.Argument(
            None, help="Network JSON file ({input_shape, layers}) or a built-in: lenet, alexnet, vgg8, vgg16, resnet18."
        ),
        hardware: Path | None = _HARDWARE,
        mnsim_ini: Path | None = _MNSIM_INI,
        set_: list[str] | None = _SET,
        batch: Path | None = _BATCH,
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    ) -> None:
        """Latency, energy, area and power of a network on an analog PIM accelerator (MNSIM-2.0 calibrated)."""
        from crossnas.config.loading import load_yaml_or_json, parse_set_options
        from crossnas.hw.build import build_hardware
        from crossnas.hw.cost import cost_networks
        from crossnas.hw.mnsim_ini import hardware_from_mnsim_ini
        from crossnas.hw.network import network_from_dict

        if (network is None) == (batch is None):
            raise CrossnasError("give either NETWORK or --batch FILE (exactly one)")
        base = hardware_from_mnsim_ini(mnsim_ini) if mnsim_ini is not None else None
        overrides: dict[str, Any] = {}
        if hardware is not None:
            overrides = load_yaml_or_json(hardware, what="hardware")
        sets = parse_set_options(set_)
        hw0 = build_hardware(base, overrides, sets, source=str(hardware) if hardware else "--set")

        if batch is None:
            assert network is not None
            data = _load_network_arg(network)
            line_hw = data.get("hardware")
            hw_cfg = build_hardware(hw0, line_hw or {}, {}, source="network hardware") if line_hw else hw0
            res = cost_networks([network_from_dict(data)], [hw_cfg])
            report = res.report(0)
            if as_json:
                typer.echo(json.dumps(report))
            else:
                _render(report, network)
            return

        if not batch.is_file():
            raise CrossnasError(f"--batch: file not found: {batch}")
        lines = batch.read_bytes().splitlines()  # orjson reads (and checks the UTF-8 of) bytes
        if as_json:
            _batch_json(lines, hw0, str(batch))
            return
        res, _ = _batch_cost(list(enumerate(lines, start=1)), hw0, str(batch))
        for i in range(len(res)):
            _render(res.report(i), f"{batch} #{i + 1}")
