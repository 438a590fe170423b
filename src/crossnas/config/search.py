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

from crossnas.metrics import SEARCHABLE, SearchableMetric

METRICS = SEARCHABLE
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
    power, rate) with the preset's, exactly as writing ``choice: N`` in a config does;
    ``device.type`` is applied first and refills the fields its preset sets (other genes,
    such as ``device.levels``, then override them).

    Raises:
        ValueError: a value the hardware config rejects (pydantic's message).
    """
    from crossnas.config.hardware import HardwareConfig
    from crossnas.devices import retype

    data = base.model_dump()
    # the device type first: its preset fills the fields no other gene sets
    for path, value in sorted(genes.items(), key=lambda kv: kv[0] != "device.type"):
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
        if section == "device" and leaf == "type":
            data[section] = retype(data[section], str(value))  # the new type's preset fills the rest
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


ACCURACY_GENE_PREFIXES: tuple[str, ...] = (
    "crossbar.size", "crossbar.rows", "crossbar.subarray_rows", "adc.", "dac.", "device.type",
    "device.levels", "device.variation_pct", "device.prog_noise_pct", "device.read_noise_pct",
    "device.noise_model", "device.distribution", "device.drift_nu", "device.drift_nu_std",
    "device.drift_t0_s", "device.time_s", "device.drift_compensation", "device.clip_gmax",
    "device.stuck_at_hrs", "device.stuck_at_lrs", "device.hrs_ohm", "device.lrs_ohm", "pe.polarity",
    "epitome.",
)
"""Hardware genes that change what a network computes on the crossbars (the fields the PIM
simulator reads): crossbar rows and rows read at once (partial-sum tiling), converters,
the device type (its noise and drift), cell levels, on/off ratio, programming and read
noise, drift, faults, polarity and the epitome input datapath. A hardware-blind fidelity
cannot rank them."""


def accuracy_genes(paths: Any) -> list[str]:
    """The genes among ``paths`` that change the accuracy on the crossbars."""
    out = []
    for path in paths:
        if any(path == p or (p.endswith(".") and path.startswith(p)) for p in ACCURACY_GENE_PREFIXES):
            out.append(str(path))
    return out


class AccuracyConfig(BaseModel):
    """How a candidate's accuracy is scored (its fidelity).

    Cost of the default ``pim_aware`` fidelity (digits, 2 CPU cores): every candidate gets
    the supernet score (milliseconds, shared by all hardware variants of one network); the
    candidates that can win (``top_k`` per fitness weight, the front) also get a PIM score,
    which costs one BatchNorm re-estimation plus ``mc_runs`` simulated passes over
    ``val_images`` images (0.58 s per candidate in the default digits run; BENCHMARKS.md).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fidelity: Literal["pim_aware", "supernet", "pim", "synthetic"] = "pim_aware"
    """``pim_aware`` (default): multi-fidelity; every candidate gets the supernet score, and
    in every generation the ``top_k`` candidates of each fitness weight and every member of
    the current front also get a PIM score (the inherited weights on the candidate's own
    simulated chip), which then replaces the supernet score in selection, fronts, winners
    and fitness. Repeated within a generation until every such candidate has a PIM score.
    ``supernet``: validation accuracy of the weight-sharing subnet with fake quantization
    (BN re-estimated), blind to the hardware; ``pim``: every candidate through the crossbar
    simulator (slow); ``synthetic``: a cheap deterministic proxy that needs no supernet
    (dry runs, tests, benchmarks)."""
    top_k: int = Field(5, ge=0, le=10_000)
    """``pim_aware``: candidates per fitness weight (``w_acc``) that get a PIM score each
    generation, on top of the front; 0 = the front only."""
    val_images: int = Field(256, ge=1)
    """``pim_aware``/``pim``: validation images of a PIM score (the first N of the validation
    split; cost grows linearly)."""
    screen: float = Field(0.5, ge=0, le=1)
    """``pim_aware``/``pim``: broken-chip screen. The first chip scores the first quarter of
    ``val_images`` (at least 16) first; a network that keeps less than this fraction of its
    digital accuracy there (e.g. behind a 1-bit sense amplifier) gets that as its score,
    and nothing more is simulated (~90 % of such a score saved, nothing added to the
    others). 0 = off."""
    calibration_images: int = Field(64, ge=1)
    """``pim_aware``/``pim``: training images that calibrate the ADC ranges ("scale" mode);
    never the scored ones."""
    device: dict[str, Any] | None = None
    """PIM scoring: device fields simulated on top of each candidate's hardware (e.g.
    ``{variation_pct: 5, stuck_at_hrs: 0.01}``). ``None``: the ``evaluate.device`` section of
    a pipeline config (the chip the winners are judged on), else none."""
    adc: dict[str, Any] | None = None
    """PIM scoring: ADC fields simulated on top (e.g. ``{range_mode: fixed}``); ``None`` as for
    ``device`` (``evaluate.adc``)."""
    allow_blind_hardware: bool = False
    """Let a hardware-blind fidelity (``supernet``) search genes that change the accuracy on
    the crossbars (ADC, DAC, crossbar size, cell levels, ...): they are then chosen by cost
    alone. Off: such a config is refused."""
    bn_batches: int | None = Field(None, ge=1)
    """Training batches used to re-estimate BatchNorm statistics (``None``: scorer default)."""
    batch_size: int | None = Field(None, ge=1)
    """Batch size of scoring passes (``None``: scorer default)."""
    val_subset: int | None = Field(None, ge=1)
    """Supernet score on the first N validation images only (``None``: all; ``pim``
    fidelity: defaults to ``val_images``)."""
    mc_runs: int = Field(2, ge=1, le=1000)
    """``pim_aware``/``pim``: Monte-Carlo chips of device non-idealities per PIM score; the
    mean is the accuracy (one run suffices and is used when the chip has no random
    non-ideality)."""
    pim_seed: int = Field(0, ge=0)
    """Seed of the simulated chips (and of the synthetic proxy's jitter)."""
    synthetic_delay_s: float = Field(0.0, ge=0, le=60)
    """``synthetic``: pretend each new network takes this long to score (parallelism tests)."""
    synthetic_pim_aware: bool = False
    """``synthetic``: run the ``pim_aware`` multi-fidelity loop with a hardware-dependent
    variant of the proxy as the PIM score (tests, benchmarks)."""

    @field_validator("device", "adc")
    @classmethod
    def _overrides(cls, v: dict[str, Any] | None, info: Any) -> dict[str, Any] | None:
        if v is None:
            return v
        from crossnas.config.hardware import HardwareConfig

        section = info.field_name
        allowed = list(getattr(HardwareConfig.model_fields[section].annotation, "model_fields", {}))
        for k in v:
            if k not in allowed:
                raise ValueError(f"unknown {section} field {k!r}; allowed: {', '.join(allowed)}")
        try:
            HardwareConfig().with_updates(**{section: dict(v)})
        except ValueError as exc:
            first = (str(exc).strip().splitlines() or ["invalid"])[-1].strip()
            raise ValueError(f"{section}: {first}") from None
        return dict(v)

    @property
    def multi_fidelity(self) -> bool:
        """Whether the search runs the PIM-score phase after each generation."""
        return self.fidelity == "pim_aware" or (self.fidelity == "synthetic" and self.synthetic_pim_aware)


class SearchConfig(BaseModel):
    """The ``search:`` section: genome, objectives, evolution, constraints, storage policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["paper", "pareto"] = "paper"
    """``paper``: weighted fitness per ``w_acc``; ``pareto``: NSGA-II over accuracy and ``objectives``."""
    seed: int = Field(0, ge=0)
    w_acc: tuple[float, ...] = (0.99, 0.8)
    """Paper fitness weights; one evolution per value (they share evaluations). In pareto
    mode they pick the winners of ``best.json`` from the front."""
    objectives: tuple[SearchableMetric, ...] = ("edp_mJms",)
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
        blind = accuracy_genes(self.hardware_genes) if self.accuracy.fidelity == "supernet" else []
        if blind and not self.accuracy.allow_blind_hardware:
            raise ValueError(
                f"hardware_genes.{blind[0]}: accuracy.fidelity 'supernet' cannot see what {', '.join(blind)} "
                "do(es) to accuracy (chosen by cost alone); use accuracy.fidelity: pim_aware (default) or pim, "
                "or set accuracy.allow_blind_hardware: true"
            )
        return self
