#!/usr/bin/env python3
"""Trains the store's packing dictionary from the repository's synthetic samples.

Usage: python3 tools/make_pack_dictionary.py EHR_GATEWAY_BINARY OUT_FILE
Needs the `zstandard` package (pip install zstandard).

Why a dictionary: the store packs `messages.raw`, `cases.snapshot` and
`events.body` with zstd (gateway/store/src/packing.rs). A value of a few
hundred bytes to a few KB is too short for zstd to learn its own
repetitions or to pay for its own entropy tables, so most of what it wrote
was literals (segment names, field layouts, JSON keys) and a Huffman table
built and written for every frame. A trained dictionary supplies both:
content every frame may copy from, and entropy tables the frame reuses.

Why from our samples and nothing else: a dictionary trained on a practice's
traffic would hold fragments of patients' records that outlive retention's
purge of the messages they came from. This one is trained only on the
synthetic messages in `sample-messages/` (written for this project, no PHI),
the cases `ehr-gateway map` makes of them and the event envelopes the store
keeps for such cases, so it can ship in the binary.

The result is frozen once shipped: every value packed with it needs exactly
these bytes to be read back. The store pins its SHA-256 (a test), and a new
dictionary needs a new file, a new dictionary id and a new codec, never an
edit. This script records how dictionary 1 was made; running it again later
may give different bytes (the samples and the case schema move on).
"""

import json
import subprocess
import sys
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample-messages"
# The id written into every frame: decoding with another dictionary fails
# instead of producing wrong bytes. Ids below 32768 are reserved by zstd.
DICT_ID = 0x4D534F01
SIZE = 16 * 1024
LEVEL = 1  # the store's level (packing::LEVEL)
# Folders whose samples are documents a mapping profile of the same name reads.
PROFILE_OF = {"x12-278": "x12-278", "x12-278-tr3": "x12-278"}


def hl7_messages(path: Path) -> list[bytes]:
    """Each message of the file with `\\r` segment ends, as the listeners store it."""
    data = path.read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    parts = data.split(b"MSH|")
    return [b"MSH|" + p for p in parts[1:] if p.strip()]


def mapped_cases(binary: str, profile: Path, sample: Path) -> list[bytes]:
    """The compact case JSON `ehr-gateway map` prints for `sample` (none when
    the sample is one the profile refuses)."""
    run = subprocess.run(
        [binary, "map", "--profile", str(profile),
         "--received-at", "2026-01-05T09:30:00Z", str(sample)],
        capture_output=True, text=True, check=False,
    )
    decoder, text, i, found = json.JSONDecoder(), run.stdout, 0, []
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            break
        try:
            value, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            break
        found.append(json.dumps(value, separators=(",", ":")).encode())
    return found


def envelope(case: bytes, kind: str, n: int) -> bytes:
    """The CloudEvent envelope the store keeps for an event of `case`
    (`ops::event_head`: without `data`, `sequence` and the closing brace).
    The id is a made-up UUIDv7."""
    value = json.loads(case)
    practice = [value["practice"]] if value.get("practice") else []
    head = json.dumps({
        "specversion": "1.0",
        "id": f"0194a2b3-5c6d-7e8f-9a0b-{n:012x}",
        "source": "/".join(["/ehr-gateway", value["tenant"], *practice]),
        "type": f"org.ehr-gateway.case.{kind}",
        "subject": value["case_id"],
        "time": f"2026-01-05T09:{n % 60:02d}:00.125Z",
        "datacontenttype": "application/json",
    }, separators=(",", ":"))
    return head[:-1].encode()


def main() -> None:
    binary, target = sys.argv[1], Path(sys.argv[2])
    samples: list[bytes] = []
    cases: list[bytes] = []
    for path in sorted(SAMPLES.glob("*/*/*")):
        kind, folder = path.parent.parent.name, path.parent.name
        profile = ROOT / "mappings" / PROFILE_OF.get(folder, folder)
        if kind == "hl7v2":
            samples += hl7_messages(path)
        elif kind == "fhir":
            try:
                samples.append(json.dumps(json.loads(path.read_text()),
                                          separators=(",", ":")).encode())
            except ValueError:
                continue
        elif kind == "x12":
            samples.append(path.read_bytes().strip())
        else:
            continue
        if (profile / "profile.toml").is_file():
            cases += mapped_cases(binary, profile, path)
    kinds = ["created", "created", "updated", "decided"]
    samples += cases
    samples += [envelope(c, kinds[n % len(kinds)], n) for n, c in enumerate(cases)]
    trained = zstandard.train_dictionary(SIZE, samples, dict_id=DICT_ID,
                                         level=LEVEL, threads=1)
    target.write_bytes(trained.as_bytes())
    print(f"{target}: {target.stat().st_size} bytes from {len(samples)} samples "
          f"({len(cases)} cases)")


if __name__ == "__main__":
    main()
