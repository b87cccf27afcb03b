"""Text domains read from files on this machine, cut into paragraphs, deduplicated and split.

A domain is a list of paths (files, folders, glob patterns). Each readable text file is split into
paragraphs (blank-line separated, long ones cut); paragraphs are deduplicated on a normalised form
(whitespace collapsed, lower case), and assigned to train or held-out by a hash of that form, so a
paragraph repeated across files (license texts repeat in hundreds of Debian copyright files) can never
sit in both splits. `exclude` removes paragraphs already used elsewhere (e.g. other domains' held-out
text from the pretraining corpus).
"""

from __future__ import annotations

import fnmatch
import glob
import gzip
import hashlib
import random
import re
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from lab_shared.errors import LabError

_ROFF_FONT = re.compile(r"\\f[BIRPC1-4]|\\f\(..|\\f\[[^\]]*\]")
_ROFF_ESC = re.compile(r"\\\(..|\\\[[^\]]*\]|\\[&|^~0 ]")
_PARA_SPLIT = re.compile(r"\n\s*\n")


@dataclass
class DomainSpec:
    """Where a text domain's files are. Paths may be files, folders (searched recursively) or globs."""

    name: str
    paths: list[str]
    include: list[str] = field(default_factory=lambda: ["*"])  # file-name globs inside folders
    exclude: list[str] = field(default_factory=list)  # path globs to skip (e.g. "*/test/*")
    max_bytes: int = 4_000_000  # text budget read from disk (files are shuffled first)
    test_fraction: float = 0.1

    @classmethod
    def from_dict(cls, d: dict) -> DomainSpec:
        """Build a user-declared domain from a task-sequence file entry (TOML/JSON table)."""
        if not isinstance(d, dict) or "name" not in d or "paths" not in d:
            raise LabError(f"a text domain needs 'name' and 'paths', got {d!r}")
        known = {"name", "paths", "include", "exclude", "max_bytes", "test_fraction"}
        extra = set(d) - known - {"kind"}
        if extra:
            raise LabError(f"text domain {d['name']!r}: unknown key(s) {sorted(extra)}")
        paths = d["paths"]
        paths = [paths] if isinstance(paths, str) else list(paths)
        spec = cls(**{k: v for k, v in d.items() if k in known and k != "paths"}, paths=paths)
        if not 0 < spec.test_fraction < 1:
            raise LabError(f"text domain {spec.name!r}: test_fraction must be in (0, 1)")
        return spec


@dataclass
class DomainText:
    """A domain's deduplicated paragraphs, split into train and held-out."""

    name: str
    train: list[str]
    test: list[str]
    stats: dict

    def test_hashes(self) -> set[str]:
        return {para_hash(p) for p in self.test}

    def all_hashes(self) -> set[str]:
        return {para_hash(p) for p in self.train} | self.test_hashes()


def stdlib_dir() -> Path:
    """The Python standard library folder of the running interpreter (the Code domain's source)."""
    return Path(sysconfig.get_paths()["stdlib"])


def builtin_domains() -> dict[str, DomainSpec]:
    """The default domains on a Debian machine: legal text, Python sources, and general docs."""
    return {
        "law": DomainSpec("law", ["/usr/share/common-licenses", "/usr/share/doc/*/copyright"]),
        "code": DomainSpec(
            "code",
            [str(stdlib_dir())],
            include=["*.py"],
            exclude=[
                "*/site-packages/*",
                "*/encodings/*",
                "*/test/*",
                "*/tests/*",
                "*/idle_test/*",
                "*/lib2to3/*",
            ],
        ),
        "general": DomainSpec(
            "general",
            ["/usr/share/doc", "/usr/share/man/man1", "/usr/share/man/man5", "/usr/share/man/man8"],
            include=["README*", "*.txt", "*.md", "*.rst", "NEWS*", "*.[158].gz", "*.txt.gz", "*.md.gz"],
            exclude=["*/copyright", "*/common-licenses/*", "*changelog*", "*/gcloud*"],
            max_bytes=8_000_000,
        ),
    }


def normalize(text: str) -> str:
    return " ".join(text.split()).lower()


def para_hash(text: str) -> str:
    return hashlib.sha1(normalize(text).encode("utf-8")).hexdigest()


def strip_roff(text: str) -> str:
    """Man page source to plain text: macro lines lose their macro, font and char escapes go."""
    out = []
    for line in text.splitlines():
        if line.startswith(('.\\"', "'\\\"")) or line.startswith(".\\}"):
            continue
        if line.startswith("."):
            parts = line[1:].split(None, 1)
            if not parts:
                out.append("")
                continue
            macro, rest = parts[0], (parts[1] if len(parts) > 1 else "")
            if macro in ("PP", "P", "LP", "sp", "br", "TP", "IP", "RS", "RE"):
                out.append("")
                if macro == "IP" and rest:
                    out.append(rest.split('"')[1] if rest.startswith('"') else rest.split()[0])
                continue
            if macro in ("SH", "SS", "B", "I", "BR", "IR", "RB", "RI", "BI", "IB", "TH", "Nm", "Nd", "Sh"):
                line = rest.replace('"', "")
            else:
                continue
        line = _ROFF_FONT.sub("", line)
        line = _ROFF_ESC.sub("", line).replace("\\-", "-").replace("\\e", "\\")
        out.append(line)
    return "\n".join(out)


