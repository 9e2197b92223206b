"""``llmdoctor fit`` for people: the figures, then per device a verdict, a bar showing what
takes its memory, the layers that fit and the decode-speed band."""

from __future__ import annotations

GiB = 1024**3
MiB = 1024**2
PARTS = (("weights", "W", "blue"), ("kv", "K", "magenta"), ("compute", "C", "yellow"), ("overhead", "O", "white"))


def size(value: float) -> str:
    return f"{value / GiB:.2f} GiB" if value >= GiB else f"{value / MiB:.0f} MiB"


def bar(device: dict, width: int, color: bool) -> str:
    capacity = max(device["free_bytes"], device["need"]["need"], 1)
    cells, used = [], 0
    for key, letter, style in PARTS:
        count = round(device["need"][key] / capacity * width)
        used += count
        cells.append(f"[{style}]{'█' * count}[/{style}]" if color else letter * count)
    free_cells = max(0, round(device["free_bytes"] / capacity * width) - used)
    over = device["need"]["need"] > device["free_bytes"]
    tail = ("[dim]" + "░" * free_cells + "[/dim]") if color else "." * free_cells
    return "|" + "".join(cells) + tail + "|" + (" over!" if over else "")


def speed_range(speed: dict) -> str:
    """'4.1-6.2 tok/s', or 'under 0.1 tok/s' where rounding would print a range of zeros."""
    low, high = speed["realistic_tok_s"]
    if high < 0.1:
        return "under 0.1 tok/s"
    return f"{low:g}-{high:g} tok/s" if low != high else f"about {low:g} tok/s"


def render_fit(report, color: bool = False, width: int = 40) -> str:
    spec = report.model
    lines = []
    title = f"{spec.name} — {spec.source}, {spec.arch} {spec.quantization}".rstrip()
    if color:  # names come from the file: never markup, never control characters
        from rich.markup import escape

        from llmdoctor.render.safe_text import neutralise

        title = escape(neutralise(title))
    lines.append(f"[bold]{title}[/bold]" if color else title)
    if spec.estimate:
        lines.append("  a rough estimate from the name alone: give a GGUF file, a folder or org/repo for exact figures")
    trained = (f"assumed: {spec.n_layer} layers, {spec.ctx_train:,} tokens of context" if spec.estimate
               else f"{spec.n_layer} layers, trained for {spec.ctx_train:,} tokens")
    lines.append(f"  {trained}"
                 + (f", {spec.expert_used} of {spec.expert_count} experts active" if spec.expert_count else "")
                 + (f", sliding window {spec.sliding_window:,} on {sum(spec.swa_layers)} layers"
                    if spec.sliding_window and any(spec.swa_layers) else "")
                 + (f"; read {spec.bytes_read / MiB:.1f} MiB of headers" if spec.bytes_read else ""))
    lines.append(f"  weights {size(report.weights)} · KV cache {size(report.kv)} ({report.ctx:,} tokens, "
                 f"{report.kv_type}) · compute buffer {size(report.compute)} · per GPU: CUDA context 450 MiB + "
                 "margin 1 GiB")
    for note in report.notes:
        lines.append(f"  note: {note}")
    legend = "W weights, K KV cache, C compute, O context+margin, . free"
    for device in report.devices:
        lines.append("")
        verdict = {"fits": "fits fully", "partial": "fits partly", "does not fit": "does not fit"}[device["verdict"]]
        head = f"{device['device']} ({size(device['free_bytes'])} free): {verdict}"
        if device["kind"] == "gpu":
            head += f", --n-gpu-layers {device['n_gpu_layers']} of {device['total_layers']}"
        lines.append(f"[bold]{head}[/bold]" if color else head)
        lines.append(f"  {bar(device, width, color)} needs {size(device['need']['need'])}")
        if device["kind"] == "gpu" and device.get("largest_full_context") is not None:
            lines.append(f"  largest context fully on this GPU: {device['largest_full_context']:,} tokens")
        speed = device.get("speed")
        if speed:
            lines.append(f"  decode: at most {speed['bound_tok_s']:g} tok/s from memory bandwidth; realistically "
                         f"{speed_range(speed)}"
                         + (" (RAM bandwidth assumed: thresholds.ram_bandwidth_gb_s)" if device["kind"] == "cpu" or
                            speed["cpu_bytes_per_token"] else ""))
    if not color:
        lines.append("")
        lines.append(f"  bars: {legend}")
    return "\n".join(lines) + "\n"
