"""Configuration of the joint cross-layer search (the ``search:`` section).

The genome has three parts: the network genes (per choice layer: block, width) and the
quantization genes (per layer: weight and activation bits) come from
:class:`~crossnas.config.space.SpaceConfig`; the hardware genes are named here by
dotted path into :class:`~crossnas.config.hardware.HardwareConfig` with their choices
(``crossbar.size`` is a shorthand that sets ``crossbar.rows`` and ``crossbar.cols``
together). Every hardware field not named is fixed to the hardware config's value.

Example (YAML)::

    search:
      mode: pareto
      objectives: [edp_mJms]
      hardware_genes:
        crossbar.size: [32, 64, 128, 256]
        adc.choice: [1, 2, 3, 4, 5, 6, 7, 8]
        dac.choice: [1, 2]
        device.levels: [2, 4]
      constraints: {max_area_mm2: 50}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

METRICS = ("latency_ms", "energy_mJ", "edp_mJms", "area_mm2")
"""Hardware figures the search can minimise (all per image)."""

CROSSBAR_SIZE = "crossbar.size"
"""Shorthand gene: a square crossbar, sets ``crossbar.rows`` and ``crossbar.cols``."""

PAPER_HARDWARE_GENES: dict[str, tuple[Any, ...]] = {
    CROSSBAR_SIZE: (32, 64, 128, 256),
    "adc.choice": (1, 2, 3, 4, 5, 6, 7, 8),
    "dac.choice": (1, 2),
}
"""The CrossNAS paper's hardware genes: crossbar size, MNSIM ADC preset, 1- or 2-bit DAC."""


def hardware_leaf_paths() -> list[str]:
    """Every settable dotted path of :class:`HardwareConfig` (plus ``crossbar.size``)."""
    from crossnas.config.hardware import HardwareConfig

    out = [CROSSBAR_SIZE]
    for name, field in HardwareConfig.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(f"{name}.{sub}" for sub in ann.model_fields)
        else:
            out.append(name)
    return out


def apply_hardware_genes(base: Any, genes: dict[str, Any]) -> Any:
    """``base`` (a HardwareConfig) with the gene values set, re-validated.

    Setting ``adc.choice``/``dac.choice`` replaces the converter's figures (bits, area,
    power, rate) with the preset's, exactly as writing ``choice: N`` in a config does.

    Raises:
        ValueError: a value the hardware config rejects (pydantic's message).
    """
    from crossnas.config.hardware import HardwareConfig

    data = base.model_dump()
    for path, value in genes.items():
        if path == CROSSBAR_SIZE:
            data["crossbar"]["rows"] = value
            data["crossbar"]["cols"] = value
            continue
        section, _, leaf = path.partition(".")
        if not leaf:
            data[section] = value
            continue
        if section in ("adc", "dac") and leaf == "choice":
            keep = {k: v for k, v in data[section].items() if k not in ("bits", "area_um2", "power_W", "sample_rate_GSps")}
            keep["choice"] = value
            data[section] = keep
            continue
        data[section][leaf] = value
    return HardwareConfig.model_validate(data)


class EvolutionConfig(BaseModel):
    """Evolution parameters (defaults: the CrossNAS paper's SPOS evolution)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    population: int = Field(50, ge=2, le=100_000)
    """Size of the first (random) generation; NSGA-II's population and offspring size."""
    top_k: int = Field(10, ge=1)
    """Paper mode: parents = the ``top_k`` fittest candidates seen so far."""
    n_mutations: int = Field(25, ge=0)
    """Paper mode: children by mutation per generation."""
    n_crossovers: int = Field(25, ge=0)
    """Paper mode: children by uniform crossover per generation."""
    mutation_prob: float = Field(0.1, gt=0, le=1)
    """Probability that one gene is redrawn uniformly (both modes)."""
    crossover_prob: float = Field(0.9, ge=0, le=1)
    """NSGA-II: probability a child comes from uniform crossover (else a mutated copy)."""
    generations: int = Field(20, ge=1, le=100_000)
    """Generations, the first (random) one included."""

    @model_validator(mode="after")
    def _check(self) -> EvolutionConfig:
        if self.top_k > self.population:
            raise ValueError(f"top_k ({self.top_k}) must not exceed population ({self.population})")
        if self.n_mutations + self.n_crossovers == 0 and self.generations > 1:
            raise ValueError("n_mutations + n_crossovers must be positive when generations > 1")
        return self


