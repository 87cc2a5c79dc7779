"""Audio input devices as PortAudio lists them, and choosing one by index or by name.

``import sounddevice`` fails without the PortAudio library, so it happens only here, inside
functions, and becomes a one-line :class:`DeviceError` naming the package to install.
"""

from __future__ import annotations

from dataclasses import dataclass

from kwspi.errors import KwspiError

from kwspi.deploy.sources import SAMPLE_RATE


class DeviceError(KwspiError):
    """No usable input device: none present, none matching, or PortAudio missing or failing."""


@dataclass(frozen=True)
class InputDevice:
    """An audio input as PortAudio lists it.

    Attributes
    ----------
    index:
        PortAudio device index (what ``--device N`` takes).
    name:
        Device name (``--device`` matches a substring of it).
    channels:
        Maximum number of input channels.
    default_rate:
        The device's default sampling rate in Hz.
    is_default:
        Whether it is the default input device.
    """

    index: int
    name: str
    channels: int
    default_rate: float
    is_default: bool = False


def sounddevice_module():
    try:
        import sounddevice
    except OSError as e:  # raised by the import itself when libportaudio2 is missing
        raise DeviceError(f"cannot use the microphone: {e} (install it: sudo apt install libportaudio2)") from None
    return sounddevice


def list_input_devices() -> list[InputDevice]:
    """Every device with at least one input channel, in PortAudio's order."""
    sd = sounddevice_module()
    default = sd.default.device[0]
    return [
        InputDevice(d["index"], d["name"], d["max_input_channels"], d["default_samplerate"], d["index"] == default)
        for d in sd.query_devices()
        if d["max_input_channels"] > 0
    ]


def resolve_device(query, devices: list[InputDevice]) -> InputDevice:
    """Pick the device ``query`` names: ``None`` (default input), an index, or part of a name.

    A case-insensitive substring selects a device when exactly one name contains it (an
    exact name wins over substrings); otherwise the error lists the candidates.
    """
    if not devices:
        raise DeviceError("no audio input device found (plug in a microphone; `kwspi devices` lists inputs)")
    if query is None or str(query).strip() == "":
        default = [d for d in devices if d.is_default]
        if not default:
            raise DeviceError(f"no default input device; choose one with --device: {_names(devices)}")
        return default[0]
    text = str(query).strip()
    if text.lstrip("-").isdigit():
        match = [d for d in devices if d.index == int(text)]
        if not match:
            raise DeviceError(f"no input device with index {text}; inputs are: {_names(devices)}")
        return match[0]
    exact = [d for d in devices if d.name.lower() == text.lower()]
    match = exact or [d for d in devices if text.lower() in d.name.lower()]
    if not match:
        raise DeviceError(f"no input device matches {text!r}; inputs are: {_names(devices)} (see `kwspi devices`)")
    if len(match) > 1:
        raise DeviceError(f"several input devices match {text!r}: {_names(match)}; give the index or more of the name")
    return match[0]


def _names(devices) -> str:
    return "; ".join(f"[{d.index}] {d.name}" for d in devices)


def input_settings(sd, device: InputDevice, rate: int | None) -> tuple[int, int]:
    """(rate, channels) the device accepts: 16 kHz mono if possible, else its own rate."""
    rates = [rate] if rate else list(dict.fromkeys([SAMPLE_RATE, int(device.default_rate)]))
    last = None
    for channels in dict.fromkeys([1, min(2, device.channels)]):
        for r in rates:
            try:
                sd.check_input_settings(device.index, channels=channels, dtype="int16", samplerate=r)
                return r, channels
            except (sd.PortAudioError, ValueError) as e:
                last = e  # a busy device fails every combination: its error says so
    why = f" (last error: {one_line(last)})" if last is not None else ""
    raise DeviceError(
        f"input device [{device.index}] {device.name} accepts none of {rates} Hz with 1 or 2 channels{why}")


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__
