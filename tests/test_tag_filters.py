"""Finding content by a tag's presence (any value) or a value's prefix:
``keep.find(has_tags=, tag_prefixes=)`` and ``datakeep ls --tag key`` / ``--tag key=prefix*``;
and ``datakeep info`` by an alias."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

import datakeep
from datakeep.errors import InvalidInput
from datakeep.keep import Keep

from .conftest import init_args, run_cli


def _put_tagged(keep: Keep) -> dict[str, str]:
    """name -> digest of contents with tags to filter on."""
    tagged = {
        "run-2024a": {"run": "2024-01-05", "owner": "ana"},
        "run-2024b": {"run": "2024-11-30"},
        "run-2025": {"run": "2025-02-01", "owner": "bo"},
        "upper": {"run": "RUN-2024"},
        "percent": {"discount": "50%off"},
        "five-hundred": {"discount": "500"},
        "underscore": {"code": "a_b"},
        "axb": {"code": "axb"},
        "accent": {"city": "é-ville"},
        "empty": {"note": ""},
        "untagged": {},
    }
    return {name: keep.put(name.encode(), tags=tags).digest for name, tags in tagged.items()}


def _names(keep: Keep, digests: dict[str, str], **criteria: object) -> set[str]:
    by_digest = {d: n for n, d in digests.items()}
    page = keep.find(limit=1000, **criteria)  # type: ignore[arg-type]
    return {by_digest[c.digest] for c in page.items}


def test_find_by_tag_presence_and_prefix(keep: Keep) -> None:
    d = _put_tagged(keep)
    assert _names(keep, d, has_tags=["owner"]) == {"run-2024a", "run-2025"}
    assert _names(keep, d, has_tags=["run", "owner"]) == {"run-2024a", "run-2025"}
    assert _names(keep, d, has_tags=["note"]) == {"empty"}  # an empty value is a value
    assert _names(keep, d, has_tags=["nobody"]) == set()
    assert _names(keep, d, tag_prefixes={"run": "2024-"}) == {"run-2024a", "run-2024b"}
    assert _names(keep, d, tag_prefixes={"run": "2024-01-05"}) == {"run-2024a"}  # whole value
    assert _names(keep, d, tag_prefixes={"run": ""}) == {
        "run-2024a",
        "run-2024b",
        "run-2025",
        "upper",
    }
    # prefix and presence and exact values together: all must hold
    assert _names(keep, d, tag_prefixes={"run": "202"}, has_tags=["owner"]) == {
        "run-2024a",
        "run-2025",
    }
    assert _names(keep, d, tags={"owner": "ana"}, tag_prefixes={"run": "2024"}) == {"run-2024a"}
    assert _names(keep, d, tags={"owner": "bo"}, tag_prefixes={"run": "2024"}) == set()


def test_prefixes_are_literal_and_case_sensitive(keep: Keep) -> None:
    d = _put_tagged(keep)
    assert _names(keep, d, tag_prefixes={"run": "run"}) == set()  # not "RUN-2024"
    assert _names(keep, d, tag_prefixes={"run": "RUN"}) == {"upper"}
    assert _names(keep, d, tag_prefixes={"discount": "50%"}) == {"percent"}  # not a wildcard
    assert _names(keep, d, tag_prefixes={"discount": "50"}) == {"percent", "five-hundred"}
    assert _names(keep, d, tag_prefixes={"code": "a_"}) == {"underscore"}
    assert _names(keep, d, tag_prefixes={"city": "é"}) == {"accent"}
    assert _names(keep, d, tag_prefixes={"city": "e"}) == set()


def test_prefix_finds_page_by_digest(keep: Keep) -> None:
    digests = {
        keep.put(f"item {i}".encode(), tags={"batch": f"b-{i % 2}"}).digest for i in range(7)
    }
    keep.put(b"other", tags={"batch": "c-0"})
    seen: list[str] = []
    after = None
    while True:
        page = keep.find(tag_prefixes={"batch": "b-"}, limit=3, after=after)
        seen += [c.digest for c in page.items]
        if page.next is None:
            break
        after = page.next
    assert seen == sorted(digests)


def test_bad_tag_filters_are_refused(keep: Keep) -> None:
    with pytest.raises(InvalidInput, match="list of tag names"):
        keep.find(has_tags="owner")
    with pytest.raises(InvalidInput, match="invalid tag name"):
        keep.find(has_tags=["a=b"])
    with pytest.raises(InvalidInput, match="invalid tag name"):
        keep.find(has_tags=[""])
    with pytest.raises(InvalidInput, match="string value"):
        keep.find(tag_prefixes={"run": 2024})  # type: ignore[dict-item]


def test_async_find_by_presence_and_prefix(tmp_path: Path, index_url: str | None) -> None:
    with datakeep.init(tmp_path, index=index_url) as keep:
        d = _put_tagged(keep)

    async def main() -> None:
        async with datakeep.open_async(tmp_path) as akeep:
            page = await akeep.find(has_tags=["owner"], tag_prefixes={"run": "2025"})
            assert [c.digest for c in page.items] == [d["run-2025"]]
            with pytest.raises(InvalidInput):
                await akeep.find(has_tags="owner")

    asyncio.run(main())


@pytest.fixture
def project(tmp_path: Path, index_url: str | None) -> Path:
    run_cli("init", *init_args(index_url), cwd=tmp_path)
    return tmp_path


def _ls(project: Path, *args: str) -> set[str]:
    out = run_cli("ls", *args, "--json", cwd=project).stdout.decode()
    return {json.loads(line)["digest"] for line in out.splitlines()}


def test_ls_tag_presence_prefix_and_literal_star(project: Path) -> None:
    with datakeep.open(project) as keep:
        d = _put_tagged(keep)
        star = keep.put(b"star", tags={"run": "2024*"}).digest
    assert _ls(project, "--tag", "owner") == {d["run-2024a"], d["run-2025"]}
    assert _ls(project, "--tag", "run=2024-*") == {d["run-2024a"], d["run-2024b"]}
    assert _ls(project, "--tag", "run=2024*") == {d["run-2024a"], d["run-2024b"], star}
    assert _ls(project, "--tag", "run=2024\\*") == {star}  # a value ending in a real *
    assert _ls(project, "--tag", "run=2024-01-05") == {d["run-2024a"]}
    assert _ls(project, "--tag", "run=2024") == set()  # exact, as before
    assert _ls(project, "--tag", "run=*", "--tag", "owner") == {d["run-2024a"], d["run-2025"]}
    assert _ls(project, "--tag", "owner", "--tag", "run=2025-*") == {d["run-2025"]}
    assert _ls(project, "--tag", "discount=50%*") == {d["percent"]}
    assert _ls(project, "--tag", "note=") == {d["empty"]}
    text = run_cli("ls", "--tag", "owner=a*", cwd=project).stdout.decode()
    short = d["run-2024a"].partition(":")[2][:12]
    assert text.startswith(short) and "owner=ana" in text and len(text.splitlines()) == 1


def test_ls_tag_usage_errors(project: Path) -> None:
    for bad in ("=x", "=", "=x*"):
        result = run_cli("ls", "--tag", bad, cwd=project, check=False)
        assert result.returncode == 2
        assert b"names no tag" in result.stderr
    result = run_cli("ls", "--tag", "a=b=c*", cwd=project, check=False)
    assert result.returncode == 0  # '=' inside a value is part of the value
    help_text = run_cli("ls", "--help", cwd=project).stdout.decode()
    assert "KEY=PREFIX*" in help_text and "--tag owner --tag run=2024-*" in help_text


def test_info_by_an_alias_shows_the_content_and_its_aliases(project: Path) -> None:
    data = b"named by sha256"
    sha = "sha256:" + hashlib.sha256(data).hexdigest()
    with datakeep.open(project) as keep:
        c = keep.put(data, expect=sha)
    info = json.loads(run_cli("info", sha, "--json", cwd=project).stdout)
    assert info["digest"] == c.digest and info["aliases"] == [sha]
    text = run_cli("info", sha, cwd=project).stdout.decode()
    assert f"aliases     {sha}" in text
    assert run_cli("cat", sha, cwd=project).stdout == data
    run_cli("get", sha, "restored", cwd=project)
    assert (project / "restored").read_bytes() == data
    missing = run_cli("info", "sha256:" + "0" * 64, cwd=project, check=False)
    assert missing.returncode == 1 and missing.stderr.startswith(b"datakeep: error: no content")