class ConstraintsConfig(BaseModel):
    """Hard limits; a candidate over any of them is rejected before its accuracy is scored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_area_mm2: float | None = Field(None, gt=0)
    max_latency_ms: float | None = Field(None, gt=0)
    max_energy_mJ: float | None = Field(None, gt=0)
    max_edp_mJms: float | None = Field(None, gt=0)

    def limits(self) -> dict[str, float]:
        """``{metric: limit}`` for the constraints that are set."""
        out = {}
        for metric in METRICS:
            v = getattr(self, f"max_{metric}")
            if v is not None:
                out[metric] = float(v)
        return out


class NormalizationConfig(BaseModel):
    """Min-max ranges of the hardware figures (paper fitness, hypervolume reference).

    Ranges not given are estimated from ``samples`` uniformly drawn valid candidates of
    the configured space (seeded by the search seed) and stored with the run.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    samples: int = Field(500, ge=2, le=1_000_000)
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    """Given ranges, e.g. ``{latency_ms: [0.01, 2.0]}``; keys from the hardware metrics."""

    @field_validator("ranges")
    @classmethod
    def _ranges(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for key, (lo, hi) in v.items():
            if key not in METRICS:
                raise ValueError(f"unknown metric {key!r}; allowed: {list(METRICS)}")
            if not hi > lo:
                raise ValueError(f"{key}: range [{lo}, {hi}] needs max > min")
        return v


class AccuracyConfig(BaseModel):
    """How a candidate's accuracy is scored (its fidelity)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fidelity: Literal["supernet", "pim", "synthetic"] = "supernet"
    """``supernet``: validation accuracy of the weight-sharing subnet with fake quantization
    (BN re-estimated); ``pim``: accuracy of the extracted subnet through the crossbar
    simulator on a validation subset (hardware genes matter); ``synthetic``: a cheap
    deterministic proxy that needs no supernet (dry runs, tests, benchmarks)."""
    bn_batches: int | None = Field(None, ge=1)
    """Training batches used to re-estimate BatchNorm statistics (``None``: scorer default)."""
    batch_size: int | None = Field(None, ge=1)
    """Batch size of scoring passes (``None``: scorer default)."""
    val_subset: int | None = Field(None, ge=1)
    """Score on the first N validation images only (``None``: all; ``pim`` default 256)."""
    mc_runs: int = Field(1, ge=1, le=1000)
    """``pim``: Monte-Carlo runs of device non-idealities; the mean is the accuracy."""
    pim_seed: int = Field(0, ge=0)
    synthetic_delay_s: float = Field(0.0, ge=0, le=60)
    """``synthetic``: pretend each new network takes this long to score (parallelism tests)."""


class SearchConfig(BaseModel):
    """The ``search:`` section: genome, objectives, evolution, constraints, storage policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["paper", "pareto"] = "paper"
    """``paper``: weighted fitness per ``w_acc``; ``pareto``: NSGA-II over accuracy and ``objectives``."""
    seed: int = Field(0, ge=0)
    w_acc: tuple[float, ...] = (0.99, 0.8)
    """Paper fitness weights; one evolution per value (they share evaluations). In pareto
    mode they pick the winners of ``best.json`` from the front."""
    objectives: tuple[Literal["latency_ms", "energy_mJ", "edp_mJms", "area_mm2"], ...] = ("edp_mJms",)
    """Pareto mode: hardware figures minimised next to accuracy (maximised)."""
    evolution: EvolutionConfig = EvolutionConfig()
    hardware_genes: dict[str, tuple[Any, ...]] = Field(default_factory=lambda: dict(PAPER_HARDWARE_GENES))
    """Searched hardware fields (dotted path into the hardware config) and their choices."""
    search_bits: bool = True
    """Search per-layer weight/activation bits; ``False`` fixes them to the largest choice."""
    constraints: ConstraintsConfig = ConstraintsConfig()
    normalization: NormalizationConfig = NormalizationConfig()
    accuracy: AccuracyConfig = AccuracyConfig()
    max_rejected: int = Field(2000, ge=1)
    """Give up after this many samples in a row were rejected (all over a constraint:
    error; duplicates/invalid: the generation is cut short)."""
    study_name: str = Field("crossnas", min_length=1, max_length=200)
    worker_lease_s: float = Field(300.0, gt=0)
    """A RUNNING trial whose worker has not reported for this long is taken over."""
    claim_batch: int = Field(8, ge=1, le=100_000)
    """Most candidates a worker claims at once (small: late workers get a share; large:
    fewer storage reads)."""
    poll_s: float = Field(0.5, gt=0)
    """Wait between storage polls while other workers finish a generation."""

    @field_validator("w_acc")
    @classmethod
    def _w_acc(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v:
            raise ValueError("w_acc must list at least one weight, e.g. [0.99, 0.8]")
        for w in v:
            if not 0.0 <= w <= 1.0:
                raise ValueError(f"w_acc values must be in 0..1, got {w}")
        if len(set(v)) != len(v):
            raise ValueError("w_acc values must not repeat")
        return v

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError(f"objectives must name at least one of {list(METRICS)}")
        if len(set(v)) != len(v):
            raise ValueError("objectives must not repeat")
        return v

    @field_validator("hardware_genes", mode="before")
    @classmethod
    def _genes(cls, v: Any) -> Any:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError("hardware_genes must map a dotted hardware path to a list of choices")
        allowed = hardware_leaf_paths()
        out: dict[str, tuple[Any, ...]] = {}
        for path, choices in v.items():
            if path not in allowed:
                raise ValueError(f"unknown hardware gene {path!r}; allowed: {', '.join(allowed)}")
            if isinstance(choices, (str, bytes)) or not isinstance(choices, (list, tuple)):
                raise ValueError(f"{path}: choices must be a list")
            if len(choices) == 0:
                raise ValueError(f"{path}: choices must not be empty")
            if len(set(map(repr, choices))) != len(choices):
                raise ValueError(f"{path}: choices must not repeat")
            out[str(path)] = tuple(choices)
        if CROSSBAR_SIZE in out and ("crossbar.rows" in out or "crossbar.cols" in out):
            raise ValueError("crossbar.size sets rows and cols: do not also search crossbar.rows/cols")
        return out

    @model_validator(mode="after")
    def _check_choices(self) -> SearchConfig:
        from crossnas.config.hardware import HardwareConfig

        base = HardwareConfig()
        for path, choices in self.hardware_genes.items():
            for value in choices:
                try:
                    apply_hardware_genes(base, {path: value})
                except ValueError as exc:
                    from crossnas.errors import format_validation_error

                    msg = format_validation_error(exc) if hasattr(exc, "errors") else str(exc)
                    raise ValueError(f"hardware_genes.{path}: choice {value!r} is invalid ({msg})") from None
        return self
