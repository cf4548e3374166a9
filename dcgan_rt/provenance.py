"""Generated images say what they are: synthetic, made by dcgan-rt, from which model, seed and index.

Core tier (standard library). A data set of generated faces must never pass for real
photos, so every PNG `generate` writes (files and the PNGs inside tar shards) carries
text chunks, and manifest.json (all formats; npy shards hold bare arrays) says the same:

    Software               dcgan-rt 0.1.0
    Description            Synthetic image made by dcgan-rt (a GAN); not a photograph.
    dcgan_rt.synthetic     true
    dcgan_rt.model_sha256  sha256 of the generator's weights (manifest model.weights_sha256:
                           generator.safetensors, or the weights an .onnx/.engine was exported
                           from), so every backend of one model writes the same bytes
    dcgan_rt.seed          S
    dcgan_rt.index         i          (per image)
    dcgan_rt.label         the label  (per image, conditional models only)
    XML:com.adobe.xmp      XMP with IPTC's DigitalSourceType "trainedAlgorithmicMedia", the
                           field photo tools and platforms read to label AI-generated images
                           (a compressed iTXt chunk)

Encoding PNGs is what bounds `generate`, so the chunks that are the same for every
image of a job are built once (`PngText.constant`, 540 bytes) and written right after
the header; per image only the index (and label) chunk is packed. Measured with
benchmarks/bench_png_provenance.py (docs/generate.md).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

from dcgan_rt import __version__

SYNTHETIC_NOTE = "Synthetic image made by dcgan-rt (a GAN); not a photograph."
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
XMP_KEYWORD = "XML:com.adobe.xmp"
_INDEX_HEAD = b"tEXtdcgan_rt.index\x00"  # chunk type + keyword: the CRC of this part is computed once
_INDEX_CRC = zlib.crc32(_INDEX_HEAD)
_XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
    f'Iptc4xmpExt:DigitalSourceType="{DIGITAL_SOURCE_TYPE}"/></rdf:RDF></x:xmpmeta>'
)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def text_chunk(keyword: str, text: str) -> bytes:
    """A tEXt chunk (Latin-1 keyword and text, as the PNG specification has them; text
    outside Latin-1 goes in an iTXt chunk instead)."""
    try:
        return png_chunk(b"tEXt", keyword.encode("latin-1") + b"\x00" + text.encode("latin-1"))
    except UnicodeEncodeError:
        return itxt_chunk(keyword, text)


def itxt_chunk(keyword: str, text: str, compress: bool = False) -> bytes:
    """An iTXt chunk (UTF-8 text, no language tag), zlib-compressed if asked."""
    data = text.encode("utf-8")
    flag = b"\x01\x00" if compress else b"\x00\x00"
    return png_chunk(b"iTXt", keyword.encode("latin-1") + b"\x00" + flag + b"\x00\x00"
                     + (zlib.compress(data, 9) if compress else data))


def label_text(label: Any) -> str:
    """A class index as its number ("7"), an attribute vector as its entries ("0,1,1")."""
    if hasattr(label, "__len__") and not isinstance(label, str):
        return ",".join(str(int(v)) for v in label)
    return str(int(label)) if hasattr(label, "__index__") else str(label)


@dataclass(frozen=True)
class Provenance:
    """What every image of one generate job says about itself."""

    model_sha256: str  # of the weights (see the module docstring)
    seed: int
    tool_version: str = __version__

    def text(self) -> dict[str, str]:
        """The job-wide text entries, as PNG keywords."""
        return {
            "Software": f"dcgan-rt {self.tool_version}",
            "Description": SYNTHETIC_NOTE,
            "dcgan_rt.synthetic": "true",
            "dcgan_rt.model_sha256": self.model_sha256,
            "dcgan_rt.seed": str(self.seed),
        }

    def to_manifest(self) -> dict[str, Any]:
        """manifest.json's "provenance": the same statement for every format."""
        return {"synthetic": True, "made_by": f"dcgan-rt {self.tool_version}", "note": SYNTHETIC_NOTE,
                "digital_source_type": DIGITAL_SOURCE_TYPE,
                "png_text": sorted([*self.text(), "dcgan_rt.index", "dcgan_rt.label (conditional models)",
                                    XMP_KEYWORD])}


class PngText:
    """The provenance chunks of one job's PNGs: the constant part built once."""

    def __init__(self, provenance: Provenance):
        self.provenance = provenance
        self.constant = b"".join(text_chunk(k, v) for k, v in provenance.text().items()) + itxt_chunk(
            XMP_KEYWORD, _XMP, compress=True)

    def chunks(self, index: int, label: Any = None) -> bytes:
        """The per-image chunks of image `index` (and its label, when the model is conditional);
        `constant` goes before them."""
        digits = b"%d" % index
        out = b"".join((struct.pack(">I", len(_INDEX_HEAD) - 4 + len(digits)), _INDEX_HEAD, digits,
                        struct.pack(">I", zlib.crc32(digits, _INDEX_CRC))))
        if label is not None:
            out += text_chunk("dcgan_rt.label", label_text(label))
        return out

    def for_batch(self, indices: Sequence[int], labels: Sequence[Any] | None = None) -> list[bytes]:
        if labels is None:
            return [self.chunks(i) for i in indices]
        return [self.chunks(i, label) for i, label in zip(indices, labels)]
