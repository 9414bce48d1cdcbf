"""MkDocs hook: links from a page to a file of the repository outside ``docs/`` become code spans.

The performance and soak pages link to ``../bench/...`` so that they read well on the repository;
the site has no copy of those files, and ``--strict`` would (rightly) reject a link it cannot
follow. Links that point to nothing at all still fail the build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_OUTSIDE = re.compile(r"\[([^\]]+)\]\((\.\./[^)#\s]+)\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    repo = Path(config["docs_dir"]).resolve().parent
    page_dir = (Path(config["docs_dir"]) / page.file.src_path).resolve().parent

    def replace(match: re.Match[str]) -> str:
        target = (page_dir / match.group(2)).resolve()
        if repo in target.parents and target.exists():
            text = match.group(1)
            relative = target.relative_to(repo).as_posix()
            return text if text.strip("`") == relative else "%s (`%s`)" % (text, relative)
        return match.group(0)

    return _OUTSIDE.sub(replace, markdown)
