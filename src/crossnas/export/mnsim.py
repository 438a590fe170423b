"""MNSIM-2.0 inputs: the layer list + per-layer quantize entries, and a SimConfig.ini.

Users can feed these to MNSIM to cross-check crossnas's cost figures.

MNSIM has no epitome layers (EPIM): a conv stored as an epitome is written as its
equivalent dense layer (the ``epitome`` entry dropped; the expanded kernel
``W[o, i] = E[o mod E_out, i mod E_in]`` computes the same function, and quantized per
output channel it has the same integers), and :func:`epitome_note` says which layers
those are: MNSIM's figures for them are those of the dense layer (all of ``W`` on the
crossbars), not crossnas's epitome figures (only ``E``).
"""

from __future__ import annotations

from typing import Any

from crossnas.config.hardware import ADC_PRESETS, DAC_PRESETS, HardwareConfig

# MNSIM's quantize entries carry a fixed-point shift; MNSIM's hardware model ignores it.
_POINT_SHIFT = -2


def network_to_mnsim(network: dict[str, Any]) -> dict[str, Any]:
    """Splits our network dict into MNSIM's ``layers`` and ``quantize_config`` lists
    (epitome convs become their equivalent dense layers, module docstring)."""
    layers, quant = [], []
    for layer in network["layers"]:
        d = {k: v for k, v in layer.items() if k not in ("weight_bit", "activation_bit", "epitome")}
        layers.append(d)
        quant.append({"weight_bit": int(layer.get("weight_bit", 9)), "activation_bit": int(layer.get("activation_bit", 9)),
                      "point_shift": _POINT_SHIFT})
    return {"input_shape": network.get("input_shape"), "layers": layers, "quantize_config": quant}


def epitome_note(network: dict[str, Any]) -> str | None:
    """A note naming the epitome convs exported as dense layers (``None`` when there are none)."""
    wrapped = [(i, layer["epitome"]) for i, layer in enumerate(network["layers"]) if layer.get("epitome")]
    if not wrapped:
        return None
    items = ", ".join(f"layers[{i}] (out_wrap {e.get('out_wrap', 1)}, in_wrap {e.get('in_wrap', 1)})"
                      for i, e in wrapped)
    return ("MNSIM has no epitome layers (EPIM). These convs are stored as epitomes in crossnas and are "
            f"exported as their equivalent dense layers: {items}. MNSIM's figures for them are those of the "
            "dense layer (the whole kernel on the crossbars); crossnas stores only the epitome "
            "(crossnas hw on the crossnas network dict, or crossnas evaluate, gives those figures).")


def _conv(c: Any, prefix: str) -> list[str]:
    presets = ADC_PRESETS if prefix == "ADC" else DAC_PRESETS
    figures = (c.bits, c.area_um2, c.power_W, c.sample_rate_GSps)
    if c.choice is not None and presets.get(c.choice) == figures:
        return [f"{prefix}_Choice = {c.choice}", f"{prefix}_Area = 0", f"{prefix}_Precision = 0",
                f"{prefix}_Power = 0", f"{prefix}_Sample_Rate = 0"]
    rate = c.sample_rate_GSps * 1e9 if prefix == "ADC" else c.sample_rate_GSps
    return [f"{prefix}_Choice = -1", f"{prefix}_Area = {c.area_um2}", f"{prefix}_Precision = {c.bits}",
            f"{prefix}_Power = {c.power_W}", f"{prefix}_Sample_Rate = {rate}"]


