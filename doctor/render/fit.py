"""``llmdoctor fit`` for people: the figures, then per device a verdict, a bar showing what
takes its memory, the layers that fit and the decode-speed band."""

from __future__ import annotations

from llmdoctor.knowledge.units import GiB, MiB

PARTS = (("weights", "W", "blue"), ("repack", "R", "cyan"), ("kv", "K", "magenta"), ("compute", "C", "yellow"),
         ("overhead", "O", "white"))


def size(value: float) -> str:
    return f"{value / GiB:.2f} GiB" if value >= GiB else f"{value / MiB:.0f} MiB"


def bar(device: dict, width: int, color: bool) -> str:
    capacity = max(device["free_bytes"], device["need"]["need"], 1)
    cells, used = [], 0
    for key, letter, style in PARTS:
        count = round(device["need"].get(key, 0) / capacity * width)
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
    lines.append("  assumed: " + ", ".join(report.settings.assumptions()))
    for note in report.notes:
        lines.append(f"  note: {note}")
    legend = "W weights, R repacked copies, K KV cache, C compute, O context+margin, . free"
    gpus = [d for d in report.devices if d["kind"] == "gpu"]
    if gpus:
        first = gpus[0]
        verdict = {"fits": "fits fully", "partial": "fits partly", "does not fit": "does not fit"}[first["verdict"]]
        head = (f"On the GPU{'s' if len(gpus) > 1 else ''}: {verdict}, --n-gpu-layers {first['n_gpu_layers']} of "
                f"{first['total_layers']}")
        lines.append("")
        lines.append(f"[bold]{head}[/bold]" if color else head)
        if first.get("largest_full_context") is not None:
            lines.append(f"  largest context with every layer on the GPU{'s' if len(gpus) > 1 else ''}: "
                         f"{first['largest_full_context']:,} tokens")
        speed = first.get("speed")
        if speed:
            lines.append(f"  decode: at most {speed['bound_tok_s']:g} tok/s from memory bandwidth; realistically "
                         f"{speed_range(speed)}"
                         + (" (RAM bandwidth assumed: thresholds.ram_bandwidth_gb_s)" if speed["cpu_bytes_per_token"]
                            else ""))
    for device in report.devices:
        lines.append("")
        if device["kind"] == "cpu":
            verdict = {"fits": "fits", "does not fit": "does not fit"}[device["verdict"]]
            head = f"{device['device']} ({size(device['free_bytes'])} free): {verdict}"
        else:
            mark = "" if device["kind"] == "host" or device.get("fits_here", True) else ": over"
            held = f"{device['layers_here']} layers" if device["layers_here"] else "the token embeddings and inputs"
            head = f"{device['device']} ({size(device['free_bytes'])} free): {held}{mark}"
        lines.append(f"[bold]{head}[/bold]" if color else head)
        lines.append(f"  {bar(device, width, color)} needs {size(device['need']['need'])}")
        speed = device.get("speed")
        if device["kind"] == "cpu" and speed:
            lines.append(f"  decode: at most {speed['bound_tok_s']:g} tok/s from memory bandwidth; realistically "
                         f"{speed_range(speed)} (RAM bandwidth assumed: thresholds.ram_bandwidth_gb_s)")
    if not color:
        lines.append("")
        lines.append(f"  bars: {legend}")
    return "\n".join(lines) + "\n"


def render_engine(result: dict, report) -> str:
    """llama.cpp's own projection (``--engine llama.cpp``) beside llmdoctor's, and which to trust."""
    lines = ["", "llama.cpp's own projection (llama-fit-params):"]
    if result.get("error"):
        lines.append(f"  not available: {result['error']}")
        return "\n".join(lines) + "\n"
    for device in result.get("devices", []):
        lines.append(f"  {device['name']}: {device['total_mib']:,} MiB = model {device['model_mib']:,} + context "
                     f"{device['context_mib']:,} + compute {device['compute_mib']:,}")
    if result.get("arguments"):
        lines.append(f"  it would run with: {result['arguments']}")
    if result.get("comparison"):
        lines.append(f"  {result['comparison']}")
    lines.append("  trust: llama.cpp's figures where they differ: they come from the build you run; "
                 "llmdoctor's model works without it, for files not downloaded yet and for other machines")
    return "\n".join(lines) + "\n"
