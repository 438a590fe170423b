"""The device library: one table of memory-cell technologies shared by the cost model
(:mod:`crossnas.hw`) and the PIM accuracy simulator (:mod:`crossnas.pimsim`).

``device.type`` in a hardware config selects a :class:`DevicePreset`; every field of the
``device`` section that is not given explicitly takes the preset's value, an explicit
value overrides it. The figures are representative published values, not a fit to any
one chip; each preset names its sources. Units follow the field names (``_ohm``,
``_um2``, ``_V``, ``_ns``, ``_J``, ``_W``, ``_s``; ``_pct`` are percent).

Noise conventions (the simulator's, see ``docs/pim_simulator.md``):

* ``variation_pct``: programming error relative to the cell's own conductance,
  ``g (1 + s N)``, ``s = variation_pct / 100`` (MNSIM's ``Device_Variation``).
* ``prog_noise_pct``: state-independent programming error, ``sigma = prog_noise_pct / 100
  * G_max`` per cell (drawn once per programmed chip).
* ``noise_model = "pcm"``: programming error follows the state-dependent polynomial of the
  PCM model of Nandakumar et al. (2019) as used by IBM's aihwkit
  (``sigma(g) = max(c0 + c1 g/gmax + c2 (g/gmax)^2, 0)``, in uS of a 25 uS device), read
  noise is 1/f (grows with ``log(t)``) and the drift exponent depends on the state.
* ``read_noise_pct``: per-read Gaussian noise, ``sigma = read_noise_pct / 100 * G_max``
  for ``gaussian`` devices.
* drift: ``G(t) = G(t0) (t / t0) ** (-nu)`` for ``t > t0``, ``nu ~ N(drift_nu,
  drift_nu_std)`` per cell (clipped at 0), at ``time_s`` seconds after programming.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

DEVICE_TYPES = ("RRAM", "PCM", "FeFET", "SRAM")


@dataclass(frozen=True)
class DevicePreset:
    """Figures of one memory-cell technology (see the module docstring for units)."""

    description: str
    sources: tuple[str, ...]
    tech_nm: int
    cell_area_um2: float
    read_voltage_V: float
    read_latency_ns: float
    read_energy_J: float
    """Energy of one cell read with an active input (cost model, ``corrected`` mode)."""
    leakage_W: float
    """Static power per cell (volatile cells; 0 for non-volatile ones)."""
    levels: int
    max_levels: int
    """The most conductance levels per cell the technology supports."""
    hrs_ohm: float
    lrs_ohm: float
    variation_pct: float
    prog_noise_pct: float
    read_noise_pct: float
    noise_model: str
    drift_nu: float
    drift_nu_std: float
    drift_t0_s: float

    def as_fields(self) -> dict[str, object]:
        """The preset's values of the ``device`` config fields."""
        skip = {"description", "sources", "max_levels"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


DEVICE_PRESETS: dict[str, DevicePreset] = {
    "RRAM": DevicePreset(
        description="MNSIM-2.0's default NVM cell (1T1R RRAM). Its noise model is MNSIM's: only the "
        "relative variation you set; set prog_noise_pct / read_noise_pct / drift_nu for a measured device "
        "(e.g. ~1-3 % of G_max programming error for HfOx, Wan et al. 2022)",
        sources=("MNSIM-2.0 SimConfig.ini (Device_Area, Read_Voltage, Read_Latency, Read_Energy, "
                 "Device_Resistance)", "Wan et al., Nature 608, 504 (2022) (NeuRRAM) for noise magnitudes"),
        tech_nm=130, cell_area_um2=1.44, read_voltage_V=0.15, read_latency_ns=3.16, read_energy_J=1.12e-15,
        leakage_W=0.0, levels=2, max_levels=16, hrs_ohm=1e6, lrs_ohm=1e4,
        variation_pct=0.0, prog_noise_pct=0.0, read_noise_pct=0.0, noise_model="gaussian",
        drift_nu=0.0, drift_nu_std=0.0, drift_t0_s=20.0,
    ),
    "PCM": DevicePreset(
        description="Phase-change memory, 1T1R, G_max 25 uS; state-dependent programming noise, 1/f read "
        "noise and conductance drift as in aihwkit's PCM model",
        sources=("Nandakumar et al., J. Appl. Phys. 2019 / IEEE ISCAS 2020 (PCM statistics)",
                 "Joshi et al., Nat. Commun. 11, 2473 (2020)", "IBM aihwkit PCMLikeNoiseModel (figures only)",
                 "Le Gallo et al., Nat. Electron. 6, 680 (2023) (HERMES, 14 nm PCM core)"),
        tech_nm=90, cell_area_um2=0.4, read_voltage_V=0.2, read_latency_ns=10.0, read_energy_J=5.0e-15,
        leakage_W=0.0, levels=4, max_levels=16, hrs_ohm=4e6, lrs_ohm=4e4,
        variation_pct=0.0, prog_noise_pct=0.0, read_noise_pct=0.0, noise_model="pcm",
        drift_nu=0.06, drift_nu_std=0.02, drift_t0_s=20.0,
    ),
    "FeFET": DevicePreset(
        description="Ferroelectric FET (HfZrO2), one transistor per cell, multi-level by partial polarisation; "
        "device-to-device threshold spread dominates, slow depolarisation drift",
        sources=("Jerry et al., IEDM 2017 (FeFET analog synapse)", "Ni et al., VLSI 2018",
                 "DNN+NeuroSim V2.0 FeFET parameters (Peng et al., TCAD 2021)"),
        tech_nm=28, cell_area_um2=0.03, read_voltage_V=0.1, read_latency_ns=5.0, read_energy_J=1.0e-15,
        leakage_W=0.0, levels=4, max_levels=32, hrs_ohm=1e7, lrs_ohm=1e5,
        variation_pct=2.0, prog_noise_pct=3.0, read_noise_pct=0.5, noise_model="gaussian",
        drift_nu=0.01, drift_nu_std=0.005, drift_t0_s=20.0,
    ),
    "SRAM": DevicePreset(
        description="8T SRAM compute cell (1 bit, volatile, digital storage: no programming noise or drift; "
        "leaks while powered)",
        sources=("Si et al., ISSCC 2019 / Jiang et al., VLSI 2019 (8T SRAM CIM)",
                 "DNN+NeuroSim V2.0 SRAM parameters (Peng et al., TCAD 2021)"),
        tech_nm=22, cell_area_um2=0.2, read_voltage_V=0.8, read_latency_ns=1.0, read_energy_J=2.0e-15,
        leakage_W=2.0e-11, levels=2, max_levels=2, hrs_ohm=1e9, lrs_ohm=1e4,
        variation_pct=0.0, prog_noise_pct=0.0, read_noise_pct=0.0, noise_model="gaussian",
        drift_nu=0.0, drift_nu_std=0.0, drift_t0_s=20.0,
    ),
}

PRESET_FIELDS: tuple[str, ...] = tuple(DEVICE_PRESETS["RRAM"].as_fields())
"""The ``device`` config fields a preset fills."""


def device_preset(name: str) -> DevicePreset:
    """The preset of a device type (``KeyError`` message lists the allowed types)."""
    try:
        return DEVICE_PRESETS[name]
    except KeyError:
        raise KeyError(f"device.type: {name!r}; allowed: {', '.join(DEVICE_TYPES)}") from None


def retype(device: dict[str, object], new_type: str) -> dict[str, object]:
    """A ``device`` section's values switched to another type.

    Fields equal to the old type's preset are taken as preset-derived and dropped (the new
    preset fills them); fields that differ were set explicitly and are kept.
    """
    old = DEVICE_PRESETS.get(str(device.get("type", "RRAM")))
    out = dict(device)
    if old is not None:
        for name, value in old.as_fields().items():
            if name in out and out[name] == value:
                del out[name]
    out["type"] = new_type
    return out