def hardware_to_mnsim_ini(hw: HardwareConfig) -> str:
    """A SimConfig.ini holding ``hw`` (keys MNSIM's hardware model reads; others at MNSIM defaults)."""
    d, x, t, c, pe = hw.device, hw.crossbar, hw.tile, hw.chip, hw.pe
    if d.levels == 2:
        resistance = f"{d.hrs_ohm:g},{d.lrs_ohm:g}"
    else:  # MNSIM wants one resistance per level: spread conductance linearly
        g0, g1 = 1 / d.hrs_ohm, 1 / d.lrs_ohm
        resistance = ",".join(f"{1 / (g0 + (g1 - g0) * i / (d.levels - 1)):g}" for i in range(d.levels))
    buffer_choice = {"SRAM": 1, "DRAM": 2, "RRAM": 3}[c.buffer_type]
    lines = [
        "; written by crossnas export --format mnsim",
        "[Device level]",
        f"Device_Tech = {d.tech_nm}",
        f"Device_Type = {'NVM' if d.type == 'RRAM' else 'SRAM'}",
        f"Device_Area = {d.cell_area_um2}",
        "Read_Level = 2",
        f"Read_Voltage = 0,{d.read_voltage_V}",
        "Write_Level = 2",
        "Write_Voltage = 0,3",
        f"Read_Latency = {d.read_latency_ns}",
        "Write_Latency = 10",
        f"Device_Level = {d.levels}",
        f"Device_Resistance = {resistance}",
        f"Device_Variation = {d.variation_pct:g}",
        f"Device_SAF = {100 * d.stuck_at_hrs:g},{100 * d.stuck_at_lrs:g}",
        f"Read_Energy = {d.read_energy_J:g}",
        "Write_Energy = 1.6e-15",
        "",
        "[Crossbar level]",
        f"Xbar_Size = {x.rows},{x.cols}",
        f"Subarray_Size = {x.effective_subarray_rows}",
        f"Cell_Type = {x.cell_type}",
        f"Transistor_Tech = {d.tech_nm}",
        "Wire_Resistance = -1",
        "Wire_Capacity = -1",
        "Load_Resistance = -1",
        "Area_Calculation = 0",
        "",
        "[Interface level]",
        *_conv(hw.dac, "DAC"),
        *_conv(hw.adc, "ADC"),
        "ADC_Interval_Thres = -1",
        "Logic_Op = -1",
        "",
        "[Process element level]",
        "PIM_Type = 0",
        f"Xbar_Polarity = {pe.polarity}",
        "Sub_Position = 0",
        f"Group_Num = {pe.groups}",
        f"DAC_Num = {pe.dacs_per_subarray}",
        f"ADC_Num = {pe.adcs_per_subarray}",
        "PE_inBuf_Size = 0",
        "PE_inBuf_Area = 0",
        "",
        "[Digital module]",
        f"Digital_Frequency = {c.digital_frequency_MHz:g}",
        "Adder_Tech = 45", "Adder_Area = 0", "Adder_Power = 0",
        "Multiplier_Tech = 45", "Multiplier_Area = 0", "Multiplier_Power = 0",
        "ShiftReg_Tech = 65", "ShiftReg_Area = 0", "ShiftReg_Power = 0",
        "Reg_Tech = 45", "Reg_Area = 0", "Reg_Power = 0",
        "JointModule_Tech = 45", "JointModule_Area = 0", "JointModule_Power = 0",
        "",
        "[Tile level]",
        f"PE_Num = {t.pe_rows},{t.pe_cols}",
        "Pooling_shape = 3,3",
        f"Pooling_unit_num = {t.pooling_units}",
        f"Pooling_Tech = {t.pooling_tech_nm}",
        "Pooling_area = 0",
        "Tile_Adder_Num = 0", "Tile_Adder_Level = 0", "Tile_ShiftReg_Num = 0", "Tile_ShiftReg_Level = 0",
        f"Inter_Tile_Bandwidth = {t.inter_tile_bandwidth_Gbps:g}",
        f"Intra_Tile_Bandwidth = {t.intra_tile_bandwidth_Gbps:g}",
        "Tile_outBuf_Size = 0", "Tile_outBuf_Area = 0", "DFU_Buf_Size = 0", "DFU_Buf_Area = 0",
        "",
        "[Architecture level]",
        f"Buffer_Choice = {buffer_choice}",
        f"Buffer_Technology = {c.buffer_tech_nm}",
        "Buffer_ReadPower = 0", "Buffer_WritePower = 0",
        f"Buffer_Bitwidth = {c.buffer_bitwidth}",
        "LUT_Capacity = 1", "LUT_Area = 0", "LUT_Power = 0", "LUT_Bandwidth = 0",
        f"Tile_Connection = {c.tile_connection}",
        f"Tile_Num = {c.tile_rows},{c.tile_cols}",
        "",
        "[Algorithm Configuration]",
        "Weight_Polarity = 1",
        "Simulation_Level = 0",
        "NoC_enable = 0",
        "",
    ]
    return "\n".join(lines)