def read_text_file(path: Path, max_bytes: int = 2_000_000) -> str:
    """Read a (possibly gzipped) text file; raise ValueError saying why it is not usable text."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read(max_bytes)
        else:
            with open(path, "rb") as f:
                data = f.read(max_bytes)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ValueError(f"unreadable ({e.__class__.__name__})") from e
    if not data.strip():
        raise ValueError("empty")
    if b"\x00" in data[:8192]:
        raise ValueError("binary, not text")
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") + sum(1 for c in text[:8192] if ord(c) < 32 and c not in "\n\r\t\f")
    if bad > 0.01 * len(text) + 2:
        raise ValueError("binary, not text")
    if re.search(r"\.[1-9][a-z]*(\.gz)?$", path.name) and "/man" in str(path):
        text = strip_roff(text)
    return text.replace("\r\n", "\n")


def paragraphs(text: str, min_chars: int = 16, max_chars: int = 1200) -> list[str]:
    """Blank-line separated paragraphs; long ones cut at line ends near max_chars; tiny ones dropped."""
    out = []
    for para in _PARA_SPLIT.split(text):
        para = para.strip("\n")
        while len(para) > max_chars:
            cut = para.rfind("\n", 0, max_chars)
            cut = cut if cut > max_chars // 4 else max_chars
            head, para = para[:cut], para[cut:].lstrip("\n")
            if len(head.strip()) >= min_chars:
                out.append(head)
        if len(para.strip()) >= min_chars:
            out.append(para)
    return out


def _matches(path: Path, spec: DomainSpec) -> bool:
    s = str(path)
    return any(fnmatch.fnmatch(path.name, g) for g in spec.include) and not any(
        fnmatch.fnmatch(s, g) for g in spec.exclude
    )


def list_files(spec: DomainSpec) -> list[Path]:
    """Every candidate file of a domain; explicit problems (missing path, empty glob) are errors."""
    files: list[Path] = []
    for raw in spec.paths:
        pattern = str(Path(raw).expanduser())
        hits = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if glob.has_magic(pattern) and not hits:
            raise LabError(f"text domain {spec.name!r}: pattern {raw!r} matches no file")
        for hit in hits:
            p = Path(hit)
            if not p.exists():
                raise LabError(f"text domain {spec.name!r}: path {raw!r} does not exist")
            if p.is_dir():
                found = [q for q in sorted(p.rglob("*")) if q.is_file() and _matches(q, spec)]
                if not found:
                    raise LabError(f"text domain {spec.name!r}: folder {str(p)!r} has no readable text files")
                files.extend(found)
            else:
                files.append(p)  # explicit files and glob hits are taken whatever their name
    return list(dict.fromkeys(files))


def load_domain(spec: DomainSpec, seed: int = 0, exclude: set[str] | None = None) -> DomainText:
    """Read, paragraph, deduplicate and split one domain (deterministic for a given seed)."""
    files = list_files(spec)
    explicit = {Path(p).expanduser() for p in spec.paths if not glob.has_magic(p) and Path(p).is_file()}
    random.Random(seed).shuffle(files)
    exclude = exclude or set()
    seen: set[str] = set()
    train: list[str] = []
    test: list[str] = []
    read_bytes = skipped = dups = n_read = 0
    for path in files:
        if read_bytes >= spec.max_bytes:
            break
        try:
            text = read_text_file(path)
        except ValueError as e:
            if path in explicit:
                raise LabError(f"text domain {spec.name!r}: file {str(path)!r} is {e}") from None
            skipped += 1
            continue
        read_bytes += len(text)
        n_read += 1
        for para in paragraphs(text):
            h = para_hash(para)
            if h in seen or h in exclude:
                dups += 1
                continue
            seen.add(h)
            (test if int(h[:8], 16) % 10_000 < spec.test_fraction * 10_000 else train).append(para)
    if not train and not test:
        where = ", ".join(spec.paths)
        raise LabError(f"text domain {spec.name!r}: no readable text in {where} ({skipped} files skipped)")
    if not train or not test:
        raise LabError(
            f"text domain {spec.name!r}: too little text to split ({len(train)} train / {len(test)} held-out "
            "paragraphs); add files"
        )
    stats = {
        "files_read": n_read,
        "bytes_read": read_bytes,
        "files_skipped": skipped,
        "duplicates_removed": dups,
        "train_paragraphs": len(train),
        "test_paragraphs": len(test),
        "train_chars": sum(map(len, train)),
        "test_chars": sum(map(len, test)),
    }
    return DomainText(spec.name, train, test, stats)
